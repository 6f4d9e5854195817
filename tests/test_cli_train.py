"""`charrnn train` end to end: a run's files and log, budgets, bad input, names, the demo and
Unicode corpora, divergence. Resuming and Ctrl-C are in test_resume.py."""

import io
import math

import numpy as np
import pytest

from charrnn import train as train_module
from charrnn.model import CharRNN
from charrnn.lock import RunLock
from charrnn.ui import TrainProgress
from helpers.train_helpers import (TINY, all_finite, events, files_snapshot, load, make_corpus,
                                   train)


@pytest.fixture
def corpus(tmp_path):
    return make_corpus(tmp_path / "tiny.txt")


def test_a_run_writes_checkpoints_and_a_complete_log(tmp_path, corpus):
    out = tmp_path / "runs"
    result = train(corpus, *TINY, "--max-steps", 20, "--eval-every", 5, "--checkpoint-every", 10,
                   "--out-dir", out, "--seed", 3)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # stdout is for requested output only
    run = out / "tiny"  # named after the corpus file
    assert {p.name for p in run.iterdir()} >= {"log.jsonl", "latest.npz", "best.npz"}
    assert not list(run.glob(".tmp-*"))

    log = events(run)
    for record in log:
        assert {"event", "step", "time", "epoch"} <= record.keys(), record
    kinds = [r["event"] for r in log]
    assert kinds[0] == "start" and kinds[-1] == "end"
    start = log[0]
    assert start["config"]["train"]["seed"] == 3
    assert start["config"]["train"]["lr_schedule"] == "cosine"
    assert start["config"]["lr_schedule"] == {"base_lr": 0.003, "warmup_steps": 0, "min_ratio": 0.1}
    train_lines = events(run, "train")
    assert [r["step"] for r in train_lines] == [10, 20]
    for r in train_lines:
        assert {"loss", "lr", "grad_norm", "chars_per_sec"} <= r.keys()
        assert r["loss"] > 0 and r["lr"] > 0 and r["chars_per_sec"] > 0
    evals = events(run, "eval")
    assert [r["step"] for r in evals] == [5, 10, 15, 20]
    for r in evals:
        assert r["val_bpc"] == pytest.approx(r["val_loss"] / math.log(2))
    assert log[-1]["reason"] == "max_steps" and log[-1]["step"] == 20
    times = [r["time"] for r in log]
    assert times == sorted(times)

    assert [r["step"] for r in events(run, "checkpoint") if r["kind"] == "latest"] == [10, 20]
    latest = load(run / "latest.npz")
    assert latest.training.step == 20
    assert {"step", "epoch", "batch", "rng", "lr_scale", "lr_schedule", "best_val_loss",
            "train_config", "optimizer", "corpus"} <= latest.training.to_json().keys()
    assert latest.training.train_config.max_steps == 20
    assert latest.vocab.chars == "".join(sorted(set(corpus.read_text())))
    assert latest.optim and latest.state is not None
    assert load(run / "best.npz").training.best_val_loss == min(r["val_loss"] for r in evals)

    # without a terminal, each evaluation is a plain line instead of the bar
    assert "step 10: train loss " in result.stderr and " bits/char)" in result.stderr
    # the summary: best val loss, where the checkpoints are, what to run next
    assert "best validation loss" in result.stderr
    assert str(run / "best.npz") in result.stderr
    assert f"charrnn sample {run}" in result.stderr


def test_cosine_schedule_warms_up_then_decays(tmp_path, corpus):
    out = tmp_path / "runs"
    result = train(corpus, *TINY[:-2], "--warmup-steps", 10, "--max-steps", 40,
                   "--learning-rate", 0.01, "--out-dir", out)
    assert result.exit_code == 0, result.stderr
    lrs = {r["step"]: r["lr"] for r in events(out / "tiny", "train")}
    assert lrs[10] == pytest.approx(0.01)  # the last warm-up step (step index 9)
    assert lrs[20] > lrs[30] > lrs[40] >= 0.001


def test_constant_schedule_keeps_the_learning_rate(tmp_path, corpus):
    out = tmp_path / "runs"
    assert train(corpus, *TINY, "--max-steps", 30, "--lr-schedule", "constant",
                 "--learning-rate", 0.01, "--out-dir", out).exit_code == 0
    assert {r["lr"] for r in events(out / "tiny", "train")} == {0.01}


