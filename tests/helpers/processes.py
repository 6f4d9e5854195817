"""Waiting on a charrnn subprocess in tests: every wait bounded by DEADLINE, and a process a
failed test leaves behind is killed."""

import time

import pytest

DEADLINE = 120  # seconds a subprocess may take to get somewhere; generous for a busy CI


def wait_until(condition, proc):
    """Poll `condition()` until it holds; fail if `proc` exits first or DEADLINE passes."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"charrnn exited with {proc.returncode}: {proc.stderr.read()}")
        assert time.monotonic() < deadline, "timed out waiting for the training subprocess"
        time.sleep(0.02)


def finish(proc):
    """Wait for the process (killing it if a test failed first); (stdout, stderr)."""
    try:
        return proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
