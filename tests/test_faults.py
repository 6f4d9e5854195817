"""Fault injection: SIGKILL at random moments and in the middle of a checkpoint write, Ctrl-C
twice, a full disk, a file-size limit, two trainings of one run, a checkpoint replaced while a
resume starts, a torn log line. What each proves is listed in the README's Reliability section.

Real processes are killed where a kill is the point; timing only decides where a kill lands,
never whether a test passes, and every wait polls with a generous deadline."""

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import charrnn
from charrnn import checkpoint, lock, runlog
from charrnn import train as train_module
from test_cli_train import _assert_clean_error
from helpers.processes import finish, wait_until
from helpers.train_helpers import TINY, all_finite, events, load, make_corpus, train

ENV = {**os.environ, "PYTHONPATH": str(Path(charrnn.__file__).parents[1])}
# checkpoint at every step, so that kills often land during a write
EVERY_STEP = [*TINY, "--checkpoint-every", 1, "--eval-every", 2, "--max-steps", 10_000, "--quiet"]


def spawn(*args, code=None):
    """`charrnn ARGS` in a new Python process; `code` runs first (e.g. a patch), in the process."""
    prefix = ["-m", "charrnn"] if code is None else [
        "-c", f"{code}\nimport sys\nfrom charrnn.cli import cli\ncli(sys.argv[1:], prog_name='charrnn')"]
    return subprocess.Popen([sys.executable, *prefix, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def temporaries(run):
    return set(run.glob(checkpoint.TMP_PREFIX + "*"))


@pytest.fixture
def corpus(tmp_path):
    return make_corpus(tmp_path / "c.txt")


# ----------------------------------------------------------------------------- SIGKILL


def test_sigkill_at_six_random_moments_never_loses_the_run(tmp_path, corpus):
    """Train, SIGKILL at a random moment, resume, six times over. After every kill latest.npz
    loads and is finite, its step never goes back, log.jsonl parses, a temporary file is never
    taken for a checkpoint, and the next start removes it and resumes from the saved step."""
    rng = random.Random(20240607)
    run = tmp_path / "runs" / "r"
    saved_step, left_behind = 0, set()
    for kill in range(6):
        if kill == 0:
            proc = spawn("train", corpus, *EVERY_STEP, "--out-dir", run.parent, "--name", "r")
            wait_until(lambda: (run / "latest.npz").exists(), proc)
        else:
            proc = spawn("train", "--resume", run, *EVERY_STEP)
            wait_until(lambda: len(events(run, "start")) == kill + 1, proc)
            start = events(run, "start")[-1]
            assert start["resumed"] is True and start["step"] == saved_step
            assert not left_behind & temporaries(run)  # cleaned before the start was logged
        time.sleep(rng.uniform(0, 0.3))
        proc.kill()
        finish(proc)
        assert proc.returncode == -signal.SIGKILL

        latest = checkpoint.load(run / "latest.npz")
        assert all_finite(latest)
        assert latest.training.step >= saved_step
        saved_step = latest.training.step
        contents = runlog.read_log_with_problems(run / "log.jsonl")
        # a kill can tear at most the line being written, which the next start then ends
        assert contents.bad_lines <= kill and contents.records[0]["event"] == "start"
        assert charrnn.resolve_checkpoint(run).name in ("best.npz", "latest.npz")
        left_behind = temporaries(run)
    assert saved_step > 0


KILL_IN_THIRD_SAVE = """
import os, signal
import numpy as np
real, calls = np.savez, []
def savez(f, **arrays):
    calls.append(1)
    if len(calls) == 3:  # half a file, then the power goes out
        f.write(b"PK\\x03\\x04" + bytes(1000))
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    real(f, **arrays)
np.savez = savez
"""


def test_a_kill_in_the_middle_of_a_checkpoint_write(tmp_path, corpus):
    """Deterministically killed while the third checkpoint is half written: the second one is
    intact and used, the torn temporary is never mistaken for a checkpoint, and the next
    start removes it and continues from step 2."""
    run = tmp_path / "runs" / "r"
    proc = spawn("train", corpus, *TINY, "--checkpoint-every", 1, "--eval-every", 1000,
                 "--max-steps", 100, "--out-dir", run.parent, "--name", "r", "-q",
                 code=KILL_IN_THIRD_SAVE)
    finish(proc)
    assert proc.returncode == -signal.SIGKILL
    [torn] = temporaries(run)
    assert torn.name.startswith(".tmp-latest-") and torn.stat().st_size > 0
    assert load(run / "latest.npz").training.step == 2
    assert [r["step"] for r in events(run, "checkpoint")] == [1, 2]
    assert charrnn.resolve_checkpoint(run) == run / "latest.npz"
    sampled = spawn("sample", run, "-n", 5, "--seed", 1)
    out, err = finish(sampled)
    assert sampled.returncode == 0 and len(out) == 6 and "latest.npz" in err

    result = train("--resume", run, "--max-steps", 4, "-q")
    assert result.exit_code == 0, result.stderr
    assert not torn.exists() and not temporaries(run)
    assert events(run, "start")[-1]["step"] == 2
    assert load(run / "latest.npz").training.step == 4


# ----------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_twice_in_quick_succession_saves_exits_130_and_resumes(tmp_path, corpus):
    """Two SIGINTs 0 to 30 ms apart, checkpointing at every step, so the second one lands
    during the final save or the exit: always exit 130 with the resume hint, a finite
    latest.npz at the step the log ended on, no temporary file; the run then resumes."""
    out = tmp_path / "runs"
    for i, gap in enumerate([0.0, 0.003, 0.03]):
        run = out / f"r{i}"
        proc = spawn("train", corpus, *EVERY_STEP, "--out-dir", out, "--name", run.name)
        wait_until(lambda: (run / "latest.npz").exists(), proc)
        proc.send_signal(signal.SIGINT)
        time.sleep(gap)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        stdout, stderr = finish(proc)
        assert proc.returncode == 130, (gap, stderr)
        assert stdout == "" and "Traceback" not in stderr and "Aborted" not in stderr
        assert f"latest.npz saved. Resume with: charrnn train --resume {run}" in stderr
        end = events(run)[-1]
        assert (end["event"], end["reason"]) == ("end", "interrupted")
        latest = load(run / "latest.npz")
        assert latest.training.step == end["step"] and all_finite(latest)
        assert not temporaries(run)
    step = load(run / "latest.npz").training.step
    result = train("--resume", run, "--max-steps", step + 2, "-q")
    assert result.exit_code == 0, result.stderr
    assert events(run, "start")[-1]["step"] == step and events(run)[-1]["step"] == step + 2


def test_sigterm_saves_and_exits_143(tmp_path, corpus):
    """`kill PID` (SIGTERM) stops a run like Ctrl-C does, with the shell's code for it: 128+15."""
    out = tmp_path / "runs"
    run = out / "t"
    proc = spawn("train", corpus, *EVERY_STEP, "--out-dir", out, "--name", run.name)
    wait_until(lambda: (run / "latest.npz").exists(), proc)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = finish(proc)
    assert proc.returncode == 143, stderr
    assert stdout == "" and "Traceback" not in stderr
    assert f"latest.npz saved. Resume with: charrnn train --resume {run}" in stderr
    end = events(run)[-1]
    assert (end["event"], end["reason"]) == ("end", "interrupted")
    assert load(run / "latest.npz").training.step == end["step"]
    assert not temporaries(run)


def test_ctrl_c_during_a_checkpoint_write_lets_the_write_finish(tmp_path, corpus, monkeypatch):
    """Two SIGINTs delivered inside the third checkpoint write (in-process, so exactly there):
    the write completes, training stops at that step, and nothing is written twice."""
    real, calls = np.savez, []

    def savez(f, **arrays):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        real(f, **arrays)

    monkeypatch.setattr(checkpoint.np, "savez", savez)
    options = dict(hidden_size=16, batch_size=4, seq_length=16, warmup_steps=0, max_steps=50,
                   checkpoint_every=1, eval_every=1000)
    result = train_module.train(corpus, options, out_dir=tmp_path / "runs", name="r")
    assert (result.reason, result.step) == ("interrupted", 3)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    run = tmp_path / "runs" / "r"
    assert [r["event"] for r in events(run)][-3:] == ["checkpoint", "interrupt", "end"]
    assert load(run / "latest.npz").training.step == 3 and len(calls) == 3
    assert not temporaries(run)


# ----------------------------------------------------------------------------- a full disk


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, corpus, monkeypatch):
    """The third checkpoint write fails half-way with ENOSPC: exit 1 with one sentence, the
    step-2 latest.npz byte for byte as it was, no temporary file left, the log readable."""
    run = tmp_path / "runs" / "r"
    real, calls, before = np.savez, [], {}

    def savez(f, **arrays):
        calls.append(1)
        if len(calls) == 3:
            before["latest"] = (run / "latest.npz").read_bytes()
            f.write(b"PK\x03\x04" + bytes(1000))
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f, **arrays)

    monkeypatch.setattr(checkpoint.np, "savez", savez)
    result = train(corpus, *TINY, "--checkpoint-every", 1, "--eval-every", 1000, "--max-steps",
                   10, "--out-dir", run.parent, "--name", "r", "-q")
    _assert_clean_error(result, f"could not write checkpoint {run / 'latest.npz'}",
                        "No space left on device", "the previous checkpoint is intact")
    assert (run / "latest.npz").read_bytes() == before["latest"]
    assert load(run / "latest.npz").training.step == 2
    assert not temporaries(run)
    assert [r["step"] for r in events(run, "checkpoint")] == [1, 2]


