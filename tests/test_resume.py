"""Resuming a run exactly, Ctrl-C, and what may and may not change on --resume."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import charrnn
from charrnn import train as train_module
from helpers.train_helpers import (TINY, all_finite, assert_same_arrays, events, files_snapshot,
                                   load, make_corpus, train)

RESUMABLE = [*TINY, "--seed", 7, "--eval-every", 5, "--checkpoint-every", 7, "--dropout", 0.2]


def exact_corpus(path, chars):
    """A corpus of exactly `chars` characters, to place epoch boundaries where a test wants."""
    text = make_corpus(path, chars=chars).read_text()[:chars]
    path.write_text(text)
    return path


@pytest.mark.parametrize("chars, extra", [
    (720, ["--cell", "lstm"]),  # 10 steps an epoch: the resume lands on an epoch boundary
    (520, ["--cell", "gru", "--optimizer", "rmsprop"]),  # 7 an epoch: mid-epoch
    (520, ["--cell", "rnn", "--optimizer", "adagrad", "--num-layers", 1]),
    (1040, ["--batch-size", 8, "--threads", 2]),  # the batch split across threads
    (720, ["--optimizer", "sgd", "--weight-decay", 0.5]),
])
def test_twenty_steps_resumed_to_forty_equal_forty_straight(tmp_path, chars, extra):
    """With `--lr-schedule constant` the learning rate does not depend on --max-steps, so a run
    stopped by `--max-steps 20` and resumed with `--max-steps 40` must end bit for bit where a
    40-step run ends (weights, optimizer state, carried hidden state, data position, RNG).
    The default cosine schedule decays over --max-steps, so there the two runs would differ by
    design; test_interrupted_cosine_run_resumes_exactly covers it."""
    corpus = exact_corpus(tmp_path / "c.txt", chars)
    out = tmp_path / "runs"
    opts = [*RESUMABLE, *extra, "--lr-schedule", "constant", "--out-dir", out, "-q"]
    assert train(corpus, *opts, "--max-steps", 40, "--name", "straight").exit_code == 0
    assert train(corpus, *opts, "--max-steps", 20, "--name", "split").exit_code == 0
    assert load(out / "split" / "latest.npz").training.step == 20
    result = train("--resume", out / "split", *opts, "--max-steps", 40)
    assert result.exit_code == 0, result.stderr

    straight, split = load(out / "straight" / "latest.npz"), load(out / "split" / "latest.npz")
    assert_same_arrays(straight, split)
    for key in ("step", "epoch", "batch", "rng", "lr_scale"):
        assert getattr(straight.training, key) == getattr(split.training, key), key
    assert straight.training.epoch >= 2
    assert events(out / "split", "start")[1]["resumed"] is True


class InterruptAt(train_module.Reporter):
    """Sends this process a real SIGINT after `step`, as Ctrl-C would."""

    def __init__(self, step):
        self.at = step

    def update(self, step, loss, chars_per_sec, lr, elapsed):
        if step == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def test_interrupted_cosine_run_resumes_exactly(tmp_path):
    """The default schedule (warm-up, then cosine decay over --max-steps 40): a run interrupted
    by SIGINT after step 20 and resumed ends bit for bit like the uninterrupted run."""
    corpus = exact_corpus(tmp_path / "c.txt", 520)
    options = dict(hidden_size=16, batch_size=4, seq_length=16, warmup_steps=8, max_steps=40,
                   seed=7, eval_every=5, checkpoint_every=7, dropout=0.2)
    out = tmp_path / "runs"
    straight = train_module.train(corpus, options, out_dir=out, name="straight")
    assert (straight.reason, straight.step) == ("max_steps", 40)

    stopped = train_module.train(corpus, options, out_dir=out, name="split", reporter=InterruptAt(20))
    assert (stopped.reason, stopped.step) == ("interrupted", 20)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    assert [r["event"] for r in events(out / "split")][-3:] == ["interrupt", "checkpoint", "end"]
    resumed = train_module.train(None, {}, resume=out / "split")
    assert (resumed.reason, resumed.step) == ("max_steps", 40)

    a, b = load(out / "straight" / "latest.npz"), load(out / "split" / "latest.npz")
    assert_same_arrays(a, b)
    lrs = {r["step"]: r["lr"] for r in events(out / "straight", "train")}
    assert lrs == {r["step"]: r["lr"] for r in events(out / "split", "train")}
    assert lrs[10] > lrs[20] > lrs[30] > lrs[40]


def test_ctrl_c_saves_and_exits_130_and_the_run_resumes(tmp_path):
    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(Path(charrnn.__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "charrnn", "train", str(corpus), *map(str, TINY),
         "--max-steps", "1000000", "--out-dir", str(out), "--name", "run"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not (out / "run" / "log.jsonl").exists() or not events(out / "run", "train"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert stdout == "" and "Traceback" not in stderr
    assert f"charrnn train --resume {out / 'run'}" in stderr

    log = events(out / "run")
    assert [r["event"] for r in log][-3:] == ["interrupt", "checkpoint", "end"]
    assert log[-1]["reason"] == "interrupted"
    latest = load(out / "run" / "latest.npz")
    assert latest.training.step == log[-1]["step"] >= 10 and all_finite(latest)
    assert not list((out / "run").glob(".tmp-*"))

    step = latest.training.step
    result = train("--resume", out / "run", "--max-steps", step + 5, "-q")
    assert result.exit_code == 0, result.stderr
    assert events(out / "run", "end")[-1]["step"] == step + 5


def test_time_and_steps_continue_across_a_resume(tmp_path):
    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    assert train(corpus, *TINY, "--max-steps", 10, "--out-dir", out, "-q").exit_code == 0
    first_end = events(out / "c", "end")[-1]
    assert train("--resume", out / "c", "--max-steps", 20, "-q").exit_code == 0
    log = events(out / "c")
    starts = [r for r in log if r["event"] == "start"]
    assert len(starts) == 2 and starts[1]["step"] == 10
    assert starts[1]["time"] >= first_end["time"] > 0
    assert [r["time"] for r in log] == sorted(r["time"] for r in log)
    assert [r["step"] for r in log if r["event"] == "train"] == [10, 20]


def test_resume_from_a_checkpoint_file(tmp_path):
    """A run's own latest.npz, named as a file, resumes in place; a copy of it outside any run
    starts a new run under --out-dir, and the original run is left as it was."""
    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    assert train(corpus, *TINY, "--max-steps", 10, "--eval-every", 4, "--out-dir", out,
                 "-q").exit_code == 0
    result = train("--resume", out / "c" / "latest.npz", "--max-steps", 12, "-q")
    assert result.exit_code == 0, result.stderr
    assert events(out / "c", "start")[-1]["step"] == 10
    assert load(out / "c" / "latest.npz").training.step == 12

    (tmp_path / "elsewhere").mkdir()
    copy = tmp_path / "elsewhere" / "model.npz"
    copy.write_bytes((out / "c" / "latest.npz").read_bytes())
    before = files_snapshot(out / "c")
    result = train("--resume", copy, "--max-steps", 14, "--out-dir", out)
    assert result.exit_code == 0, result.stderr
    assert f"goes on as a new run in {out / 'c-2'}" in result.stderr
    assert files_snapshot(out / "c") == before
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == ["model.npz"]
    start = events(out / "c-2", "start")[0]
    assert start["step"] == 12 and start["parent"]["checkpoint"] == str(copy)
    assert start["run_id"] != events(out / "c", "start")[0]["run_id"]
    assert load(out / "c-2" / "latest.npz").training.step == 14


@pytest.mark.parametrize("option, value, saved", [
    ("--hidden-size", 32, 16), ("--cell", "gru", "lstm"), ("--num-layers", 3, 2),
    ("--batch-size", 8, 4), ("--seq-length", 8, 16), ("--dtype", "float64", "float32"),
    ("--optimizer", "sgd", "adam"), ("--seed", 99, 1),
])
def test_contradicting_the_checkpoint_on_resume_is_refused(tmp_path, option, value, saved):
    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    assert train(corpus, *TINY, "--max-steps", 3, "--seed", 1, "--out-dir", out, "-q").exit_code == 0
    before = files_snapshot(out)
    result = train("--resume", out / "c", option, value, "--max-steps", 6)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert f"{option} {value}" in result.stderr and f"{option} {saved}" in result.stderr
    assert files_snapshot(out) == before


def test_training_options_may_change_on_resume_with_a_notice(tmp_path):
    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    opts = [*TINY, "--lr-schedule", "constant", "--out-dir", out]
    assert train(corpus, *opts, "--max-steps", 10, "-q").exit_code == 0
    result = train("--resume", out / "c", "--learning-rate", 0.01, "--max-steps", 20,
                   "--dropout", 0.3, "--weight-decay", 0.1)
    assert result.exit_code == 0, result.stderr
    assert "note: weight-decay changes from 0.0 to 0.1" in result.stderr
    assert "note: learning-rate changes from 0.003 to 0.01" in result.stderr
    assert "note: max-steps changes from 10 to 20" in result.stderr
    assert "note: dropout changes from 0.1 to 0.3" in result.stderr
    assert [r["lr"] for r in events(out / "c", "train")] == [0.003, 0.01]
    ckpt = load(out / "c" / "latest.npz")
    assert ckpt.config.dropout == 0.3 and ckpt.training.train_config.max_steps == 20
    assert ckpt.training.optimizer["weight_decay"] == 0.1


@pytest.mark.parametrize("given", [[], ["--max-steps", 5], ["--max-steps", 4],
                                   ["--epochs", 0.05]])
def test_resuming_with_a_budget_already_reached_is_an_error(tmp_path, given):
    """A resume that would train nothing says so (exit 1, one line, naming the budget) and
    changes nothing, instead of logging an empty session."""
    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    assert train(corpus, *TINY, "--max-steps", 5, "--out-dir", out, "-q").exit_code == 0
    before = files_snapshot(out)
    result = train("--resume", out / "c", *given)
    option = "--epochs" if "--epochs" in given else "--max-steps"
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr
    assert f"already reached its {option}" in result.stderr
    assert f"give a larger {option}" in result.stderr
    assert files_snapshot(out) == before


def test_resume_problems_are_clean_errors(tmp_path):
    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    assert train(corpus, *TINY, "--max-steps", 3, "--out-dir", out, "-q").exit_code == 0
    (tmp_path / "nothing").mkdir()
    other = tmp_path / "other.txt"
    other.write_text("Ωmega " * 200)
    before = files_snapshot(out)
    for args, phrase in [
        (["--resume", tmp_path / "missing"], "no such run"),
        (["--resume", tmp_path / "nothing"], "no checkpoint"),
        ([other, "--resume", out / "c"], "'Ω'"),
    ]:
        result = train(*args, "--max-steps", 6, "-q")
        assert result.exit_code == 1 and phrase in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert files_snapshot(out) == before


def test_ctrl_c_while_reading_the_corpus_exits_130_without_a_run(tmp_path, monkeypatch):
    corpus = make_corpus(tmp_path / "c.txt")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("charrnn.data.read_text", interrupted)
    result = train(corpus, *TINY, "--max-steps", 3, "--out-dir", tmp_path / "runs")
    assert result.exit_code == 130 and "interrupted before training started" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_resume_takes_a_run_name_under_the_out_dir(tmp_path):
    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    assert train(corpus, *TINY, "--out-dir", out, "--max-steps", 4, "-q").exit_code == 0
    result = train("--resume", "c", "--out-dir", out, "--max-steps", 6, "-q")
    assert result.exit_code == 0, result.stderr
    assert load(out / "c" / "latest.npz").training.step == 6
