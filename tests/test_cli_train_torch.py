"""`charrnn train --engine torch|numpy --device ...` from the command line: errors before
anything is created, checkpoints any engine (or no PyTorch at all) reads, resumes across
engines, and data-parallel training under torchrun. Subprocesses run in tmp_path."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.cli import cli

ROOT = Path(__file__).resolve().parent.parent
NO_TORCH = "Error: --engine torch needs PyTorch: pip install torch\n"
SMALL = ["--hidden-size", "8", "--batch-size", "4", "--seq-length", "8", "--eval-every", "5",
         "--checkpoint-every", "5", "--seed", "1", "--dtype", "float64", "--dropout", "0.1",
         "--lr-schedule", "constant", "--warmup-steps", "2", "--threads", "1"]


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


needs_torch = pytest.mark.skipif(_torch() is None, reason="PyTorch is not installed")


@pytest.fixture
def corpus(tmp_path):
    rng = random.Random(0)
    path = tmp_path / "c.txt"
    path.write_text("".join(rng.choice("abcdef gh\n") for _ in range(6000)), encoding="utf-8")
    return path


def charrnn(args, cwd, block_torch=False, launcher=()):
    """Run `charrnn ARGS` in a subprocess in `cwd`; with block_torch, `import torch` fails in it."""
    code = ("import sys\n" + ("sys.modules['torch'] = None\n" if block_torch else "")
            + "from charrnn.__main__ import main\nsys.argv = ['charrnn', *sys.argv[1:]]\nmain()")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               NO_COLOR="1", PYTHONIOENCODING="utf-8")
    argv = [sys.executable, *launcher, "-c", code] if not launcher else \
        [sys.executable, *launcher, "-m", "charrnn"]
    return subprocess.run([*argv, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def train(args, cwd):
    result = CliRunner().invoke(cli, ["train", *map(str, args), "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _params(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files if f[k].dtype.kind == "f"}


def _start(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()
            if '"start"' in line]


def test_engine_torch_without_pytorch_is_one_line_and_creates_nothing(tmp_path, corpus):
    done = charrnn(["train", corpus, "--engine", "torch", "--max-steps", "2"], tmp_path,
                   block_torch=True)
    assert (done.returncode, done.stderr, done.stdout) == (1, NO_TORCH, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


def test_the_numpy_engine_on_a_gpu_is_one_line_and_creates_nothing(tmp_path, corpus,
                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["train", str(corpus), "--engine", "numpy", "--device",
                                      "cuda"])
    assert result.exit_code == 1
    assert result.stderr == ("Error: the numpy engine runs on the CPU only, not on 'cuda'; use "
                             "--engine torch for other devices.\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


def test_the_numpy_engine_under_torchrun_is_one_line_and_creates_nothing(tmp_path, corpus,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["train", str(corpus), "--engine", "numpy"])
    assert result.exit_code == 1
    assert result.stderr == ("Error: the numpy engine trains in one process; under torchrun "
                             "use --engine torch.\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


@needs_torch
@pytest.mark.skipif(_torch() is not None and _torch().cuda.is_available(), reason="has CUDA")
def test_a_cuda_device_on_a_cpu_machine_is_one_line_and_creates_nothing(tmp_path, corpus,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["train", str(corpus), "--engine", "torch", "--device",
                                      "cuda:1"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: --device cuda:1: this PyTorch")
    assert result.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


@needs_torch
def test_torch_checkpoints_sample_and_evaluate_without_pytorch(tmp_path, corpus, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train([corpus, "--engine", "torch", "--device", "cpu", "--max-steps", "5", "--out-dir",
           "runs", *SMALL], tmp_path)
    run = tmp_path / "runs" / "c"
    start = _start(run)[0]
    assert (start["engine"], start["device"]) == ("torch", "cpu")
    sample = charrnn(["sample", run, "--length", "20", "--seed", "0"], tmp_path, block_torch=True)
    assert sample.returncode == 0 and len(sample.stdout) >= 20, sample.stderr
    evaluated = charrnn(["eval", run, corpus, "--format", "json"], tmp_path, block_torch=True)
    assert evaluated.returncode == 0, evaluated.stderr
    assert 0 < json.loads(evaluated.stdout)["nats_per_char"] < 5
    info = charrnn(["info", run], tmp_path, block_torch=True)
    assert info.returncode == 0 and "Traceback" not in info.stderr


@needs_torch
@pytest.mark.parametrize("first,second", [("torch", "numpy"), ("numpy", "torch")])
def test_a_run_resumes_on_the_other_engine_as_if_never_stopped(tmp_path, corpus, monkeypatch,
                                                               first, second):
    monkeypatch.chdir(tmp_path)
    train([corpus, "--engine", "numpy", "--max-steps", "10", "--out-dir", "runs", "--name",
           "whole", *SMALL], tmp_path)
    train([corpus, "--engine", first, "--max-steps", "5", "--out-dir", "runs", "--name",
           "split", *SMALL], tmp_path)
    train(["--resume", "split", "--engine", second, "--max-steps", "10", "--out-dir", "runs"],
          tmp_path)
    whole, split = (_params(tmp_path / "runs" / n / "latest.npz") for n in ("whole", "split"))
    assert whole.keys() == split.keys()
    assert max(np.abs(whole[k] - split[k]).max() for k in whole) < 1e-10
    engines = [s["engine"] for s in _start(tmp_path / "runs" / "split")]
    assert engines == [first, second]  # the engine is the session's, not the run's


@needs_torch
def test_torchrun_trains_like_one_process_and_only_rank_0_writes(tmp_path, corpus):
    args = ["train", corpus.name, "--engine", "torch", "--max-steps", "6", "--out-dir", "runs",
            *SMALL, "--batch-size", "5"]
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    ddp = charrnn([*args, "--name", "ddp"], tmp_path, launcher=launcher)
    assert ddp.returncode == 0, ddp.stderr
    one = charrnn([*args, "--name", "one"], tmp_path)
    assert one.returncode == 0, one.stderr
    runs = tmp_path / "runs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "runs"]
    assert sorted(p.name for p in runs.iterdir()) == ["ddp", "one"]  # rank 1 made no run
    a, b = _params(runs / "ddp" / "latest.npz"), _params(runs / "one" / "latest.npz")
    assert max(np.abs(a[k] - b[k]).max() for k in a) < 1e-10

    def evals(name):
        return [e for e in map(json.loads, (runs / name / "log.jsonl").open())
                if e["event"] == "eval"]

    # the scheduled evaluation at 5 and the end's at 6, every rank taking part in both
    assert [(e["step"], e.get("final")) for e in evals("ddp")] == [(5, None), (6, True)]
    assert [e["val_loss"] for e in evals("ddp")] == \
        pytest.approx([e["val_loss"] for e in evals("one")], abs=1e-10)
    assert [s.get("processes") for s in _start(runs / "ddp")] == [2]
    assert ddp.stderr.count("done (max steps)") == 1  # rank 1 shows nothing
    logs = charrnn(["logs", "ddp", "--out-dir", "runs"], tmp_path)
    assert "torch on cpu, 2 processes" in logs.stdout, logs.stderr


def _long_run_until_a_checkpoint(argv, cwd):
    """`python ARGV ...` training the run `runs/long` (in its own process group) without end,
    returned once its first checkpoint is logged (at most 120 s)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, *argv, "--max-steps", "1000000", "--out-dir", "runs", "--name", "long",
         "--checkpoint-every", "20", *SMALL[:6], "-q"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    deadline = time.monotonic() + 120
    while not any(e["event"] == "checkpoint" for e in _events(cwd / "runs" / "long")):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"no checkpoint: {proc.communicate()}")
        time.sleep(0.2)
    return proc


