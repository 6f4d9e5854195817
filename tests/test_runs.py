"""charrnn.runs: run status and summaries, finding runs and checkpoints.

`make_records` and `write_run` make realistic runs for these tests and for test_runlog.py,
test_lock.py and test_cli_logs.py.
"""

import json
import math

import pytest

from charrnn import runs
from charrnn.errors import RunError

CONFIG = {
    "model": {"cell": "lstm", "vocab_size": 65, "hidden_size": 256, "num_layers": 2,
              "dropout": 0.1},
    "train": {"batch_size": 32, "seq_length": 64, "optimizer": "adam", "learning_rate": 0.002},
    "corpus": "data/tiny.txt",
    "num_params": 805441,
    "lr_schedule": {"kind": "constant"},
}


def make_records(steps=200, every=10, eval_every=50, end="max_steps", start_loss=4.17,
                 speed=10000.0, cell="lstm", wall="2024-05-01T14:03:00+00:00", step0=0,
                 time0=0.0, resumed=False):
    """The records a training of `steps` steps writes: start, train every `every` steps, eval
    and checkpoints every `eval_every`, and an `end` with `end` as reason (None: no end)."""
    config = json.loads(json.dumps(CONFIG))
    config["model"]["cell"] = cell
    recs = [{"event": "start", "step": step0, "time": time0, "epoch": step0 / 100,
             "wall": wall, "resumed": resumed, "pid": 4242, "config": config}]
    best = None
    for step in range(step0 + every, step0 + steps + 1, every):
        t, epoch = time0 + (step - step0) * 0.05, step / 100
        loss = 1.3 + (start_loss - 1.3) * math.exp(-step / 60)
        recs.append({"event": "train", "step": step, "time": t, "epoch": epoch, "loss": loss,
                     "lr": 0.002, "grad_norm": 1.0 + step / 1000, "chars_per_sec": speed})
        if eval_every and step % eval_every == 0:
            val = loss + 0.1
            best = val if best is None else min(best, val)
            recs.append({"event": "eval", "step": step, "time": t, "epoch": epoch,
                         "val_loss": val, "val_bpc": val / math.log(2), "best_val_loss": best})
            recs.append({"event": "checkpoint", "step": step, "time": t, "epoch": epoch,
                         "path": "best.npz", "kind": "best"})
    if end == "interrupted":
        recs.append({"event": "interrupt", "step": step, "time": t, "epoch": epoch})
    if end is not None:
        recs.append({"event": "end", "step": step, "time": t, "epoch": epoch, "reason": end,
                     "best_val_loss": best})
    return recs


def write_run(out_dir, name, records=None, tail="", checkpoint=True, **kwargs):
    """A run directory `out_dir/name` whose log.jsonl holds `records` (default: make_records
    with kwargs), then the raw text `tail` (e.g. a torn line)."""
    run_dir = out_dir / name
    run_dir.mkdir(parents=True, exist_ok=True)
    if records is None:
        records = make_records(**kwargs)
    text = "".join(json.dumps(r) + "\n" for r in records)
    (run_dir / "log.jsonl").write_text(text + tail, encoding="utf-8")
    if checkpoint:
        (run_dir / "best.npz").write_bytes(b"not really a checkpoint")
    return run_dir


# ----------------------------------------------------------------------------- status


@pytest.mark.parametrize("end, status", [
    ("max_steps", "finished"), ("epochs", "finished"), ("early_stopping", "finished"),
    ("time_limit", "finished"), ("interrupted", "interrupted"), ("diverged", "diverged"),
    (None, "crashed"),
])
def test_status_from_the_log(tmp_path, end, status):
    run_dir = write_run(tmp_path, "r", end=end)
    assert runs.summarize(run_dir).status == status


def test_status_follows_the_last_start_of_a_resumed_run(tmp_path):
    first = make_records(steps=100, end="interrupted")
    second = make_records(steps=100, step0=100, time0=5.0, end=None, resumed=True)
    run_dir = write_run(tmp_path, "r", first + second)
    info = runs.summarize(run_dir)
    assert info.status == "crashed"
    assert info.resumes == 1 and info.steps == 200 and info.train_time == pytest.approx(10.0)
    run_dir = write_run(tmp_path, "r", first + make_records(steps=100, step0=100, resumed=True))
    assert runs.summarize(run_dir).status == "finished"