def test_weight_decay_shrinks_the_weight_matrices_and_is_recorded(tmp_path, corpus):
    # SGD at lr 0.01 with lambda 20: every weight matrix is scaled by 0.8 before each step
    out = tmp_path / "runs"
    opts = [*TINY, "--max-steps", 10, "--optimizer", "sgd", "--learning-rate", 0.01,
            "--lr-schedule", "constant", "--out-dir", out, "-q"]
    assert train(corpus, *opts, "--name", "plain").exit_code == 0
    result = train(corpus, *opts, "--weight-decay", 20, "--name", "decayed")
    assert result.exit_code == 0, result.stderr
    plain, decayed = load(out / "plain" / "latest.npz"), load(out / "decayed" / "latest.npz")
    for k, w in decayed.model.params.items():
        ratio = np.linalg.norm(w) / np.linalg.norm(plain.model.params[k])
        assert ratio < 0.2 if w.ndim == 2 else ratio > 0.5, k  # 0.8 ** 10 = 0.11
    assert decayed.training.optimizer["weight_decay"] == 20
    assert events(out / "decayed", "start")[0]["config"]["train"]["weight_decay"] == 20


def test_bad_weight_decay_is_a_usage_error(tmp_path, corpus):
    result = train(corpus, *TINY, "--weight-decay", -1, "--out-dir", tmp_path / "runs")
    assert result.exit_code == 2 and "--weight-decay" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_weight_decay_that_would_erase_the_weights_is_refused(tmp_path, corpus):
    # lr * lambda >= 1 would zero or flip every weight matrix each step, with finite numbers
    result = train(corpus, *TINY, "--lr", 0.01, "--weight-decay", 100, "--out-dir", tmp_path / "runs")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == ("Error: --weight-decay 100 at learning rate 0.01 would take all of "
                             "each weight away in a step; give a weight decay below 100 (1 / "
                             "the learning rate).\n")
    assert not (tmp_path / "runs").exists()


def test_weight_decay_chosen_by_the_size_rule_is_checked_too(tmp_path, corpus):
    # 4,000 steps over a small text: the rule caps the dropout and adds weight decay 0.2
    result = train(corpus, "--lr", 10, "--max-steps", 4000, "--out-dir", tmp_path / "runs")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        "Error: --weight-decay 0.2 at learning rate 10 would take all of each weight away in a "
        "step; give a weight decay below 0.1 (1 / the learning rate).")
    assert not (tmp_path / "runs").exists()


def test_epochs_budget(tmp_path, corpus):
    out = tmp_path / "runs"
    result = train(corpus, *TINY, "--epochs", 1, "--out-dir", out)
    assert result.exit_code == 0, result.stderr
    end = events(out / "tiny", "end")[-1]
    steps_per_epoch = (int(len(corpus.read_text()) * 0.9) - 1) // 4 // 16
    assert end["reason"] == "epochs" and end["step"] == steps_per_epoch
    assert end["epoch"] == 1.0


def test_time_limit_budget(tmp_path, corpus):
    out = tmp_path / "runs"
    result = train(corpus, *TINY, "--time-limit", "1s", "--out-dir", out)
    assert result.exit_code == 0, result.stderr
    log = events(out / "tiny")
    assert log[0]["config"]["train"]["time_limit"] == 1.0
    assert log[-1]["reason"] == "time_limit" and log[-1]["time"] >= 1.0


def test_bad_time_limit_is_a_usage_error(tmp_path, corpus):
    result = train(corpus, "--time-limit", "soon", "--out-dir", tmp_path / "runs")
    assert result.exit_code == 2 and "10m" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_no_budget_means_the_default_time_limit(tmp_path, corpus, monkeypatch):
    monkeypatch.setattr("charrnn.cli.train.DEFAULT_TIME_LIMIT", 0.3)
    out = tmp_path / "runs"
    assert train(corpus, *TINY, "--out-dir", out).exit_code == 0
    log = events(out / "tiny")
    assert log[0]["config"]["train"]["time_limit"] == 0.3
    assert log[-1]["reason"] == "time_limit"


def test_random_seed_is_recorded(tmp_path, corpus):
    out = tmp_path / "runs"
    for _ in range(2):
        assert train(corpus, *TINY, "--max-steps", 1, "--out-dir", out, "-q").exit_code == 0
    seeds = [events(out / name, "start")[0]["config"]["train"]["seed"] for name in ("tiny", "tiny-2")]
    assert all(isinstance(s, int) for s in seeds) and seeds[0] != seeds[1]