def _events(run):
    path = run / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@needs_torch
@pytest.mark.parametrize("stop", ["ctrl-c", "dead rank"])
def test_torchrun_stops_cleanly_on_ctrl_c_or_a_dead_rank(tmp_path, corpus, stop):
    """Ctrl-C (SIGINT to the terminal's process group) stops every rank, rank 0 saving
    latest.npz; a rank killed outright ends the session on rank 0 as `rank_lost`, latest.npz
    as it was last saved."""
    proc = _long_run_until_a_checkpoint(
        ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "charrnn",
         "train", corpus.name, "--engine", "torch"], tmp_path)
    run = tmp_path / "runs" / "long"
    try:
        if stop == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            ranks = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                   text=True).stdout.split()
            assert len(ranks) == 2
            os.kill(int(max(ranks, key=int)), signal.SIGKILL)  # the younger: rank 1
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    events = _events(run)
    end = events[-1]
    assert end["event"] == "end"
    if stop == "ctrl-c":
        # latest.npz holds the step it stopped at: saved after the interrupt, or just before it
        # when Ctrl-C came as the periodic checkpoint of that step was written
        assert end["reason"] == "interrupted"
        assert [e["step"] for e in events if e["event"] == "interrupt"] == [end["step"]]
        latest = [e["step"] for e in events if e["event"] == "checkpoint" and e["kind"] == "latest"]
        assert latest[-1] == end["step"]
    else:
        assert end["reason"] == "rank_lost"
        assert "another process of this data-parallel run stopped" in err
    from charrnn import checkpoint

    saved = [e["step"] for e in events if e["event"] == "checkpoint" and e["kind"] == "latest"]
    assert checkpoint.load(run / "latest.npz").training.step == saved[-1]  # whole and readable


