"""Writing what `charrnn export` makes: a file, a folder of files, or stdout, never half of one.

A file is written by `files.atomic_writer`: under a temporary name in its target's folder,
flushed and fsync'ed, then renamed over the target, so that the target is either what it was
or complete; a failure removes the temporary file. A folder that does not exist yet is built the same way, as a
temporary folder renamed into place; in an existing folder every file is written under a
temporary name first and the renames come last. A target that exists and is not a regular
file (a folder where a file is meant, a device, a FIFO) is refused before anything is made.
"""

import errno
import os
import secrets
import stat
import sys
from pathlib import Path

from charrnn import files
from charrnn.export.registry import ExportError

STDOUT = "-"


def _kind(path):
    """'missing', 'file', 'dir' or 'other' (device, FIFO, socket) for what `path` names."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}.") from None
    return "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else "other"


def _check_folder(path):
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"cannot write {path}: {folder} is not a folder.")
    if not folder.is_dir():
        raise ExportError(f"cannot write {path}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {path}: the folder {folder} is not writable.")


def check_file_target(path):
    """ExportError, before any work, unless a file can be written at `path` ("-": stdout)."""
    if str(path) == STDOUT:
        return
    path = Path(path)
    kind = _kind(path)
    if kind == "dir":
        raise ExportError(f"{path} is a folder; give a file name, such as {path / 'model.html'}, "
                          "or use --format web-dir for a folder.")
    if kind == "other":
        raise ExportError(f"{path} is not a regular file (a device, FIFO or socket); give the "
                          "name of a file to write.")
    _check_folder(path)


def check_dir_target(path):
    """ExportError, before any work, unless a folder of files can be written at `path`."""
    path = Path(path)
    kind = _kind(path)
    if kind in ("file", "other"):
        raise ExportError(f"{path} exists and is not a folder; --format web-dir writes a folder "
                          "of files (give a new or existing folder).")
    if kind == "dir":
        if not os.access(path, os.W_OK | os.X_OK):
            raise ExportError(f"cannot write into {path}: the folder is not writable.")
        return
    _check_folder(path)


def _temporary(folder, name):
    return Path(folder) / f"{files.TMP_PREFIX}{name}-{secrets.token_hex(4)}"


def _write_new(path, data):
    """Write `data` to the new file `path` (refusing one that exists), flushed to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _failed(path, exc):
    if isinstance(exc, OSError):
        return ExportError(f"cannot write {path}: {exc.strerror or exc}; nothing was written.")
    return None


def write_file(path, data, what="file"):
    """Write the bytes `data` to `path` atomically (`files.atomic_writer`; "-": to stdout);
    `what` names the file in messages ("page"). Returns len(data)."""
    if str(path) == STDOUT:
        return write_stdout(data)
    check_file_target(path)
    with files.atomic_writer(path, what, error=ExportError) as f:
        f.write(data)
    return len(data)


def write_folder(path, contents):
    """Write `contents` ({file name: bytes}) into the folder `path`, created if missing, none of
    them half-written; returns the bytes written."""
    path = Path(path)
    check_dir_target(path)
    fresh = not path.exists()
    folder = _temporary(path.parent, path.name) if fresh else path
    written = []
    try:
        if fresh:
            os.mkdir(folder)
        for name, data in contents.items():
            tmp = folder / name if fresh else _temporary(folder, name)
            written.append((tmp, folder / name))  # removed on failure, even half-written
            _write_new(tmp, data)
        if fresh:
            os.rename(folder, path)
        else:
            for tmp, final in written:
                os.replace(tmp, final)
    except BaseException as exc:
        for tmp, _ in written:
            Path(tmp).unlink(missing_ok=True)
        if fresh:
            try:
                os.rmdir(folder)
            except OSError:
                pass
        error = _failed(path, exc)
        if error is None:
            raise
        raise error from None
    files.fsync_dir(path.parent if fresh else path)
    return sum(len(d) for d in contents.values())


def write_stdout(data):
    """Write bytes to stdout. An OSError (closed, full) reaches the command line's error
    boundary, which says so in one line; returns len(data)."""
    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        raise OSError(errno.EBADF, "stdout is closed")
    out.write(data)
    out.flush()
    return len(data)