def _frozen(*extra):
    """Options under which the weights cannot move (Adam steps of 1e-30 vanish in float32), so
    every validation loss equals the first one and none of them is an improvement."""
    return [*TINY, "--learning-rate", "1e-30", "--lr-schedule", "constant", "--eval-every", 1,
            "--dropout", 0, *extra]


def test_patience_stops_early_and_best_is_written_only_on_improvement(tmp_path, corpus):
    out = tmp_path / "runs"
    result = train(corpus, *_frozen("--patience", 3, "--max-steps", 50), "--out-dir", out)
    assert result.exit_code == 0, result.stderr
    run = out / "tiny"
    evals = events(run, "eval")
    assert len({r["val_loss"] for r in evals}) == 1
    assert [r["step"] for r in evals] == [1, 2, 3, 4]
    assert events(run, "end")[-1]["reason"] == "early_stopping"
    best_writes = [r["step"] for r in events(run, "checkpoint") if r["kind"] == "best"]
    assert best_writes == [1]
    assert load(run / "best.npz").training.step == 1
    assert "early stopping" in result.stderr


def test_best_checkpoint_follows_every_improvement(tmp_path, corpus):
    out = tmp_path / "runs"
    result = train(corpus, *TINY, "--max-steps", 30, "--eval-every", 3, "--learning-rate", 0.01,
                   "--out-dir", out, "--seed", 1)
    assert result.exit_code == 0, result.stderr
    run = out / "tiny"
    best, improved = math.inf, []
    for r in events(run, "eval"):
        if r["val_loss"] < best:
            best = r["val_loss"]
            improved.append(r["step"])
    assert len(improved) > 1
    assert [r["step"] for r in events(run, "checkpoint") if r["kind"] == "best"] == improved
    assert load(run / "best.npz").training.best_val_loss == best


def test_patience_without_validation_is_refused(tmp_path, corpus):
    result = train(corpus, *TINY, "--patience", 2, "--val-fraction", 0, "--max-steps", 2,
                   "--out-dir", tmp_path / "runs")
    assert result.exit_code == 1 and "--patience" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_no_validation_split(tmp_path, corpus):
    out = tmp_path / "runs"
    result = train(corpus, *TINY, "--max-steps", 5, "--val-fraction", 0, "--out-dir", out)
    assert result.exit_code == 0, result.stderr
    assert not events(out / "tiny", "eval") and not (out / "tiny" / "best.npz").exists()
    assert "best.npz" not in result.stderr  # the summary names only checkpoints that exist


def test_quiet_prints_nothing(tmp_path, corpus):
    result = train(corpus, *TINY, "--max-steps", 12, "--eval-every", 5, "--batch-size", 400,
                   "--out-dir", tmp_path / "runs", "--quiet")
    assert result.exit_code == 0
    assert result.stderr == "" and result.stdout == ""


def test_too_short_corpus_shrinks_the_batch_with_a_warning(tmp_path):
    corpus = make_corpus(tmp_path / "short.txt", chars=300)
    out = tmp_path / "runs"
    result = train(corpus, "--hidden-size", 8, "--seq-length", 100, "--max-steps", 2, "--out-dir", out)
    assert result.exit_code == 0, result.stderr
    assert "warning:" in result.stderr and "using batch size 2 × sequence length 100" in result.stderr
    cfg = events(out / "short", "start")[0]["config"]["train"]
    assert (cfg["batch_size"], cfg["seq_length"]) == (2, 100)
    assert load(out / "short" / "latest.npz").training.train_config.batch_size == 2


def test_three_characters_train(tmp_path):
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abc")
    out = tmp_path / "runs"
    result = train(corpus, *TINY, "--max-steps", 2, "--val-fraction", 0, "--out-dir", out)
    assert result.exit_code == 0, result.stderr
    assert "using batch size 1 × sequence length 2" in result.stderr


def _assert_clean_error(result, *phrases, out=None):
    """Exit 1, one `Error:` line on stderr naming `phrases`, no traceback, nothing written."""
    assert result.exit_code == 1, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    for phrase in phrases:
        assert phrase in result.stderr, (phrase, result.stderr)
    if out is not None:
        assert not out.exists()


