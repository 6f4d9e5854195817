"""Signals and limits, in real processes: a job stopped with SIGSTOP does not use up its time
limit, Ctrl-C exits 130 without "Aborted!" in every command and at any moment of train's
start, and running out of memory under a ulimit is one line with latest.npz intact.

Timing decides only where a signal lands, never whether a test passes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import cli
from helpers.processes import DEADLINE, finish, wait_until
from test_faults import spawn
from helpers.train_helpers import TINY, events, load, make_corpus

ENV = {**os.environ, "PYTHONPATH": str(Path(charrnn.__file__).parents[1])}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("signals")
    corpus = make_corpus(root / "c.txt")
    make_corpus(root / "long.txt", chars=3_000_000)
    result = CliRunner().invoke(cli, ["train", str(corpus), *TINY, "--max-steps", "4",
                                      "--eval-every", "2", "--out-dir", str(root / "runs"),
                                      "--name", "r", "-q"])
    assert result.exit_code == 0, result.stderr
    return root


# ----------------------------------------------------------------------------- SIGSTOP


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_time_stopped_is_not_training_time(tmp_path):
    """Stopped (SIGSTOP) for longer than its whole --time-limit, then continued: the run goes
    on training afterwards and ends on its time limit with a training time near the limit,
    not the stop's length."""
    corpus = make_corpus(tmp_path / "c.txt")
    run = tmp_path / "runs" / "r"
    proc = spawn("train", corpus, *TINY, "--time-limit", "2s", "--checkpoint-every", 1,
                 "--eval-every", 10_000, "--out-dir", run.parent, "--name", "r", "-q")
    wait_until(lambda: (run / "latest.npz").exists(), proc)
    proc.send_signal(signal.SIGSTOP)
    try:
        stopped_step = load(run / "latest.npz").training.step
        time.sleep(4)
    finally:
        proc.send_signal(signal.SIGCONT)
    finish(proc)
    assert proc.returncode == 0
    end = events(run, "end")[-1]
    assert end["reason"] == "time_limit"
    assert 2 <= end["time"] < 3.5  # had the 4 s counted, it would be over 4
    assert end["step"] > stopped_step + 1  # it trained on after SIGCONT


# ----------------------------------------------------------------------------- Ctrl-C


def interrupt(args, cwd, ready, delay=0.0):
    """Start `charrnn ARGS`, wait until `ready(proc)` and `delay`, send SIGINT; (code, out, err
    without the import-time lines that tell how far it got)."""
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "charrnn",
                             *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.monotonic() + DEADLINE
        while not ready(proc):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "timed out"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(line for line in err.splitlines(True) if not line.startswith("import time"))
    return proc.returncode, out, err


def _started(proc):
    """charrnn's own code runs: the interpreter's start-up (before any program can handle a
    SIGINT) is over once click has been imported, which `python -X importtime` reports."""
    return proc.stderr.readline().rpartition("|")[2].strip() == "click"


def _first_output(proc):  # the first character of a stream on stdout
    return proc.stdout.read(1) != ""


def _using(proc):  # the checkpoint was loaded: its name is on stderr
    return proc.stderr.readline().startswith("using ")


COMMANDS = [  # (id, argv, ready, delay)
    *[(f"train after {delay}s", ["train", "c.txt", *TINY, "--max-steps", 10**6, "--out-dir",
                                 "out"], _started, delay) for delay in (0, 0.03, 0.1, 0.3, 0.7, 1.2)],
    ("sample while streaming", ["sample", "runs/r", "-n", 10**8], _first_output, 0.1),
    ("sample while importing", ["sample", "runs/r", "-n", 10**8], _started, 0.01),
    ("sample while loading", ["sample", "runs/r", "-n", 10**8], _started, 0.05),
    ("eval while scoring", ["eval", "runs/r", "long.txt"], _using, 0.5),
    ("eval while starting", ["eval", "runs/r", "long.txt"], _started, 0.02),
    ("logs while starting", ["logs", "--out-dir", "runs"], _started, 0),
    ("info while starting", ["info", "runs/r"], _started, 0),
]