@needs_torch
def test_nproc_per_node_launches_in_process_and_ctrl_c_exits_130_without_a_traceback(
        tmp_path, corpus):
    """`charrnn train --nproc-per-node 2`: PyTorch's elastic launch run by charrnn itself (2 CPU
    processes, gloo); Ctrl-C (SIGINT to the process group) stops every rank, rank 0 saves
    latest.npz, and the command exits 130 with no traceback (plain torchrun prints its own
    SignalException)."""
    proc = _long_run_until_a_checkpoint(
        ["-m", "charrnn", "train", corpus.name, "--nproc-per-node", "2"], tmp_path)
    run = tmp_path / "runs" / "long"
    try:
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "SignalException" not in err and out == ""
    assert err.count("latest.npz saved") <= 1
    events = _events(run)
    assert [s.get("processes") for s in events if s["event"] == "start"] == [2]
    end = events[-1]
    assert (end["event"], end["reason"]) == ("end", "interrupted")
    from charrnn import checkpoint

    assert checkpoint.load(run / "latest.npz").training.step == end["step"]  # whole, current
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["long"]


def test_nproc_per_node_wants_the_torch_engine_and_no_torchrun_around_it(tmp_path, corpus,
                                                                          monkeypatch):
    runner = CliRunner()
    result = runner.invoke(cli, ["train", str(corpus), "--nproc-per-node", "2", "--engine",
                                 "numpy", "--out-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "--nproc-per-node trains with the torch engine" in \
        result.stderr
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    result = runner.invoke(cli, ["train", str(corpus), "--nproc-per-node", "2", "--out-dir",
                                 str(tmp_path / "runs")])
    assert result.exit_code == 2 and "under torchrun, leave it out" in result.stderr
    assert not (tmp_path / "runs").exists()


def _torchrun(args, cwd, launcher):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
              "2", "-m", "charrnn", "train", "--engine", "torch"] if launcher == "torchrun" \
        else [sys.executable, "-m", "charrnn", "train", "--nproc-per-node", "2"]
    return subprocess.run([*prefix, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@needs_torch
@pytest.mark.parametrize("launcher", ["torchrun", "--nproc-per-node"])
def test_a_data_parallel_start_that_fails_its_checks_creates_nothing(tmp_path, corpus, launcher):
    """`--batch-size 1` on 2 ranks is refused before the run directory exists, as one process
    refuses its own mistakes: no runs/NAME with a lock and an empty log."""
    result = _torchrun([corpus.name, "--batch-size", "1", "--max-steps", "3", "--out-dir",
                        "runs", "--name", "b", "-q"], tmp_path, launcher)
    assert result.returncode == 1
    assert "Error: --batch-size 1 is split across 2 processes" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]
    if launcher != "torchrun":
        assert "Traceback" not in result.stderr and "killed" not in result.stderr
        assert "exitcode" not in result.stderr  # the launcher's own report


@needs_torch
def test_a_locked_run_under_data_parallel_says_so_plainly(tmp_path, corpus):
    """Another process trains the run: rank 0 says the run is locked, and no rank prints the
    backend's text (gloo's addresses, "GLHF")."""
    from charrnn.lock import RunLock

    train([corpus, "--max-steps", "2", "--out-dir", tmp_path / "runs", "--name", "r",
           *SMALL], tmp_path)
    with RunLock(tmp_path / "runs" / "r"):
        result = _torchrun(["--resume", "r", "--max-steps", "4", "--out-dir", "runs", "-q"],
                           tmp_path, "--nproc-per-node")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith("Error: ") for line in lines), result.stderr
    assert any("pid" in line or "another" in line or "training" in line for line in lines)
    assert "gloo" not in result.stderr and "GLHF" not in result.stderr