def test_a_full_disk_for_the_log_is_one_sentence(tmp_path, corpus, monkeypatch):
    """log.jsonl cannot grow (ENOSPC on its 4th line): exit 1, one sentence, checkpoints intact."""
    real_open = open

    class FullLog:
        def __init__(self, f):
            self.f, self.lines = f, 0

        def write(self, data):
            self.lines += 1
            if self.lines > 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def close(self):
            self.f.close()

    def fake_open(path, mode="r", **kwargs):  # only the log is opened for appending
        f = real_open(path, mode, **kwargs)
        return FullLog(f) if mode == "ab" else f

    monkeypatch.setattr(runlog, "open", fake_open, raising=False)
    run = tmp_path / "runs" / "r"
    result = train(corpus, *TINY, "--checkpoint-every", 1, "--max-steps", 10, "--out-dir",
                   run.parent, "--name", "r", "-q")
    _assert_clean_error(result, f"could not write {run / 'log.jsonl'}", "No space left on device",
                        "the checkpoints are intact")
    assert all_finite(load(run / "latest.npz"))


FILE_SIZE_LIMIT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so that a write past the limit fails (EFBIG)
limit = int(sys.argv.pop(1))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
def test_a_file_size_limit_in_a_real_process(tmp_path, corpus):
    """The OS refuses to let the checkpoint grow past half its size (RLIMIT_FSIZE): the
    resumed run stops with one sentence and the previous checkpoint is untouched."""
    run = tmp_path / "runs" / "r"
    assert train(corpus, *TINY, "--max-steps", 2, "--out-dir", run.parent, "--name", "r",
                 "-q").exit_code == 0
    before = (run / "latest.npz").read_bytes()
    proc = spawn(len(before) // 2, "train", "--resume", run, "--max-steps", 4,
                 "--checkpoint-every", 1, "-q", code=FILE_SIZE_LIMIT)
    stdout, stderr = finish(proc)
    assert proc.returncode == 1 and stdout == ""
    assert stderr.startswith("Error: could not write checkpoint") and stderr.count("\n") == 1
    assert "File too large" in stderr and "the previous checkpoint is intact" in stderr
    assert (run / "latest.npz").read_bytes() == before and not temporaries(run)


