"""A run's log, `log.jsonl`: one JSON object a line, append-only. Reading it tolerantly (a torn
last line or damaged lines are skipped and counted), writing it so that a killed run loses at
most the line being written, repairing a torn last line before appending, and exporting its
records as JSON or CSV (`charrnn logs --format`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from charrnn import files
from charrnn.errors import CharRNNError, RunError
from charrnn.jsonvalues import json_printable, printable

LOG_NAME = "log.jsonl"


@dataclass
class LogContents:
    """What `read_log_with_problems` found in a log file."""

    records: list[dict]  # the parsed lines, in file order
    bad_lines: int = 0  # unparseable lines before the last one (a real problem: warn about it)
    torn_tail: bool = False  # the last line was cut short (a killed run): expected, silent


def read_log_with_problems(path: str | os.PathLike) -> LogContents:
    """Read a `log.jsonl` tolerantly: skip blank and unparseable lines and say how many.

    A torn last line (the writer was killed mid-line) is skipped and reported as `torn_tail`;
    unparseable lines elsewhere (deeply nested JSON included) are counted in `bad_lines`. A
    missing file reads as empty. The file is read without following a symbolic link, and
    refused (RunError) if it is not a regular file or too large for this machine's memory.
    """
    try:
        fd = files.open_nofollow(path, os.O_RDONLY)
    except FileNotFoundError:
        return LogContents([])
    except OSError as exc:
        raise RunError(f"cannot read {path}: {files.describe(exc)}.") from None
    try:
        data = files.read_fd(fd, str(path), "move the log out of the run directory.")
    except OSError as exc:
        raise RunError(f"cannot read {path}: {exc.strerror or exc}.") from None
    except CharRNNError as exc:
        raise RunError(str(exc)) from None
    finally:
        os.close(fd)
    lines = data.split(b"\n")
    contents = LogContents([])
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            record = None
        if isinstance(record, dict):
            contents.records.append(record)
        elif i == last:
            contents.torn_tail = True
        else:
            contents.bad_lines += 1
    return contents


def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a `log.jsonl`, skipping a torn last line and any unparseable line."""
    return read_log_with_problems(path).records


def metric_records(records: list[dict]) -> list[dict]:
    """The `train` and `eval` records: one row per measurement, for tables and data export."""
    return [r for r in records if r.get("event") in ("train", "eval")]


class LogWriter:
    """Appends records to a run's log.jsonl, one JSON object a line.

        with LogWriter(run_dir) as log:  # opens (creates) the file for appending
            log.end_torn_line()          # after a killed writer: start on a line of its own
            log.write({"event": "start", "step": 0, ...})

    The file is unbuffered and each record goes out as soon as it is written, so a killed run
    loses at most the line being written, and a failed write (disk full) leaves nothing
    pending that closing the file would try, and fail, to write again. It is opened without
    following a symbolic link: a link planted in the run never makes charrnn append elsewhere.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / LOG_NAME
        self._file = None

    def __enter__(self) -> "LogWriter":
        try:
            self._file = open(self.path, "ab", buffering=0, opener=files.nofollow_opener)
        except OSError as exc:
            raise RunError(f"cannot write {self.path}: {files.describe(exc)}.") from None
        return self

    def __exit__(self, *exc_info) -> None:
        self._file.close()

    def write(self, record: dict) -> None:
        """Append `record` as one line; RunError (one sentence) if the disk refuses it."""
        line = memoryview((json.dumps(record) + "\n").encode("utf-8"))
        try:
            while line:
                line = line[self._file.write(line):]
        except OSError as exc:
            raise RunError(f"could not write {self.path}: {exc.strerror or exc}; the "
                           "checkpoints are intact.") from None

    def end_torn_line(self) -> None:
        """If a killed (or disk-full) writer left the last line half-written, end it, so that
        the next record starts on a line of its own instead of being glued to the torn one."""
        with open(self.path, "rb", opener=files.nofollow_opener) as f:
            if f.seek(0, os.SEEK_END) == 0:
                return
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
        if torn:
            try:
                self._file.write(b"\n")
            except OSError:
                pass  # the first record's write will fail too, and say so


# ----------------------------------------------------------------------------- export

LEADING_COLUMNS = ("run", "event", "step", "epoch", "time")


def record_columns(records: list[dict]) -> list[str]:
    """The union of the records' keys: run, event, step, epoch, time first, then the others in
    the order they first appear."""
    seen = dict.fromkeys(k for r in records for k in r)
    return [k for k in LEADING_COLUMNS if k in seen] + [k for k in seen if k not in LEADING_COLUMNS]


def records_json(records: list[dict]) -> str:
    """The records as a JSON array, one record a line, control characters escaped."""
    if not records:
        return "[]"
    return "[\n" + ",\n".join(json_printable(json.dumps(r, ensure_ascii=False))
                               for r in records) + "\n]"


def records_csv(records: list[dict]) -> str:
    """The records as CSV with a header of `record_columns`; a missing key is an empty cell,
    a nested value (list, dict) its JSON text; control characters but tab and newline are
    escaped (`printable`)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = record_columns(records)
    writer.writerow(printable(str(c)) for c in columns)
    for r in records:
        writer.writerow(_csv_cell(r.get(k)) for k in columns)
    return buffer.getvalue()


def _csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return printable(json.dumps(value, ensure_ascii=False))
    return printable(value) if isinstance(value, str) else value