@pytest.mark.parametrize("name, content, phrases", [
    ("missing.txt", None, ["missing.txt does not exist"]),
    ("folder", "dir", ["folder is a directory"]),
    ("empty.txt", b"", ["empty.txt is empty"]),
    ("bad.txt", b"caf\xc3\xa9 ok \xff\xfe here", ["bad.txt", "byte 0xff at offset 9", "--encoding"]),
    ("blob.bin", bytes(range(256)) * 4, ["blob.bin", "binary"]),
    ("one.txt", b"x", ["only 1 character"]),
    ("fifteen.txt", b"abcdefghijklmno", ["--val-fraction", "validation"]),
])
def test_bad_corpus_is_one_clean_error_and_writes_nothing(tmp_path, name, content, phrases):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    out = tmp_path / "runs"
    _assert_clean_error(train(path, *TINY, "--max-steps", 2, "--out-dir", out), *phrases, out=out)


def test_other_encoding(tmp_path):
    corpus = tmp_path / "latin.txt"
    corpus.write_bytes("café crème brûlée, ".encode("latin-1") * 40)
    out = tmp_path / "runs"
    _assert_clean_error(train(corpus, *TINY, "--out-dir", out), "--encoding", out=out)
    result = train(corpus, *TINY, "--max-steps", 2, "--encoding", "latin-1", "--out-dir", out)
    assert result.exit_code == 0, result.stderr
    assert "é" in load(out / "latin" / "latest.npz").vocab.chars


@pytest.mark.parametrize("name", ["../escaped", "/abs/run", "", ".hidden", "a/b"])
def test_run_names_cannot_escape_the_out_dir(tmp_path, corpus, name):
    out = tmp_path / "deep" / "runs"
    _assert_clean_error(train(corpus, *TINY, "--max-steps", 2, "--out-dir", out, "--name", name),
                        "invalid run name", out=out.parent)
    assert not (tmp_path / "deep" / "escaped").exists() and not (tmp_path / "escaped").exists()


def test_an_existing_run_is_never_overwritten(tmp_path, corpus):
    out = tmp_path / "runs"
    assert train(corpus, *TINY, "--max-steps", 3, "--out-dir", out, "--name", "mine").exit_code == 0
    before = files_snapshot(out)
    result = train(corpus, *TINY, "--max-steps", 3, "--out-dir", out, "--name", "mine")
    _assert_clean_error(result, "already exists", f"charrnn train --resume {out / 'mine'}")
    assert files_snapshot(out) == before
    # without --name, a new run gets a fresh name next to it
    assert train(corpus, *TINY, "--max-steps", 1, "--out-dir", out, "-q").exit_code == 0
    assert (out / "tiny" / "latest.npz").exists() and files_snapshot(out / "mine") == {
        k.relative_to("mine"): v for k, v in before.items()}


def test_a_run_being_trained_cannot_be_trained_twice(tmp_path, corpus):
    out = tmp_path / "runs"
    assert train(corpus, *TINY, "--max-steps", 3, "--out-dir", out).exit_code == 0
    run = out / "tiny"
    before = files_snapshot(run)
    with RunLock(run):
        result = train("--resume", run, "--max-steps", 6, "--quiet")
        _assert_clean_error(result, "being trained")
    assert {k: v for k, v in files_snapshot(run).items() if k.name != ".lock"} == {
        k: v for k, v in before.items() if k.name != ".lock"}


def test_absurd_model_is_refused_up_front_with_its_memory_need(tmp_path, corpus):
    out = tmp_path / "runs"
    result = train(corpus, *TINY, "--hidden-size", 1_000_000, "--out-dir", out)
    _assert_clean_error(result, "GiB", "--hidden-size", out=out)


def test_float64_run(tmp_path, corpus):
    out = tmp_path / "runs"
    assert train(corpus, *TINY, "--max-steps", 3, "--dtype", "float64", "--out-dir", out).exit_code == 0
    ckpt = load(out / "tiny" / "latest.npz")
    assert {p.dtype for p in ckpt.model.params.values()} == {np.dtype(np.float64)}
    assert all(a.dtype == np.float64 for layer in ckpt.state for a in layer)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_cells_layers_and_optimizers(tmp_path, corpus, cell):
    out = tmp_path / "runs"
    optimizer = {"lstm": "rmsprop", "gru": "adagrad", "rnn": "sgd"}[cell]
    result = train(corpus, *TINY, "--max-steps", 10, "--cell", cell, "--num-layers", 3,
                   "--optimizer", optimizer, "--dropout", 0.3, "--grad-clip", 0, "--out-dir", out)
    assert result.exit_code == 0, result.stderr
    ckpt = load(out / "tiny" / "latest.npz")
    assert (ckpt.config.cell, ckpt.config.num_layers, ckpt.config.dropout) == (cell, 3, 0.3)
    assert ckpt.training.optimizer["name"] == optimizer
    assert events(out / "tiny", "train")[0]["loss"] < math.log(ckpt.vocab.size) + 0.5


