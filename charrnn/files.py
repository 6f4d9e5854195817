"""Reading, opening and writing files that anyone may have put in charrnn's way: reads bounded
by this machine's memory, run files opened without following symbolic links, and atomic writes
that replace only a regular file.

A corpus, an evaluation text, a prime or a log may be a FIFO that never ends, `/dev/zero`, a
sparse file of many gigabytes or a symbolic link to any of these; a run's `.lock` and
`log.jsonl` may be symbolic links planted to make charrnn truncate or append to another file.
Everything here fails with one sentence (`CharRNNError`) instead of hanging, filling the
memory or writing outside the run. A file charrnn writes (a checkpoint, a page, a chart
image) is written to a temporary file beside it and renamed over it when complete: the name
must be new or a regular file (or a symbolic link to one, which is replaced, not followed),
never a directory, FIFO or device, which the rename would silently turn into a regular file.
Standard library only: `charrnn logs` uses it without numpy.
"""

import contextlib
import errno
import os
import signal
import stat
import threading
from pathlib import Path

from charrnn.errors import CharRNNError, refuse_oversized

BLOCK = 1 << 20  # bytes read at a time
SNIFF = 8192  # the leading bytes checked for NUL bytes before the rest is read
# Memory a byte read may end up taking: the bytes, the decoded str (up to 4 bytes a character)
# and the ids of training; `refuse_oversized` compares the product with the machine's memory.
MEMORY_PER_BYTE = 8
TMP_PREFIX = ".tmp-"  # temporary files of interrupted writes start with this; safe to delete


def _refuse_size(name, nbytes, advice):
    refuse_oversized(nbytes * MEMORY_PER_BYTE, f"reading {name}", advice)


def read_bounded(path, name, advice, binary_check=None):
    """The bytes of the file at `path`, read in blocks, refused before memory runs out.

    A regular file's size is checked before anything is read; a FIFO, device or other stream
    is read block by block and refused (one sentence, `CharRNNError`) as soon as what was read
    would no longer fit; a FIFO without a writer reads as empty instead of waiting for one.
    `binary_check(first_bytes)`, if given, sees the first SNIFF bytes before the rest is read,
    so that `/dev/zero` is refused at once; it raises to refuse. OSError (missing, unreadable,
    a directory) is left to the caller, which names the file for its own kind of input.
    """
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    try:
        return read_fd(fd, name, advice, binary_check)
    finally:
        os.close(fd)


def read_fd(fd, name, advice, binary_check=None):
    """`read_bounded` of a file already open as `fd` (left open)."""
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
    if stat.S_ISREG(info.st_mode):
        _refuse_size(name, info.st_size, advice)
    os.set_blocking(fd, True)
    data = bytearray()
    checked = binary_check is None
    while True:
        block = os.read(fd, BLOCK)
        if not block:
            break
        data += block
        if not checked and len(data) >= SNIFF:
            binary_check(bytes(data[:SNIFF]))
            checked = True
        _refuse_size(name, len(data), advice)
    if not checked:
        binary_check(bytes(data))
    return bytes(data)


def open_nofollow(path, flags, mode=0o666):
    """`os.open(path, flags)` that refuses a symbolic link and anything but a regular file:
    OSError, with ELOOP for a link, EISDIR for a directory, EINVAL for a FIFO or a device."""
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0), mode)
    kind = os.fstat(fd).st_mode
    if not stat.S_ISREG(kind):
        os.close(fd)
        code = errno.EISDIR if stat.S_ISDIR(kind) else errno.EINVAL
        raise OSError(code, "not a regular file", str(path))
    os.set_blocking(fd, True)
    return fd


def nofollow_opener(path, flags):
    """An `opener` for `open()` built on `open_nofollow`."""
    return open_nofollow(path, flags)


def describe(exc):
    """The reason of an OSError from `open_nofollow`, as the end of a sentence."""
    if exc.errno == errno.ELOOP:
        return "it is a symbolic link, which charrnn does not follow"
    if exc.errno == errno.EISDIR:
        return "it is a directory"
    if exc.errno == errno.EINVAL and exc.strerror == "not a regular file":
        return "it is not a regular file"
    return exc.strerror or str(exc)



def check_target(path, what, error=CharRNNError):
    """`error`, before any work, unless `path` is a name charrnn may write a `what` (a noun:
    "page", "checkpoint") to: a new name in an existing, writable folder, or a regular file
    that may be replaced (or a symbolic link to one). A directory, FIFO, socket or device is
    refused."""
    path = Path(path)
    try:
        kind = os.stat(path).st_mode
    except FileNotFoundError:
        kind = None  # a new name (or a dangling link, which the rename replaces)
    except OSError as exc:
        raise error(f"cannot write {what} {path}: {exc.strerror or exc}.") from None
    if kind is not None and not stat.S_ISREG(kind):
        it = "a directory" if stat.S_ISDIR(kind) else _special(kind)
        raise error(f"cannot write {what} {path}: it is {it}, not a regular file; "
                           "give a new file name.")
    folder = path.parent
    if not folder.is_dir():
        raise error(f"cannot write {what} {path}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK):
        raise error(f"cannot write {what} {path}: the folder {folder} is not "
                           "writable.")


def _special(mode):
    """What a non-regular, non-directory file is, for a message."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _create_temporary(path):
    """A new temporary file beside `path`, `.tmp-STEM-XXXXXXXX.SUFFIX`, opened for writing:
    (fd, name). Created with mode 0o666 so that the umask decides its permissions, as for any
    file a program creates, and O_EXCL, so that nothing already there is ever written to."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f"{TMP_PREFIX}{path.stem}-{os.urandom(4).hex()}{path.suffix}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


class _Terminated(SystemExit):
    """SIGTERM during an atomic write, raised so that the temporary file is removed."""


@contextlib.contextmanager
def _sigterm_as_exit():
    """Within the block, a SIGTERM that would kill the process (the default action) raises
    SystemExit(143) instead, so that `finally` clauses run; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        raise _Terminated(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def atomic_writer(path, what, mode="wb", encoding=None, error=CharRNNError):
    """Write a file atomically: `with atomic_writer(path, "page", "w", "utf-8") as f:`.

    The target is checked first (`check_target`), the content goes to a temporary file beside
    it, which is flushed, fsync'ed and renamed over `path` only once the block ends without an
    exception. On every way out before that (an exception, Ctrl-C, SIGTERM, a full disk) the
    temporary file is removed and `path` is untouched. The file's permissions follow the umask
    (0o666 & ~umask), as any new file's. OSError while writing becomes one sentence naming
    `what`, raised as `error` (a CharRNNError subclass); other exceptions (KeyboardInterrupt,
    the caller's own) pass through.
    """
    path = Path(path)
    check_target(path, what, error)
    tmp = None
    try:
        with _sigterm_as_exit():
            fd, tmp = _create_temporary(path)
            with open(fd, mode, encoding=encoding) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            check_target(path, what, error)  # again: the name may have changed while we wrote
            os.replace(tmp, path)
            tmp = None
    except OSError as exc:
        kept = f"the previous {what} is intact" if path.exists() else "no file was written"
        raise error(f"could not write {what} {path}: {exc.strerror or exc}; {kept}.") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    fsync_dir(path.parent)


def fsync_dir(directory):
    """Make a rename in `directory` durable (POSIX); harmless where directories cannot be
    opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
