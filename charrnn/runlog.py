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
from charrnn.jsonvalues import is_finite_number, json_printable, printable

LOG_NAME = "log.jsonl"


@dataclass
class LogContents:
    """What `read_log_with_problems` found in a log file."""

    records: list[dict]  # the parsed lines, in file order
    bad_lines: int = 0  # unparseable or senseless lines (a real problem: warn about it)
    torn_tail: bool = False  # the last line was cut short (a killed run): expected, silent


def read_log_with_problems(path: str | os.PathLike) -> LogContents:
    """Read a `log.jsonl` tolerantly: skip blank and unparseable lines and say how many.

    A torn last line (the writer was killed mid-line) is skipped and reported as `torn_tail`;
    unparseable lines elsewhere (deeply nested JSON included) and records whose numbers make
    no sense (`sensible`: a step of -5, a time of NaN) are counted in `bad_lines`. A
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
        if isinstance(record, dict) and sensible(record):
            contents.records.append(record)
        elif isinstance(record, dict) or i != last:
            contents.bad_lines += 1
        else:
            contents.torn_tail = True
    return contents


# What a record's numbers may be, where present and not null: a step is a count (an int from 0
# to 2**63 - 1); every amount is finite and not negative, and a time, epoch or speed is at
# most MAX_AMOUNT (a training time of thirty million years is an edited or damaged line, not
# a measurement; a diverging run's loss, rate or gradient norm may be huge, and is kept).
MAX_AMOUNT = 1e15
AMOUNTS = ("time", "epoch", "chars_per_sec", "loss", "val_loss", "val_bpc", "best_val_loss",
           "lr", "grad_norm")
BOUNDED = ("time", "epoch", "chars_per_sec")


def sensible(record: dict) -> bool:
    """Whether `record`'s step and amounts (AMOUNTS) hold values a run could have logged;
    a record that fails is skipped and counted as a bad line, as an unparseable one is."""
    step = record.get("step")
    if step is not None and (not is_finite_number(step) or not isinstance(step, int)
                             or not 0 <= step < 2**63):
        return False
    return all(record.get(key) is None or (
        is_finite_number(record[key]) and 0 <= record[key]
        and (key not in BOUNDED or record[key] <= MAX_AMOUNT)) for key in AMOUNTS)


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
    """The records as a JSON array, one record a line, control characters escaped; a NaN or
    infinity (which Python reads from a log, but JSON has not) becomes null."""
    if not records:
        return "[]"
    return "[\n" + ",\n".join(json_printable(json.dumps(_finite(r), ensure_ascii=False))
                               for r in records) + "\n]"


def _finite(value):
    """`value` with every NaN and infinity in it (at any depth) replaced by None."""
    if isinstance(value, float) and not is_finite_number(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


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
