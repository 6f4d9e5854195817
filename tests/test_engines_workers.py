"""Worker processes for a split batch: the same numbers as threads, and never a stray process."""

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import charrnn
from charrnn.engines import workers
from charrnn.cells import CELLS
from charrnn.model import CharRNN, ModelConfig
from charrnn.engines.parallel import Parallel, default_threads

pytestmark = pytest.mark.skipif(not workers.AVAILABLE, reason="worker processes need memfd (Linux)")


def _run_both(cell, dtype, monkeypatch, steps=3):
    """Losses, gradients and states of a few dropout steps and an evaluation, computed with
    the batch split in threads, then in worker processes."""
    results = {}
    for mode in ("threads", "processes"):
        monkeypatch.setenv("CHARRNN_PARALLEL", mode)
        model = CharRNN(ModelConfig(cell, 11, 8, 2, dropout=0.2), seed=0, dtype=dtype)
        par = Parallel(model, threads=3)  # 7 streams: chunks of 2, 2 and 3
        assert par.parallelism == mode
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 11, (7, 5)), rng.integers(0, 11, (7, 5))
        state, out = model.init_state(7), []
        with par:
            for _ in range(steps):
                loss, grads, state = par.loss_and_grads(x, y, state, np.random.default_rng(1))
                out.append((loss, grads, state))
            out.append(par.loss(x, y, state))
        results[mode] = out
    return results["threads"], results["processes"]