@pytest.mark.parametrize("case", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_ctrl_c_exits_130_without_aborted_or_traceback(world, tmp_path, case):
    _, args, ready, delay = case
    code, out, err = interrupt(args, world, ready, delay)
    assert "Aborted" not in err and "Traceback" not in err, err
    assert code == 130 or (code == 0 and ("logs" in args or "info" in args)), (code, err)
    if "eval" in args and out:  # interrupted while scoring: what was scored, marked partial
        assert "partial, interrupted" in out


def test_ctrl_c_while_following_a_training_run_exits_130(world, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from charrnn.lock import RunLock; "
         f"RunLock({str(world / 'runs' / 'r')!r}).acquire(); print('locked', flush=True); "
         "sys.stdin.readline()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=ENV)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, out, err = interrupt(["logs", "runs/r", "-f", "--out-dir", "runs"], world,
                                   _started, 1.5)
    finally:
        holder.kill()
        holder.wait()
    assert code == 130 and "Aborted" not in err and "Traceback" not in err, err
    assert "running" in out


def test_an_interrupted_eval_shows_its_partial_score(world, monkeypatch):
    from charrnn import scoring

    real = scoring.score_steps

    def two_windows(*args, **kwargs):
        for i, step in enumerate(real(*args, **kwargs)):
            if i == 2:
                raise KeyboardInterrupt
            yield step

    monkeypatch.setattr(scoring, "score_steps", two_windows)
    for fmt in ("table", "json"):
        result = CliRunner().invoke(cli, ["eval", str(world / "runs" / "r"),
                                          str(world / "c.txt"), "--format", fmt])
        assert result.exit_code == 130 and "Aborted" not in result.stderr, result.output
        if fmt == "json":
            import json
            report = json.loads(result.stdout)
            assert report["partial"] is True and report["chars_scored"] == 512
        else:
            assert "512 characters of" in result.stdout and "partial, interrupted" in result.stdout


# ----------------------------------------------------------------------------- memory


MEMORY_LIMIT = """
import resource, sys
import numpy, rich, tqdm, click  # the libraries, loaded before the limit
import charrnn.cli, charrnn.train, charrnn.checkpoint, charrnn.ui, charrnn.sampling
extra = int(sys.argv.pop(1))
with open("/proc/self/status") as f:
    used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (used + extra, used + extra))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc")
def test_running_out_of_memory_under_a_ulimit_is_one_line_and_keeps_latest(tmp_path):
    """A model that passes the up-front memory check (the machine has the memory) but not a
    100 MB address-space limit: one sentence, exit 1, latest.npz byte for byte as it was."""
    corpus = make_corpus(tmp_path / "c.txt", chars=20_000)
    run = tmp_path / "runs" / "m"
    big = ["--hidden-size", 512, "--batch-size", 64, "--seq-length", 50, "--threads", 1]
    result = CliRunner().invoke(cli, ["train", str(corpus), *map(str, big), "--max-steps", "1",
                                      "--out-dir", str(run.parent), "--name", "m", "-q"])
    assert result.exit_code == 0, result.stderr
    before = (run / "latest.npz").read_bytes()
    env = {**ENV, "OPENBLAS_NUM_THREADS": "1", "CHARRNN_PARALLEL": "threads"}
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_LIMIT + "from charrnn.__main__ import main\nmain()",
         str(100 << 20), "train", "--resume", str(run), "--max-steps", "3", "-q"],
        capture_output=True, text=True, env=env, timeout=DEADLINE)
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    assert proc.stderr.startswith("Error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "out of memory" in proc.stderr and "latest.npz is as it was" in proc.stderr
    assert (run / "latest.npz").read_bytes() == before


def test_memory_error_anywhere_is_one_line(world, monkeypatch):
    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("charrnn.checkpoint.load", exhausted)
    for args in (["info", "runs/r"], ["sample", "runs/r"], ["eval", "runs/r", "c.txt"]):
        monkeypatch.chdir(world)
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
        assert "ran out of memory" in result.stderr
