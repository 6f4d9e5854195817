"""Runs on disk: finding them and the checkpoint a RUN|CKPT argument means, naming and creating
new ones, reading their `log.jsonl`, the run lock, and tidying up after a killed process.

A run is a directory `<out-dir>/<name>/` with `log.jsonl` (one JSON object a line, append-only),
`latest.npz` and `best.npz`. While a process trains it, that process holds an exclusive
`flock` on `<run>/.lock` (see `RunLock`); the kernel drops the lock when the process dies, so
"is the lock held?" tells a live training from a crashed one. The `.lock` file itself stays on
disk and means nothing by its presence.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from charrnn.errors import RunError
from charrnn.jsonvalues import is_finite_number

try:  # POSIX only; elsewhere runs are never reported as running and locking is a no-op
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

LOG_NAME = "log.jsonl"
LOCK_NAME = ".lock"
BEST_NAME = "best.npz"  # a run's checkpoint with the lowest validation loss
LATEST_NAME = "latest.npz"  # a run's newest checkpoint
CHECKPOINT_NAMES = (BEST_NAME, LATEST_NAME)  # what a run means to sample, eval and info
RESUME_NAMES = (LATEST_NAME, BEST_NAME)  # what a run means to --resume: its newest state
STATUSES = ("running", "finished", "interrupted", "diverged", "crashed", "no log")
CHARS_PER_SEC_WINDOW = 10  # chars/s of a run = median over its last this-many train events

# Lock files held by this process (resolved paths), so that `is_running` can answer for them
# without opening a second file description on them.
_HELD_LOCKS: set[Path] = set()


# ----------------------------------------------------------------------------- log.jsonl


@dataclass
class LogContents:
    """What `read_log_with_problems` found in a log file."""

    records: list[dict]  # the parsed lines, in file order
    bad_lines: int = 0  # unparseable lines before the last one (a real problem: warn about it)
    torn_tail: bool = False  # the last line was cut short (a killed run): expected, silent


def read_log_with_problems(path: str | os.PathLike) -> LogContents:
    """Read a `log.jsonl` tolerantly: skip blank and unparseable lines and say how many.

    A torn last line (the writer was killed mid-line) is skipped and reported as `torn_tail`;
    unparseable lines elsewhere are counted in `bad_lines`. A missing file reads as empty.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return LogContents([])
    except OSError as exc:
        raise RunError(f"cannot read {path}: {exc.strerror}.") from None
    lines = data.split(b"\n")
    contents = LogContents([])
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
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
    pending that closing the file would try, and fail, to write again.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / LOG_NAME
        self._file = None

    def __enter__(self) -> "LogWriter":
        self._file = open(self.path, "ab", buffering=0)
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
        with open(self.path, "rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
        if torn:
            try:
                self._file.write(b"\n")
            except OSError:
                pass  # the first record's write will fail too, and say so


# ----------------------------------------------------------------------------- the lock


class RunLock:
    """An exclusive, non-blocking lock on a run directory, held while a process trains it.

        with RunLock(run_dir):      # raises RunError if another process trains this run
            ...train, append to log.jsonl, write checkpoints...

    It is an `fcntl.flock` on `<run_dir>/.lock`, which also holds the owner's pid. The kernel
    releases it when the process exits or dies, so it can never be left stuck.
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
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunError(f"cannot create the lock file {self.path}: {exc.strerror}.") from None
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


# ----------------------------------------------------------------------------- a run's summary


@dataclass
class RunInfo:
    """One run, summarised from its log and files; every field may be None when not logged yet."""

    name: str
    path: Path
    status: str  # one of STATUSES
    cell: str | None = None  # "lstm" | "gru" | "rnn"
    hidden_size: int | None = None
    num_layers: int | None = None
    num_params: int | None = None
    steps: int | None = None  # the last step logged
    epochs: float | None = None  # fractional epochs done
    best_val_loss: float | None = None  # nats/char
    best_val_bpc: float | None = None  # bits/char
    best_val_step: int | None = None
    last_train_loss: float | None = None  # nats/char
    chars_per_sec: float | None = None  # median of the last CHARS_PER_SEC_WINDOW train events
    train_time: float | None = None  # seconds of training, across resumes
    started_at: datetime | None = None  # wall clock of the first start
    end_reason: str | None = None  # of the last start's end, if any
    resumes: int = 0  # how many times the run was resumed
    pid: int | None = None  # the training process, while running
    corpus: str | None = None
    last_sample: str | None = None
    has_checkpoint: bool = False
    bad_lines: int = 0  # unparseable lines in the middle of the log
    config: dict = field(default_factory=dict)  # the last start's config

    @property
    def size(self) -> str | None:
        """The model's shape, e.g. `lstm 2×256`."""
        if self.cell is None:
            return None
        if self.num_layers is None or self.hidden_size is None:
            return self.cell
        return f"{self.cell} {self.num_layers}×{self.hidden_size}"

    @property
    def sort_key(self) -> float:
        if self.started_at is not None:
            return self.started_at.timestamp()
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def to_json(self) -> dict:
        """A JSON-ready dict of the summary (paths and times as strings)."""
        out = asdict(self)
        out["path"] = str(self.path)
        out["started_at"] = self.started_at.isoformat() if self.started_at else None
        out["size"] = self.size
        return out


def run_status(records: list[dict], running: bool) -> str:
    """running / finished / interrupted / diverged / crashed, from the lock and the last start."""
    if running:
        return "running"
    starts = [i for i, r in enumerate(records) if r.get("event") == "start"]
    tail = records[starts[-1] + 1:] if starts else records
    ends = [r for r in tail if r.get("event") == "end"]
    if ends:
        reason = ends[-1].get("reason")
        if reason == "diverged":
            return "diverged"
        return "interrupted" if reason == "interrupted" else "finished"
    if any(r.get("event") == "interrupt" for r in tail):
        return "interrupted"
    return "crashed"


def _parse_wall(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _number(value) -> float | None:
    """A finite float from a log value, or None (a log may hold null, NaN or garbage)."""
    return float(value) if is_finite_number(value) else None


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _typed(value, kind):
    """`value` if it is a `kind` (bools are not ints), else None: a log may hold anything."""
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def _values(records: list[dict], key: str, event: str | None = None) -> list[float]:
    """The finite numbers under `key` in the records (of `event` only, if given), in order."""
    values = (_number(r.get(key)) for r in records if event is None or r.get("event") == event)
    return [v for v in values if v is not None]


def summarize(run_dir: str | os.PathLike, contents: LogContents | None = None) -> RunInfo:
    """The `RunInfo` of the run in `run_dir` (its log is read unless `contents` is given)."""
    run_dir = Path(run_dir)
    log = run_dir / LOG_NAME
    if contents is None:
        contents = read_log_with_problems(log)
    records = contents.records
    running = is_running(run_dir)
    info = RunInfo(
        name=run_dir.name,
        path=run_dir,
        status="no log" if not log.exists() and not running else run_status(records, running),
        has_checkpoint=any((run_dir / n).is_file() for n in CHECKPOINT_NAMES),
        bad_lines=contents.bad_lines,
        pid=lock_pid(run_dir) if running else None,
    )
    starts = [r for r in records if r.get("event") == "start"]
    if starts:
        info.started_at = _parse_wall(starts[0].get("wall"))
        info.resumes = sum(1 for r in starts if r.get("resumed") is True)
        info.config = _dict(starts[-1].get("config"))
        model = _dict(info.config.get("model"))
        info.cell = _typed(model.get("cell"), str)
        info.hidden_size = _typed(model.get("hidden_size"), int)
        info.num_layers = _typed(model.get("num_layers"), int)
        info.num_params = _typed(info.config.get("num_params"), int)
        info.corpus = _typed(info.config.get("corpus"), str)
        if info.pid is None and running:
            info.pid = _typed(starts[-1].get("pid"), int)
    steps = [r["step"] for r in records if _typed(r.get("step"), int) is not None]
    info.steps = max(steps) if steps else None
    info.epochs = max(_values(records, "epoch"), default=None)
    info.train_time = max(_values(records, "time"), default=None)
    losses = _values(records, "loss", "train")
    info.last_train_loss = losses[-1] if losses else None
    speeds = _values(records, "chars_per_sec", "train")[-CHARS_PER_SEC_WINDOW:]
    info.chars_per_sec = statistics.median(speeds) if speeds else None
    evals = [r for r in records
             if r.get("event") == "eval" and _number(r.get("val_loss")) is not None]
    if evals:
        best = min(evals, key=lambda r: r["val_loss"])
        info.best_val_loss = float(best["val_loss"])
        info.best_val_bpc = info.best_val_loss / math.log(2)
        info.best_val_step = _typed(best.get("step"), int)
    ends = [r for r in records if r.get("event") == "end"]
    if ends and info.status not in ("running", "crashed"):
        info.end_reason = _typed(ends[-1].get("reason"), str)
    samples = [r for r in records if r.get("event") == "sample" and isinstance(r.get("text"), str)]
    if samples:
        info.last_sample = samples[-1]["text"]
    return info


# ----------------------------------------------------------------------------- finding runs


def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether `path` is a run directory: it holds a log or a checkpoint."""
    path = Path(path)
    return path.is_dir() and any((path / n).is_file() for n in (LOG_NAME, *CHECKPOINT_NAMES))


def list_runs(out_dir: str | os.PathLike) -> list[RunInfo]:
    """Every run directly under `out_dir`, newest first (by first start, else by mtime).

    Directories that are not runs are skipped; a missing `out_dir` has no runs.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    runs = [summarize(p) for p in sorted(out_dir.iterdir()) if is_run_dir(p)]
    runs.sort(key=lambda r: r.sort_key, reverse=True)
    return runs


def run_names(out_dir: str | os.PathLike) -> list[str]:
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    return sorted(p.name for p in out_dir.iterdir() if is_run_dir(p))


def resolve_run(name_or_path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """The run directory meant by `name_or_path`: a path to a run (or to a file in one), or
    the name of a run under `out_dir`. Raises `RunError` with close names otherwise."""
    given = Path(name_or_path)
    candidates = [given]
    if not given.is_absolute():
        candidates.append(Path(out_dir) / given)
    for path in candidates:
        if path.is_file() and (path.name == LOG_NAME or path.suffix == ".npz"):
            path = path.parent
        if is_run_dir(path):
            return path
    for path in candidates:
        if path.is_dir():
            raise RunError(f"'{path}' is not a run: it has no {LOG_NAME} and no checkpoint.")
    names = run_names(out_dir)
    if not names:
        raise RunError(f"no run named '{name_or_path}': there are no runs in {out_dir}/ yet.")
    close = difflib.get_close_matches(str(name_or_path), names, n=3, cutoff=0.5)
    shown = close or names[:8]
    hint = "did you mean" if close else "runs there"
    more = ", ..." if not close and len(names) > len(shown) else ""
    raise RunError(
        f"no run named '{name_or_path}' in {out_dir}/ ({hint}: {', '.join(shown)}{more})."
    )


def resolve_checkpoint(target: str | os.PathLike | None = None,
                       out_dir: str | os.PathLike = "checkpoints", resume: bool = False) -> Path:
    """The checkpoint file a RUN|CKPT argument means; its run directory is the file's parent.

    An existing file is that file. Otherwise `target` is a run directory or the name of a run
    under `out_dir`, and means its best.npz, else latest.npz (what sample, eval, info and
    `charrnn.load` use); None means the newest run under `out_dir` that has a checkpoint.
    With `resume` (`train --resume`, never None) it means the run's latest.npz, else best.npz:
    training continues from the newest state, and any existing directory is taken for the run.
    Raises RunError, in one sentence, when there is no such file.
    """
    if target is not None and Path(target).is_file():
        return Path(target)
    if resume:
        run_dir = Path(target)
        if not run_dir.exists() and (Path(out_dir) / target).is_dir():
            run_dir = Path(out_dir) / target
        if not run_dir.is_dir():
            raise RunError(f"cannot resume {target}: no such run directory or checkpoint file.")
        names = RESUME_NAMES
    else:
        run_dir = newest_run(out_dir) if target is None else resolve_run(target, out_dir)
        names = CHECKPOINT_NAMES
    for name in names:
        if (run_dir / name).is_file():
            return run_dir / name
    if resume:
        raise RunError(f"{run_dir} has no checkpoint to resume from (no {LATEST_NAME} or "
                       f"{BEST_NAME}).")
    raise RunError(
        f"run '{run_dir.name}' has no checkpoint yet ({run_dir}/{BEST_NAME} or {LATEST_NAME})."
    )


def newest_run(out_dir: str | os.PathLike, with_checkpoint: bool = True) -> Path:
    """The newest run under `out_dir` (by default: the newest that has a checkpoint)."""
    for run in list_runs(out_dir):
        if run.has_checkpoint or not with_checkpoint:
            return run.path
    what = "with a checkpoint " if with_checkpoint else ""
    raise RunError(
        f"no runs {what}in {out_dir}/ yet; start one with: charrnn train corpus.txt"
    )


# ----------------------------------------------------------------------------- starting a run


def validate_name(name: str) -> str:
    """A run name is one path component: no separators, not empty, not starting with a dot."""
    if not name or name != name.strip() or "/" in name or "\\" in name or name.startswith("."):
        raise RunError(
            f"invalid run name {name!r}: use letters, digits, '-', '_' and '.', without path "
            "separators, not starting with a dot."
        )
    return name


def unique_name(out_dir: str | os.PathLike, base: str) -> str:
    """`base`, or `base-2`, `base-3`, ... whichever does not exist yet under out_dir."""
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in base).strip(".-") or "run"
    name, n = stem, 1
    while (Path(out_dir) / name).exists():
        n += 1
        name = f"{stem}-{n}"
    return name


def new_run_dir(out_dir: str | os.PathLike, name: str | None,
                corpus: str | os.PathLike | None) -> Path:
    """The directory of a new run: `name`, or one derived from the corpus file name (None: the
    demo corpus). Raises RunError if that run exists already."""
    if name is None:
        name = unique_name(out_dir, "demo" if corpus is None else Path(corpus).stem)
    run_dir = Path(out_dir) / validate_name(name)
    if run_dir.exists() and not any((run_dir / f).is_file() for f in CHECKPOINT_NAMES):
        raise RunError(
            f"run '{name}' already exists in {out_dir} but has no checkpoint to continue from "
            f"(it stopped before its first save, or is still starting); delete {run_dir} or "
            "choose another --name."
        )
    if run_dir.exists():
        raise RunError(
            f"run '{name}' already exists in {out_dir}; continue it with: charrnn train "
            f"--resume {run_dir}  (or choose another --name)."
        )
    return run_dir


def clean_temporaries(run_dir: str | os.PathLike) -> None:
    """Remove the temporary files of checkpoint writes that a killed process left behind."""
    from charrnn.checkpoint import TMP_PREFIX  # numpy: only the trainer, which has it, calls this

    for tmp in Path(run_dir).glob(TMP_PREFIX + "*"):
        try:
            tmp.unlink()
        except OSError:
            pass


# ----------------------------------------------------------------------------- export

LEADING_COLUMNS = ("run", "event", "step", "epoch", "time")


def record_columns(records: list[dict]) -> list[str]:
    """The union of the records' keys: run, event, step, epoch, time first, then the others in
    the order they first appear."""
    seen = dict.fromkeys(k for r in records for k in r)
    return [k for k in LEADING_COLUMNS if k in seen] + [k for k in seen if k not in LEADING_COLUMNS]


def records_json(records: list[dict]) -> str:
    """The records as a JSON array, one record a line."""
    if not records:
        return "[]"
    return "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n]"


def records_csv(records: list[dict]) -> str:
    """The records as CSV with a header of `record_columns`; a missing key is an empty cell,
    a nested value (list, dict) its JSON text."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = record_columns(records)
    writer.writerow(columns)
    for r in records:
        writer.writerow(_csv_cell(r.get(k)) for k in columns)
    return buffer.getvalue()


def _csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value
