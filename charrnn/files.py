"""Reading and opening files that anyone may have put in charrnn's way: reads bounded by this
machine's memory, and run files opened without following symbolic links.

A corpus, an evaluation text, a prime or a log may be a FIFO that never ends, `/dev/zero`, a
sparse file of many gigabytes or a symbolic link to any of these; a run's `.lock` and
`log.jsonl` may be symbolic links planted to make charrnn truncate or append to another file.
Everything here fails with one sentence (`CharRNNError`) instead of hanging, filling the
memory or writing outside the run. Standard library only: `charrnn logs` uses it without numpy.
"""

import errno
import os
import stat

from charrnn.errors import CharRNNError, refuse_oversized

BLOCK = 1 << 20  # bytes read at a time
SNIFF = 8192  # the leading bytes checked for NUL bytes before the rest is read
# Memory a byte read may end up taking: the bytes, the decoded str (up to 4 bytes a character)
# and the ids of training; `refuse_oversized` compares the product with the machine's memory.
MEMORY_PER_BYTE = 8


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


def open_nofollow(path, flags, mode=0o644):
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