def test_summary_numbers(tmp_path):
    records = make_records(steps=200, speed=12345.0)
    info = runs.summarize(write_run(tmp_path, "r", records))
    evals = [r for r in records if r["event"] == "eval"]
    best = min(evals, key=lambda r: r["val_loss"])
    assert info.best_val_loss == pytest.approx(best["val_loss"])
    assert info.best_val_bpc == pytest.approx(best["val_loss"] / math.log(2))
    assert info.best_val_step == best["step"] == 200
    assert info.last_train_loss == pytest.approx(records[-4]["loss"])
    assert (info.cell, info.num_layers, info.hidden_size) == ("lstm", 2, 256)
    assert info.size == "lstm 2×256" and info.num_params == 805441
    assert info.steps == 200 and info.epochs == pytest.approx(2.0)
    assert info.chars_per_sec == pytest.approx(12345.0)
    assert info.started_at.year == 2024 and info.end_reason == "max_steps"
    assert json.loads(json.dumps(info.to_json()))["size"] == "lstm 2×256"


def test_summary_of_a_run_without_eval_or_records(tmp_path):
    info = runs.summarize(write_run(tmp_path, "r", eval_every=0, end=None))
    assert info.best_val_loss is None and info.best_val_bpc is None
    assert info.last_train_loss is not None
    info = runs.summarize(write_run(tmp_path, "empty", []))
    assert info.status == "crashed" and info.steps is None and info.size is None
    (tmp_path / "ckpt_only").mkdir()
    (tmp_path / "ckpt_only" / "latest.npz").write_bytes(b"x")
    assert runs.summarize(tmp_path / "ckpt_only").status == "no log"


# ----------------------------------------------------------------------------- finding runs


def test_list_runs_newest_first_skipping_non_runs(tmp_path):
    write_run(tmp_path, "old", wall="2024-01-01T00:00:00+00:00")
    write_run(tmp_path, "new", wall="2024-06-01T00:00:00+02:00")
    write_run(tmp_path, "mid", wall="2024-03-01T00:00:00Z")
    (tmp_path / "not_a_run").mkdir()
    (tmp_path / "stray.txt").write_text("hi")
    assert [r.name for r in runs.list_runs(tmp_path)] == ["new", "mid", "old"]
    assert runs.list_runs(tmp_path / "missing") == []


def test_resolve_run_by_name_path_or_file(tmp_path):
    run_dir = write_run(tmp_path, "shakespeare")
    assert runs.resolve_run("shakespeare", tmp_path) == run_dir
    assert runs.resolve_run(str(run_dir), "elsewhere") == run_dir
    assert runs.resolve_run(str(run_dir / "best.npz"), "elsewhere") == run_dir
    with pytest.raises(RunError, match="did you mean: shakespeare"):
        runs.resolve_run("shakespear", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="is not a run"):
        runs.resolve_run("empty", tmp_path)
    with pytest.raises(RunError, match="no runs in"):
        runs.resolve_run("x", tmp_path / "missing")


def test_resolve_checkpoint_prefers_best_and_newest_run_needs_one(tmp_path):
    run_dir = write_run(tmp_path, "a", checkpoint=False, wall="2024-01-01T00:00:00+00:00")
    with pytest.raises(RunError, match="no checkpoint"):
        runs.resolve_checkpoint(run_dir)
    (run_dir / "latest.npz").write_bytes(b"x")
    assert runs.resolve_checkpoint(run_dir) == run_dir / "latest.npz"
    (run_dir / "best.npz").write_bytes(b"x")
    assert runs.resolve_checkpoint(run_dir) == run_dir / "best.npz"
    write_run(tmp_path, "b", checkpoint=False, wall="2024-02-01T00:00:00+00:00")
    assert runs.newest_run(tmp_path) == run_dir
    assert runs.newest_run(tmp_path, with_checkpoint=False) == tmp_path / "b"
    with pytest.raises(RunError, match="charrnn train"):
        runs.newest_run(tmp_path / "missing")



def test_resolve_checkpoint_for_resume_prefers_latest(tmp_path):
    run_dir = write_run(tmp_path, "a", checkpoint=False)
    with pytest.raises(RunError, match="has no checkpoint to resume from"):
        runs.resolve_checkpoint(run_dir, resume=True)
    (run_dir / "best.npz").write_bytes(b"x")
    assert runs.resolve_checkpoint("a", tmp_path, resume=True) == run_dir / "best.npz"
    (run_dir / "latest.npz").write_bytes(b"x")
    assert runs.resolve_checkpoint("a", tmp_path, resume=True) == run_dir / "latest.npz"
    assert runs.resolve_checkpoint("a", tmp_path) == run_dir / "best.npz"
    assert runs.resolve_checkpoint(run_dir / "best.npz", resume=True) == run_dir / "best.npz"
    with pytest.raises(RunError, match="no run named 'b'"):
        runs.resolve_checkpoint("b", tmp_path, resume=True)
    with pytest.raises(RunError, match="did you mean: a"):  # as the other commands say it
        runs.resolve_checkpoint("aa", tmp_path, resume=True)
    with pytest.raises(RunError, match="cannot resume .*/b: no such run directory"):
        runs.resolve_checkpoint(tmp_path / "b", tmp_path, resume=True)
