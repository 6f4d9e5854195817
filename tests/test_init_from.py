"""Fine-tuning into a new run: `charrnn train NEW.txt --init-from RUN|CKPT`, and the model's
vocabulary growth underneath (`model.grow_vocabulary`)."""

import random

import numpy as np
import pytest
from click.testing import CliRunner

from helpers import oracle
from charrnn.cli import cli
from charrnn.data import Vocab
from charrnn.model import grow_vocabulary
from charrnn.stepper import Stepper
from test_sampling import random_model
from helpers.train_helpers import TINY, events, files_snapshot, load, make_corpus, train

DIGITS = "0123456789"


def probabilities(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_grown_model_gives_old_characters_their_old_logits(cell):
    model, vocab = random_model(cell, V=7, H=6, dtype=np.float64)
    bigger = vocab.extended("€" + DIGITS)
    grown = grow_vocabulary(model, bigger.size, np.random.default_rng(0))
    assert grown.config.vocab_size == 18 and grown.dtype == model.dtype
    ids = np.random.default_rng(1).integers(0, 7, (2, 9))  # two streams of old characters
    old_state, new_state = model.init_state(2), grown.init_state(2)
    for t in range(ids.shape[1]):
        old, old_state = oracle.step(model, ids[:, t], old_state)
        new, new_state = oracle.step(grown, ids[:, t], new_state)
        np.testing.assert_allclose(new[:, :7], old, rtol=0, atol=1e-12)
        # so the distribution among the old characters is the old one
        np.testing.assert_allclose(probabilities(new[:, :7]), probabilities(old), atol=1e-12)
    for name, p in model.params.items():  # every old value kept, nothing shared
        assert np.array_equal(grown.params[name][tuple(slice(0, n) for n in p.shape)], p)
        assert not np.shares_memory(grown.params[name], p)
    # the new input rows and head columns are drawn as for a fresh model
    assert grown.params["layers.0.Wx"][7:].std() > 0.5 and np.all(grown.params["head.b"][7:] == 0)


def test_the_grown_model_steps_new_characters():
    model, vocab = random_model(V=5, H=4)
    grown = grow_vocabulary(model, 8, np.random.default_rng(0))
    logits = Stepper(grown, 2).step(np.array([6, 1]))
    assert logits.shape == (2, 8) and np.isfinite(logits).all()


def new_text(path, chars=3000, seed=1):
    """Words of the old corpus between numbers: digits the parent never saw."""
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(["fox", "dog", "".join(rng.choices(DIGITS, k=4))])
                      for _ in range(8)) for _ in range(chars // 40)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A run 'parent' trained on words without digits; returns its out-dir."""
    root = tmp_path_factory.mktemp("init")
    result = train(make_corpus(root / "old.txt"), *TINY, "--max-steps", "30", "--eval-every",
                   "10", "--out-dir", root / "runs", "--name", "parent", "--seed", "1", "-q")
    assert result.exit_code == 0, result.output
    return root / "runs"


def test_a_new_run_starts_from_the_parent_and_leaves_it_untouched(parent, tmp_path):
    corpus = new_text(tmp_path / "numbers.txt")
    before = files_snapshot(parent / "parent")
    result = train(corpus, "--init-from", "parent", "--out-dir", parent, "--max-steps", "1",
                   "--lr", "1e-30", "--batch-size", "4", "--seq-length", "16", "--seed", "2")
    assert result.exit_code == 0, result.output
    assert files_snapshot(parent / "parent") == before
    assert "note: starting from the weights of" in result.stderr
    assert "10 new character(s) added to its vocabulary: '0', '1'" in result.stderr
    run = parent / "numbers"
    (start,) = events(run, "start")
    old, new = load(parent / "parent" / "best.npz"), load(run / "latest.npz")
    assert start["init_from"] == {"run": str((parent / "parent").resolve()),
                                  "checkpoint": str((parent / "parent" / "best.npz").resolve()),
                                  "step": 30, "vocab_size": old.vocab.size}
    assert start["config"]["model"]["hidden_size"] == 16 and start["resumed"] is False
    assert new.vocab.chars == old.vocab.chars + DIGITS
    assert new.training.step == 1 and new.training.train_config.seed == 2
    # one step at a negligible rate: the old characters' logits are the parent's
    ids = old.vocab.encode("the quick brown fox jumps over")
    stepped = [Stepper(c.model, 1) for c in (old, new)]
    for i in ids:
        a, b = (s.step(np.array([i])) for s in stepped)
        np.testing.assert_allclose(b[:, : old.vocab.size], a, rtol=0, atol=1e-5)


def test_the_new_run_keeps_the_parents_weight_decay_with_the_same_optimizer(tmp_path):
    out = tmp_path / "runs"
    result = train(make_corpus(tmp_path / "old.txt"), *TINY, "--max-steps", "2", "--out-dir",
                   out, "--name", "decayed", "--weight-decay", "0.05", "-q")
    assert result.exit_code == 0, result.output
    corpus = new_text(tmp_path / "new.txt")
    for name, more, decay in [("same", [], 0.05), ("given", ["--weight-decay", "0.2"], 0.2),
                              ("sgd", ["--optimizer", "sgd"], 0.0)]:
        result = train(corpus, "--init-from", "decayed", "--out-dir", out, "--name", name,
                       "--max-steps", "1", "--batch-size", "4", "--seq-length", "16", *more, "-q")
        assert result.exit_code == 0, result.output
        assert events(out / name, "start")[0]["config"]["train"]["weight_decay"] == decay
        assert load(out / name / "latest.npz").training.optimizer["weight_decay"] == decay


def test_the_new_run_learns_and_samples_the_new_characters_and_resumes(parent, tmp_path):
    corpus = new_text(tmp_path / "tuned.txt")
    args = ["--init-from", parent / "parent" / "latest.npz", "--out-dir", parent, "--seed", "3",
            "--batch-size", "8", "--seq-length", "16", "--warmup-steps", "0", "--lr", "1e-2",
            "-q"]
    result = train(corpus, *args, "--max-steps", "60")
    assert result.exit_code == 0, result.output
    text = CliRunner().invoke(cli, ["sample", str(parent / "tuned"), "-n", "300", "--seed", "1"])
    assert text.exit_code == 0
    assert sum(text.stdout.count(d) for d in DIGITS) > 30
    resumed = train("--resume", parent / "tuned", "--max-steps", "70", "-q")
    assert resumed.exit_code == 0, resumed.output
    assert load(parent / "tuned" / "latest.npz").training.step == 70
    assert [e["resumed"] for e in events(parent / "tuned", "start")] == [False, True]


@pytest.mark.parametrize("args, message", [
    (["--hidden-size", "32"], "--init-from takes the model's shape and vocabulary from the "
                              "run it starts from; drop --hidden-size."),
    (["--cell", "gru", "--dtype", "float64"], "drop --cell, --dtype."),
    (["--min-count", "2", "--max-vocab", "40"], "drop --min-count, --max-vocab."),
    (["--resume", "parent"], "--resume continues a run and --init-from starts a new one"),
])
def test_bad_combinations_are_refused_in_one_line(parent, tmp_path, args, message):
    corpus = new_text(tmp_path / "c.txt")
    before = files_snapshot(parent)
    result = train(corpus, "--init-from", "parent", "--out-dir", parent, *args, "-q")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert files_snapshot(parent) == before
    missing = train(corpus, "--init-from", "nope", "--out-dir", parent, "-q")
    assert missing.exit_code == 1 and "no run named 'nope'" in missing.stderr
