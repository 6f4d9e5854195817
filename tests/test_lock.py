"""charrnn.lock: the run lock, held while a process trains a run, dropped when it dies."""

import os
import subprocess
import sys
import textwrap

import pytest

from charrnn import lock, runs
from charrnn.errors import RunError
from test_runs import write_run


# ----------------------------------------------------------------------------- the lock


def test_lock_marks_a_run_running_in_process(tmp_path):
    run_dir = write_run(tmp_path, "r", end=None)
    with lock.RunLock(run_dir) as held:
        assert held.held and lock.is_running(run_dir)
        assert lock.lock_pid(run_dir) == os.getpid()
        info = runs.summarize(run_dir)
        assert info.status == "running" and info.pid == os.getpid()
        with pytest.raises(RunError, match="already being trained"):
            lock.RunLock(run_dir).acquire()
    assert not lock.is_running(run_dir)
    assert runs.summarize(run_dir).status == "crashed"


def test_lock_held_by_another_process_then_released_by_its_death(tmp_path):
    run_dir = write_run(tmp_path, "r", end=None)
    code = textwrap.dedent(f"""
        import sys, time
        from charrnn.lock import RunLock
        lock = RunLock({str(run_dir)!r}).acquire()
        print("locked", flush=True)
        sys.stdin.readline()
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        assert lock.is_running(run_dir)
        assert runs.summarize(run_dir).status == "running"
        with pytest.raises(RunError, match=rf"another charrnn process \(pid {child.pid}\)"):
            lock.RunLock(run_dir).acquire()
        assert lock.is_running(run_dir), "probing must not disturb the holder"
    finally:
        child.kill()
        child.wait()
    assert not lock.is_running(run_dir)
    assert runs.summarize(run_dir).status == "crashed"
    with lock.RunLock(run_dir):  # a dead holder never leaves the lock stuck
        pass


def test_lock_creates_the_run_directory(tmp_path):
    with lock.RunLock(tmp_path / "new" / "run"):
        assert (tmp_path / "new" / "run" / ".lock").is_file()
