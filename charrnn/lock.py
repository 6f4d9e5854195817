"""The run lock: while a process trains a run, it holds an exclusive `flock` on
`<run>/.lock` (`RunLock`); the kernel drops the lock when the process dies, so "is the lock
held?" (`is_running`) tells a live training from a crashed one. The `.lock` file itself stays
on disk and means nothing by its presence; it holds the owner's pid (`lock_pid`).
"""

from __future__ import annotations

import os
from pathlib import Path

from charrnn import files
from charrnn.errors import RunError

try:  # POSIX only; elsewhere runs are never reported as running and locking is a no-op
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

LOCK_NAME = ".lock"

# Lock files held by this process (resolved paths), so that `is_running` can answer for them
# without opening a second file description on them.
_HELD_LOCKS: set[Path] = set()


class RunLock:
    """An exclusive, non-blocking lock on a run directory, held while a process trains it.

        with RunLock(run_dir):      # raises RunError if another process trains this run
            ...train, append to log.jsonl, write checkpoints...

    It is an `fcntl.flock` on `<run_dir>/.lock`, which also holds the owner's pid. The kernel
    releases it when the process exits or dies, so it can never be left stuck. The file is
    opened without following a symbolic link, so a link planted as `.lock` is never truncated.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        if self._fd is not None:
            return self
        key = self.path.resolve() if self.path.exists() else None
        if key is not None and key in _HELD_LOCKS:
            raise RunError(
                f"run '{self.run_dir.name}' is already being trained by this process."
            )
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = files.open_nofollow(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise RunError(f"cannot create the lock file {self.path}: {files.describe(exc)}.") \
                from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                pid = lock_pid(self.run_dir)
                who = f" (pid {pid})" if pid else ""
                raise RunError(
                    f"run '{self.run_dir.name}' is being trained by another charrnn process"
                    f"{who}; wait for it to finish or stop it first."
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        _HELD_LOCKS.add(self.path.resolve())
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        _HELD_LOCKS.discard(self.path.resolve())
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


def is_running(run_dir: str | os.PathLike) -> bool:
    """Whether some live process (this one included) holds the lock of `run_dir`.

    Probes with a fresh, non-blocking `flock` on a new file description, which never disturbs
    the holder: flock locks belong to open file descriptions, so the probe fails exactly when
    someone holds the lock.
    """
    path = Path(run_dir) / LOCK_NAME
    if not path.is_file():
        return False
    if path.resolve() in _HELD_LOCKS:
        return True
    if fcntl is None:  # pragma: no cover
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def lock_pid(run_dir: str | os.PathLike) -> int | None:
    """The pid written in the lock file of `run_dir` (meaningful only while it is running)."""
    try:
        return int((Path(run_dir) / LOCK_NAME).read_text().strip())
    except (OSError, ValueError):
        return None