def _assert_same(a, b):
    """Exactly equal nested (loss, dict/tuple of arrays) results."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _assert_same(u, v)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS)
def test_processes_compute_exactly_what_threads_compute(cell, dtype, monkeypatch):
    threads, processes = _run_both(cell, dtype, monkeypatch)
    _assert_same(threads, processes)


def test_a_dead_worker_falls_back_to_threads_with_the_same_numbers(monkeypatch):
    monkeypatch.delenv("CHARRNN_PARALLEL", raising=False)
    model = CharRNN(ModelConfig("lstm", 9, 8, 2), seed=0)
    par = Parallel(model, threads=2)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 9, (4, 6))
    expected = par.loss_and_grads(x, x, model.init_state(4))
    assert par.parallelism == "processes" and len(par.worker_pids) == 1
    os.kill(par.worker_pids[0], signal.SIGKILL)
    with pytest.warns(RuntimeWarning, match=r"worker process stopped unexpectedly.*continuing "
                                            r"with threads"):
        again = par.loss_and_grads(x, x, model.init_state(4))
    _assert_same(expected, again)
    assert par.parallelism == "threads" and par.worker_pids == []


def test_close_stops_the_workers_and_a_later_step_restarts_them(monkeypatch):
    monkeypatch.delenv("CHARRNN_PARALLEL", raising=False)
    model = CharRNN(ModelConfig("gru", 9, 8, 1), seed=0)
    par = Parallel(model, threads=2)
    x = np.zeros((4, 3), dtype=int)
    par.loss(x, x, model.init_state(4))
    (pid,) = par.worker_pids
    par.close()
    assert not _alive(pid) and par.worker_pids == []
    par.loss(x, x, model.init_state(4))
    assert len(par.worker_pids) == 1
    par.close()


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    """A SIGKILLed trainer cannot clean up: its workers see their input close and exit."""
    code = (
        "import os, sys, time, numpy as np\n"
        "from charrnn.model import CharRNN, ModelConfig\n"
        "from charrnn.engines.parallel import Parallel\n"
        "m = CharRNN(ModelConfig('lstm', 5, 4, 1)); p = Parallel(m, threads=2)\n"
        "x = np.zeros((2, 2), dtype=int); p.loss(x, x, m.init_state(2))\n"
        "print(p.worker_pids[0], flush=True); time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(charrnn.__file__).parents[1])}
    env.pop("CHARRNN_PARALLEL", None)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env=env)
    try:
        worker_pid = int(parent.stdout.readline())
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 60
        while _alive(worker_pid):
            assert time.monotonic() < deadline, "the worker outlived its parent"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid):
    try:  # a zombie (exited, not yet reaped by init) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_default_threads_split_only_batches_with_enough_work(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.delenv("CHARRNN_PARALLEL", raising=False)
    assert default_threads("lstm", 256, 64) == 2
    assert default_threads("lstm", 64, 32) == 2
    assert default_threads("lstm", 16, 8) == 1  # a test-sized model: one core
    monkeypatch.setenv("CHARRNN_PARALLEL", "threads")  # threads need more work per chunk
    assert default_threads("lstm", 256, 64) == 2
    assert default_threads("lstm", 64, 32) == 1


def test_a_training_run_in_processes_equals_one_in_threads(tmp_path):
    """`charrnn train --threads 2`, with dropout: the run's weights, optimizer state and
    carried state come out the same, bit for bit, and no worker outlives the command."""
    from helpers.train_helpers import TINY, assert_same_arrays, load, make_corpus, train

    corpus = make_corpus(tmp_path / "c.txt")
    args = [corpus, *TINY, "--threads", 2, "--dropout", 0.3, "--max-steps", 12,
            "--eval-every", 5, "--seed", 3, "-q", "--out-dir", tmp_path / "runs"]
    for mode in ("threads", "processes"):
        result = train(*args, "--name", mode, env={"CHARRNN_PARALLEL": mode})
        assert result.exit_code == 0, result.stderr
    runs = tmp_path / "runs"
    assert_same_arrays(load(runs / "threads" / "latest.npz"), load(runs / "processes" / "latest.npz"))
    assert not [p for p in Path("/proc").glob("[0-9]*") if _is_worker_of(p, os.getpid())]


def _is_worker_of(proc_dir, parent):
    try:
        cmd = (proc_dir / "cmdline").read_bytes().split(b"\0")
        stat = (proc_dir / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return any(b"charrnn.engines.workers" in arg for arg in cmd) and int(stat[1]) == parent \
        and stat[0] != "Z"


def test_ctrl_c_with_workers_saves_and_leaves_no_process(tmp_path):
    """The workers run in their own session, so a terminal's Ctrl-C reaches only the trainer,
    which saves and exits 130 as always; its workers end with it."""
    from test_faults import EVERY_STEP, finish, spawn, wait_until
    from helpers.train_helpers import make_corpus

    corpus = make_corpus(tmp_path / "c.txt")
    run = tmp_path / "runs" / "w"
    proc = spawn("train", corpus, *EVERY_STEP, "--threads", 2, "--out-dir", run.parent,
                 "--name", run.name)
    try:
        wait_until(lambda: (run / "latest.npz").exists(), proc)
        workers_before = [p for p in Path("/proc").glob("[0-9]*") if _is_worker_of(p, proc.pid)]
        assert len(workers_before) == 1
        worker_pid = int(workers_before[0].name)
        assert os.getsid(worker_pid) != os.getsid(proc.pid)  # out of the terminal's reach
        proc.send_signal(signal.SIGINT)
    finally:
        stdout, stderr = finish(proc)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "latest.npz saved" in stderr
    deadline = time.monotonic() + 30
    while _alive(worker_pid):
        assert time.monotonic() < deadline, "a worker outlived the trainer"
        time.sleep(0.05)


def _step(par, x):
    loss, grads, state = par.loss_and_grads(x, x, par.model.init_state(len(x)))
    return loss, grads, state


def test_an_interrupted_wait_keeps_replies_in_step(monkeypatch):
    """A Ctrl-C (KeyboardInterrupt) while the parent waits for a worker leaves its reply
    unread: the next request must not take it for its own."""
    monkeypatch.delenv("CHARRNN_PARALLEL", raising=False)
    par = Parallel(CharRNN(ModelConfig("lstm", 9, 8, 2), seed=0), threads=2)
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 9, (4, 6)) for _ in range(3)]
    expected = [_step(par, x) for x in batches]
    real_result = workers.Worker.result
    calls = []

    def interrupted_once(worker):
        if not calls:
            calls.append(1)
            raise KeyboardInterrupt
        return real_result(worker)

    monkeypatch.setattr(workers.Worker, "result", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        _step(par, batches[0])
    for x, want in zip(batches, expected):
        _assert_same(want, _step(par, x))
    par.close()


def test_files_in_the_working_directory_do_not_replace_the_workers_modules(tmp_path,
                                                                           monkeypatch):
    """`python -m` would import a charrnn/ or json.py of the current directory; the workers
    get their parent's module path instead."""
    (tmp_path / "json.py").write_text("raise ImportError('the wrong json')\n")
    (tmp_path / "charrnn").mkdir()
    (tmp_path / "charrnn" / "__init__.py").write_text("raise ImportError('the wrong charrnn')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHARRNN_PARALLEL", raising=False)
    x = np.random.default_rng(0).integers(0, 9, (4, 6))
    results = []
    for threads in (1, 2):
        par = Parallel(CharRNN(ModelConfig("gru", 9, 8, 1), seed=0), threads=threads)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a fallback to threads would raise here
            results.append(_step(par, x))
        assert par.parallelism == "processes" and len(par.worker_pids) == threads - 1
        par.close()
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-6)


def test_numpy_numbers_in_the_config_reach_the_worker(monkeypatch):
    monkeypatch.delenv("CHARRNN_PARALLEL", raising=False)
    config = ModelConfig("rnn", np.int64(9), np.int32(8), np.int64(2), np.float64(0.0))
    par = Parallel(CharRNN(config, seed=0), threads=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _step(par, np.zeros((4, 3), dtype=int))
    assert par.parallelism == "processes"
    par.close()


def test_the_fallback_happens_even_when_warnings_are_errors(monkeypatch):
    monkeypatch.delenv("CHARRNN_PARALLEL", raising=False)
    par = Parallel(CharRNN(ModelConfig("lstm", 9, 8, 1), seed=0), threads=2)
    x = np.zeros((4, 3), dtype=int)
    expected = _step(par, x)
    os.kill(par.worker_pids[0], signal.SIGKILL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning, match="continuing with threads"):
            _step(par, x)
        _assert_same(expected, _step(par, x))  # no warning any more: threads from now on
    assert par.parallelism == "threads" and par.worker_pids == []