# ----------------------------------------------------------------------------- the run lock


def test_a_run_is_trained_by_one_process_at_a_time_and_a_crash_frees_it(tmp_path, corpus):
    run = tmp_path / "runs" / "r"
    proc = spawn("train", corpus, *EVERY_STEP, "--out-dir", run.parent, "--name", "r")
    try:
        wait_until(lambda: (run / "latest.npz").exists(), proc)
        _assert_clean_error(train("--resume", run, "--max-steps", 10**6, "-q"),
                            "is being trained by another charrnn process", f"(pid {proc.pid})")
        _assert_clean_error(train(corpus, *TINY, "--out-dir", run.parent, "--name", "r"),
                            "already exists")
        assert lock.is_running(run)
    finally:
        proc.kill()
        finish(proc)
    assert not lock.is_running(run)  # the kernel dropped the dead process's lock
    step = load(run / "latest.npz").training.step
    result = train("--resume", run, "--max-steps", step + 1, "-q")
    assert result.exit_code == 0, result.stderr
    assert events(run)[-1]["step"] == step + 1


def test_a_checkpoint_replaced_while_a_resume_starts_is_not_overwritten(tmp_path, corpus,
                                                                       monkeypatch):
    """Another process saves latest.npz between this resume's load and its taking the lock:
    refused, instead of training on from the older state and overwriting the newer one."""
    run = tmp_path / "runs" / "r"
    assert train(corpus, *TINY, "--max-steps", 3, "--out-dir", run.parent, "--name", "r",
                 "-q").exit_code == 0
    real_load = checkpoint.load

    def load_then_replaced(path):
        ckpt = real_load(path)
        shutil.copy(path, run / "newer.npz")
        os.replace(run / "newer.npz", path)  # what the other process's save does
        return ckpt

    monkeypatch.setattr(checkpoint, "load", load_then_replaced)
    _assert_clean_error(train("--resume", run, "--max-steps", 6, "-q"),
                        "was replaced while this command started", "run the command again")
    assert len(events(run, "start")) == 1


def test_a_run_killed_before_its_first_checkpoint_says_what_to_do(tmp_path, corpus):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "log.jsonl").write_text('{"event": "start", "step": 0}\n')
    _assert_clean_error(train(corpus, *TINY, "--out-dir", run.parent, "--name", "r"),
                        "has no checkpoint to continue from", f"delete {run}")
    _assert_clean_error(train("--resume", run), "has no checkpoint to resume from")


def test_a_torn_last_log_line_does_not_swallow_the_next_start(tmp_path, corpus):
    run = tmp_path / "runs" / "r"
    assert train(corpus, *TINY, "--max-steps", 3, "--out-dir", run.parent, "--name", "r",
                 "-q").exit_code == 0
    with open(run / "log.jsonl", "a") as f:
        f.write('{"event": "train", "st')  # the writer died mid-line
    assert train("--resume", run, "--max-steps", 5, "-q").exit_code == 0
    contents = runlog.read_log_with_problems(run / "log.jsonl")
    assert [r["step"] for r in contents.records if r["event"] == "start"] == [0, 3]
    assert contents.bad_lines == 1 and contents.records[-1]["event"] == "end"
