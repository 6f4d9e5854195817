"""The training state in checkpoints: its JSON form, what a damaged one still shows, and what
a resume refuses."""

import json
from dataclasses import asdict

import pytest
from click.testing import CliRunner

from charrnn import checkpoint
from charrnn.checkpoint import TrainingState
from charrnn.cli import cli
from charrnn.config import TrainConfig
from charrnn.errors import CheckpointError
from helpers.make_fixture_checkpoints import FIXTURES
from test_hostile_input import _edit_meta

SAVED = json.loads(json.dumps(checkpoint.load(FIXTURES / "lstm.npz").training.to_json()))


def test_json_round_trip_keeps_every_field():
    state = TrainingState.from_json(SAVED)
    assert state.damaged == () and state.to_json() == SAVED
    assert isinstance(state.train_config, TrainConfig) and state.train_config.cell == "lstm"
    assert SAVED["train_config"] == asdict(state.train_config)
    state.check_resumable("x.npz")  # nothing to refuse


def test_a_checkpoint_from_before_a_field_existed_reads_its_default():
    old = {k: v for k, v in SAVED.items() if k not in ("sample_context", "lr_scale", "bad_evals")}
    old["train_config"] = {k: v for k, v in SAVED["train_config"].items() if k != "threads"}
    state = TrainingState.from_json(old)
    assert state.damaged == () and state.sample_context == "" and state.lr_scale == 1.0
    assert state.bad_evals == 0 and state.train_config.threads is None


@pytest.mark.parametrize("edit, damaged, shown", [
    ({"step": "x"}, ("step",), None),
    ({"step": -1}, ("step",), -1),  # out of range, but still a number that info can show
    ({"time": float("nan")}, ("time",), 0.0),
    ({"rng": None}, ("rng",), None),  # null reads as absent, and a resume needs it
    ({"sample_context": 5}, ("sample_context",), ""),
    ({"train_config": {**SAVED["train_config"], "exploit": 1}}, ("train_config",), None),
    ({"train_config": {**SAVED["train_config"], "seed": -3, "dropout": "x"}},
     ("train_config.dropout", "train_config.seed"), None),
])
def test_a_damaged_field_is_named_and_read_as_far_as_it_can_be(edit, damaged, shown):
    state = TrainingState.from_json({**SAVED, **edit})
    assert state.damaged == damaged
    (name,) = {n.partition(".")[0] for n in damaged}
    assert getattr(state, name) == shown
    with pytest.raises(CheckpointError, match=rf"^x.npz has a damaged training state "
                                              rf"\({', '.join(damaged)}\); it cannot be resumed"):
        state.check_resumable("x.npz")


@pytest.mark.parametrize("saved", [{}, {"step": 12, "time": 3725.0}, {"step": "x"}])
def test_without_train_config_there_is_nothing_to_resume(saved):
    with pytest.raises(CheckpointError, match="x.npz holds a model without training state"):
        TrainingState.from_json(saved).check_resumable("x.npz")


def test_a_bare_model_has_no_training_state(tmp_path):
    ckpt = checkpoint.load(FIXTURES / "rnn.npz")
    ckpt.training = None
    checkpoint.save(tmp_path / "bare.npz", ckpt)
    assert checkpoint.load(tmp_path / "bare.npz").training is None
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "bare.npz"), "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["training"] == {}


def test_sample_and_info_still_use_a_damaged_training_state(tmp_path):
    """A damaged state refuses to resume, saying that sample, eval and info still work: so
    they do, showing what can be read."""
    path = tmp_path / "damaged.npz"
    _edit_meta(FIXTURES / "gru.npz", path,
               lambda m, a: m["training"].update(step="x", time=-1.5, sample_context=[1]))
    info = CliRunner().invoke(cli, ["info", str(path), "--format", "json"])
    assert info.exit_code == 0, info.stderr
    training = json.loads(info.stdout)["training"]
    assert "step" not in training and training["time"] == -1.5
    assert training["train_config"]["cell"] == "gru"
    table = CliRunner().invoke(cli, ["info", str(path)])
    assert table.exit_code == 0 and "cell=gru" in table.stdout, table.stderr
    sample = CliRunner().invoke(cli, ["sample", str(path), "-n", "20", "--seed", "1"])
    assert sample.exit_code == 0 and len(sample.stdout) == 21, sample.stderr
