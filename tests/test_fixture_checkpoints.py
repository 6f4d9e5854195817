"""Checkpoints written by an earlier charrnn still load, sample, show and resume.

The files in tests/fixtures/ come from tests/helpers/make_fixture_checkpoints.py, run with the
charrnn of commit 67484f5; that script also recorded what that version printed for them.
"""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import cli
from helpers.make_fixture_checkpoints import (FIRST_STEPS, FIXTURES, RESUMED_STEPS, RUNS, SAMPLE,
                                      fixture_corpus)
from helpers.train_helpers import load

EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
CELLS = list(RUNS)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_every_cell_has_a_small_fixture():
    assert sorted(EXPECTED) == sorted(CELLS)
    for cell in CELLS:
        for name in (f"{cell}.npz", f"{cell}-resumed.npz"):
            assert (FIXTURES / name).stat().st_size < 30_000, name


@pytest.mark.parametrize("cell", CELLS)
def test_old_checkpoint_loads_with_its_training_state(cell):
    ckpt = load(FIXTURES / f"{cell}.npz")
    assert ckpt.config.cell == cell and ckpt.config.hidden_size == 4
    assert ckpt.training.step == FIRST_STEPS and ckpt.training.batch == FIRST_STEPS
    assert ckpt.training.train_config.cell == cell and ckpt.training.sample_context
    assert ckpt.optim and ckpt.state is not None  # mid-epoch: the carried state is saved
    assert charrnn.load(FIXTURES / f"{cell}.npz").training.step == FIRST_STEPS


@pytest.mark.parametrize("cell", CELLS)
def test_old_checkpoint_samples_and_shows_as_it_did(cell):
    path = FIXTURES / f"{cell}.npz"
    sample = run("sample", path, *SAMPLE)
    assert sample.exit_code == 0, sample.stderr
    assert sample.stdout == EXPECTED[cell]["sample"]
    info = run("info", path, "--format", "json")
    assert info.exit_code == 0, info.stderr
    shown, expected = json.loads(info.stdout), EXPECTED[cell]["info"]
    assert shown.pop("checkpoint") == str(path)
    # since that version, the epoch is the fraction the table shows, as in the log, and the
    # peak learning rate in force is shown (the saved option is None: the default)
    training = load(path).training
    assert shown["training"].pop("epoch") == training.epoch_float > expected["training"].pop("epoch")
    assert shown["training"].pop("learning_rate") == training.train_config.base_lr
    saved_config = expected["training"].pop("train_config")
    config = shown["training"].pop("train_config")
    assert shown == expected
    assert config == {**config, **saved_config}  # options added since keep their defaults
    table = run("info", path)
    assert table.exit_code == 0 and f"{FIRST_STEPS}" in table.stdout, table.stderr


@pytest.mark.parametrize("cell", CELLS)
def test_old_checkpoint_resumes_where_it_stopped(tmp_path, cell):
    """Resumed by today's code, the old run reaches the state the old code reached."""
    corpus = fixture_corpus(tmp_path / "corpus.txt")
    run_dir = tmp_path / "runs" / cell
    run_dir.mkdir(parents=True)
    shutil.copy(FIXTURES / f"{cell}.npz", run_dir / "latest.npz")
    result = run("train", corpus, "--resume", run_dir, "--max-steps", RESUMED_STEPS, "-q")
    assert result.exit_code == 0, result.stderr
    assert "differs" not in result.stderr  # the same corpus as the fixture's
    resumed, reference = load(run_dir / "latest.npz"), load(FIXTURES / f"{cell}-resumed.npz")
    for key in ("step", "epoch", "batch", "rng", "lr_scale"):
        assert getattr(resumed.training, key) == getattr(reference.training, key), key
    # The version that wrote the reference also evaluated at the end of each session (step 7);
    # today evaluations come every --eval-every steps only (2: the last one is step 6), so
    # that split runs evaluate where uninterrupted ones do; the reference's best is as good.
    assert resumed.training.last_eval_step == RESUMED_STEPS - 1
    assert resumed.training.best_val_loss >= reference.training.best_val_loss - 1e-6
    atol = 1e-6 if resumed.model.dtype == np.float32 else 1e-12
    pairs = [(resumed.model.params, reference.model.params), (resumed.optim, reference.optim)]
    for got, want in pairs:
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=atol, err_msg=k)
    for got, want in zip(resumed.state, reference.state):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=atol)