def test_unicode_corpus(tmp_path):
    words = ["привет", "мир", "中文", "字符", "😀", "🎉x", "naïve", "ok"]
    corpus = make_corpus(tmp_path / "уни.txt", words=words, newline="\r\n")
    out = tmp_path / "runs"
    result = train(corpus, *TINY, "--max-steps", 5, "--out-dir", out)
    assert result.exit_code == 0, result.stderr
    vocab = load(out / "уни" / "latest.npz").vocab
    assert vocab.chars == "".join(sorted(set(corpus.read_bytes().decode("utf-8"))))
    for ch in ("п", "中", "😀", "🎉", "ï", "\r", "\n"):
        assert ch in vocab.chars
    assert vocab.encode("😀").tolist() == [vocab.chars.index("😀")]


def test_demo_corpus(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = train(*TINY, "--batch-size", 64, "--max-steps", 2, "--val-fraction", 0.01)
    assert result.exit_code == 0, result.stderr
    assert "demo corpus" in result.stderr and "standard library" in result.stderr
    start = events(tmp_path / "checkpoints" / "demo", "start")[0]
    assert start["config"]["corpus"] == "demo"
    assert 900_000 < start["config"]["train_chars"] + start["config"]["val_chars"] <= 1_000_000
    assert set("def():_") <= set(load(tmp_path / "checkpoints" / "demo" / "latest.npz").vocab.chars)


@pytest.mark.filterwarnings("error")  # numpy warnings would reach the user
def test_divergence_three_times_in_a_row_stops_with_the_last_good_state(tmp_path, corpus):
    out = tmp_path / "runs"
    result = train(corpus, *TINY, "--max-steps", 20, "--learning-rate", "1e38", "--seed", 0,
                   "--out-dir", out, "--quiet")
    _assert_clean_error(result, "diverged 3 times", "--learning-rate", "latest.npz")
    run = out / "tiny"
    diverged = events(run, "diverged")
    assert [r["count"] for r in diverged] == [1, 2, 3]
    assert diverged[1]["lr"] == pytest.approx(diverged[0]["lr"] / 2)
    assert events(run, "end")[-1]["reason"] == "diverged"
    for ckpt in run.glob("*.npz"):
        assert all_finite(load(ckpt))


@pytest.mark.filterwarnings("error")  # numpy warnings would reach the user
def test_divergence_rolls_back_halves_the_rate_and_continues(tmp_path, corpus, monkeypatch):
    """A non-finite loss at the 7th and 13th attempted steps (injected): training rolls back to
    the last snapshot (taken at each checkpoint: steps 5 and 10), halves the learning rate each
    time and finishes. The 13th attempt is step 11: attempt 7 (step 7) was rolled back to 5."""
    real = CharRNN.loss_and_grads
    calls = []

    def flaky(self, *args, **kwargs):
        loss, grads, state = real(self, *args, **kwargs)
        calls.append(loss)
        return (math.nan if len(calls) in (7, 13) else loss), grads, state

    monkeypatch.setattr(CharRNN, "loss_and_grads", flaky)
    out = tmp_path / "runs"
    result = train(corpus, *TINY, "--max-steps", 12, "--checkpoint-every", 5,
                   "--lr-schedule", "constant", "--out-dir", out)
    assert result.exit_code == 0, result.stderr
    run = out / "tiny"
    diverged = events(run, "diverged")
    assert [(r["step"], r["rolled_back_to"], r["count"]) for r in diverged] == [(7, 5, 1), (11, 10, 1)]
    assert [r["lr"] for r in diverged] == [0.0015, 0.00075]  # default 3e-3, halved twice
    assert "halved the learning rate" in result.stderr
    end = events(run, "end")[-1]
    assert (end["reason"], end["step"]) == ("max_steps", 12)
    latest = load(run / "latest.npz")
    assert latest.training.lr_scale == 0.25 and all_finite(latest)


@pytest.mark.filterwarnings("error")  # numpy warnings would reach the user
def test_an_update_that_overflows_the_optimizer_state_is_a_divergence(tmp_path, corpus, monkeypatch):
    """Gradients of 1e30 at the 4th attempted step are finite, but Adam's v = g**2 overflows
    float32 to inf (the weights stay finite): the step is rolled back like any divergence,
    and no checkpoint ever holds the inf."""
    real = CharRNN.loss_and_grads
    calls = []

    def huge(self, *args, **kwargs):
        loss, grads, state = real(self, *args, **kwargs)
        calls.append(loss)
        if len(calls) == 4:
            for g in grads.values():
                g[...] = 1e30
        return loss, grads, state

    monkeypatch.setattr(CharRNN, "loss_and_grads", huge)
    out = tmp_path / "runs"
    result = train(corpus, *TINY, "--max-steps", 6, "--grad-clip", 0, "--checkpoint-every", 1,
                   "--eval-every", 2, "--out-dir", out)
    assert result.exit_code == 0, result.stderr
    run = out / "tiny"
    [diverged] = events(run, "diverged")
    assert (diverged["step"], diverged["rolled_back_to"]) == (4, 3)
    assert diverged["reason"] == "non-finite weights after the update"
    assert [r["step"] for r in events(run, "checkpoint") if r["kind"] == "latest"][:6] == [1, 2, 3, 4, 5, 6]
    assert all_finite(load(run / "latest.npz")) and all_finite(load(run / "best.npz"))


@pytest.mark.filterwarnings("error")  # numpy warnings would reach the user
def test_a_huge_learning_rate_never_reaches_a_checkpoint(tmp_path, corpus):
    out = tmp_path / "runs"
    result = train(corpus, *TINY, "--max-steps", 20, "--optimizer", "sgd", "--learning-rate",
                   "1e38", "--grad-clip", 0, "--checkpoint-every", 1, "--seed", 0, "--out-dir", out)
    assert result.exit_code in (0, 1) and "refusing" not in result.stderr, result.stderr
    assert events(out / "tiny", "diverged")
    for ckpt in (out / "tiny").glob("*.npz"):
        assert all_finite(load(ckpt))


def test_samples_during_training_go_to_stderr_and_the_log_without_changing_training(tmp_path, corpus):
    out = tmp_path / "runs"
    opts = [*TINY, "--max-steps", 10, "--seed", 5, "--out-dir", out]
    result = train(corpus, *opts, "--sample-every", 5, "--name", "sampled")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "sample at step 5" in result.stderr and "sample at step 10" in result.stderr
    samples = events(out / "sampled", "sample")
    assert [r["step"] for r in samples] == [5, 10]
    vocab = set(corpus.read_text())
    assert all(len(r["text"]) == 200 and set(r["text"]) <= vocab for r in samples)
    assert train(corpus, *opts, "--name", "plain", "-q").exit_code == 0
    a, b = load(out / "sampled" / "latest.npz"), load(out / "plain" / "latest.npz")
    assert all(np.array_equal(a.model.params[k], b.model.params[k]) for k in a.model.params)


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("budget, shown", [({"max_steps": 30}, "30/30"),
                                           ({"time_limit": 1.0}, "<")])
def test_progress_bar_on_a_terminal(tmp_path, corpus, budget, shown):
    screen = FakeTerminal()
    options = dict(hidden_size=16, batch_size=4, seq_length=16, warmup_steps=0, eval_every=10,
                   sample_every=15, **budget)
    train_module.train(corpus, options, out_dir=tmp_path / "runs", reporter=TrainProgress(screen))
    text = screen.getvalue()
    assert "train " in text and shown in text and "evaluating…" in text
    assert " loss " in text and " chars/s" in text
    assert "step 10: train loss " in text  # each evaluation's line, above the bar
    assert "--- sample at step 15 ---" in text


def test_checkpoints_keep_a_context_for_sampling_from_the_training_text(tmp_path, corpus):
    """Sampling reads the end of a paragraph of the training text first (see
    charrnn.sampling.sample_context), so checkpoints carry that piece of text."""
    out = tmp_path / "runs"
    assert train(corpus, *TINY, "--max-steps", 2, "--out-dir", out, "-q").exit_code == 0
    context = load(out / "tiny" / "latest.npz").training.sample_context
    text = corpus.read_text(encoding="utf-8")
    assert context and context in text and context.endswith("\n")
