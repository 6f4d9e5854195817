"""Runs on disk: finding them and the checkpoint a RUN|CKPT argument means, summarising them
for `charrnn logs`, naming and creating new ones, tidying up after a killed process, and where
a resume may train (`resume_run_dir`: a run's id in its checkpoints and log keeps a resume from
overwriting newer steps or mixing two runs).

A run is a directory `<out-dir>/<name>/` with `log.jsonl` (see `charrnn.runlog`), `latest.npz`
and `best.npz`; while a process trains it, that process holds the run's lock
(`charrnn.lock`).
"""

from __future__ import annotations

import difflib
import os
import re
import statistics
import unicodedata
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from charrnn.errors import CharRNNError, RunError
from charrnn.jsonvalues import is_finite_number
from charrnn.lock import is_running, lock_pid
from charrnn.runlog import LOG_NAME, LogContents, read_log, read_log_with_problems
from charrnn.units import bits

BEST_NAME = "best.npz"  # a run's checkpoint with the lowest validation loss
LATEST_NAME = "latest.npz"  # a run's newest checkpoint
CHECKPOINT_NAMES = (BEST_NAME, LATEST_NAME)  # what a run means to sample, eval and info
RESUME_NAMES = (LATEST_NAME, BEST_NAME)  # what a run means to --resume: its newest state
STATUSES = ("running", "finished", "interrupted", "diverged", "crashed", "no log", "unreadable")
OUT_DIR_ENV = "CHARRNN_HOME"  # sets the default --out-dir
DEFAULT_OUT_DIR = "checkpoints"  # the default --out-dir without CHARRNN_HOME
CHARS_PER_SEC_WINDOW = 10  # chars/s of a run = median over its last this-many train events


def _engine_text(start):
    """How a session trained, from its start event: "numpy", "torch on cpu", "torch on cuda:0,
    2 processes"; None for a log from before engines."""
    engine, device = _typed(start.get("engine"), str), _typed(start.get("device"), str)
    if engine is None:
        return None
    text = engine if engine == "numpy" or not device else f"{engine} on {device}"
    processes = _typed(start.get("processes"), int)
    return text + (f", {processes} processes" if processes else "")



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
    last_val_loss: float | None = None  # nats/char of the last evaluation (a run's end has one)
    last_val_step: int | None = None
    last_train_loss: float | None = None  # nats/char
    chars_per_sec: float | None = None  # median of the last CHARS_PER_SEC_WINDOW train events
    train_time: float | None = None  # seconds of training, across resumes
    started_at: datetime | None = None  # wall clock of the first start
    end_reason: str | None = None  # of the last start's end, if any
    resumes: int = 0  # how many times the run was resumed
    pid: int | None = None  # the training process, while running
    engine: str | None = None  # of the last session: "numpy", "torch on cuda:0", "... x 4 processes"
    sized: str | None = None  # why the model has its size (`sizing.Choice.why`), if it was chosen
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
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        when.astimezone().timestamp()  # year 1 or 9999 may not exist in this time zone
    except (ValueError, OverflowError, OSError):
        return None
    return when


def _number(value) -> float | None:
    """A finite float from a log value, or None (a log may hold null, NaN or garbage)."""
    return float(value) if is_finite_number(value) else None


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _typed(value, kind):
    """`value` if it is a `kind` (bools are not ints; ints beyond 64 bits are not counts), else
    None: a log may hold anything."""
    if not isinstance(value, kind) or isinstance(value, bool):
        return None
    return value if kind is not int or abs(value) < 2**63 else None


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
        info.engine = _engine_text(starts[-1])
        info.sized = _typed(_dict(starts[0].get("sizing")).get("why"), str)
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
        # best.npz's choice: the scheduled evaluations, else a session end's ("final": true)
        best = min([r for r in evals if r.get("final") is not True] or evals,
                   key=lambda r: r["val_loss"])
        info.best_val_loss = float(best["val_loss"])
        info.best_val_bpc = bits(info.best_val_loss)
        info.best_val_step = _typed(best.get("step"), int)
        info.last_val_loss = float(evals[-1]["val_loss"])
        info.last_val_step = _typed(evals[-1].get("step"), int)
    ends = [r for r in records if r.get("event") == "end"]
    if ends and info.status not in ("running", "crashed"):
        info.end_reason = _typed(ends[-1].get("reason"), str)
    samples = [r for r in records if r.get("event") == "sample" and isinstance(r.get("text"), str)]
    if samples:
        info.last_sample = samples[-1]["text"]
    return info


# ----------------------------------------------------------------------------- finding runs


def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether `path` is a run directory: it holds a log or a checkpoint (False where it cannot
    be looked into)."""
    return os.path.isdir(path) and any(os.path.isfile(os.path.join(path, n))
                                       for n in (LOG_NAME, *CHECKPOINT_NAMES))


def _run_dirs(out_dir: Path) -> list[Path]:
    """The run directories directly under `out_dir`, by name; none if it does not exist."""
    if not out_dir.is_dir():
        return []
    try:
        entries = sorted(out_dir.iterdir())
    except OSError as exc:
        raise RunError(f"cannot list the runs in {out_dir}: {exc.strerror or exc}.") from None
    return [p for p in entries if is_run_dir(p)]


def list_runs(out_dir: str | os.PathLike) -> list[RunInfo]:
    """Every run directly under `out_dir`, newest first (by first start, else by mtime).

    Directories that are not runs are skipped; a missing `out_dir` has no runs. A run whose
    log cannot be read is listed with the status "unreadable", so that the others still show.
    """
    runs = []
    for path in _run_dirs(Path(out_dir)):
        try:
            runs.append(summarize(path))
        except RunError:
            runs.append(RunInfo(name=path.name, path=path, status="unreadable"))
    runs.sort(key=lambda r: r.sort_key, reverse=True)
    return runs


def run_names(out_dir: str | os.PathLike) -> list[str]:
    return [p.name for p in _run_dirs(Path(out_dir))]


def default_out_dir() -> str:
    """Where runs live unless --out-dir says otherwise: $CHARRNN_HOME, else ./checkpoints."""
    return os.environ.get(OUT_DIR_ENV) or DEFAULT_OUT_DIR


def _searched(out_dir) -> str:
    """`out_dir` as the 'no runs' errors name it: the directory searched, and how to change it."""
    shown = f"{out_dir}/" if Path(out_dir).is_absolute() else \
        f"{out_dir}/ ({Path(out_dir).absolute()})"
    return f"{shown}; point --out-dir or {OUT_DIR_ENV} at the directory that holds your runs"


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
            if not os.access(path, os.R_OK | os.X_OK):
                raise RunError(f"cannot read the run directory {path}: permission denied.")
            raise RunError(f"'{path}' is not a run: it has no {LOG_NAME} and no checkpoint.")
    names = run_names(out_dir)
    if not names:
        raise RunError(f"no run named '{name_or_path}': there are no runs in "
                       f"{_searched(out_dir)}.")
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
    if target is not None and not str(target).strip():  # Path("") would mean "."
        raise RunError("an empty RUN|CKPT names no run; give a run's name, its directory or a "
                       "checkpoint file.")
    if target is not None and Path(target).is_file():
        return Path(target)
    if resume:
        run_dir = Path(target)
        if not run_dir.is_dir() and (run_dir.is_absolute() or len(run_dir.parts) > 1):
            raise RunError(f"cannot resume {target}: no such run directory or checkpoint file.")
        if not run_dir.is_dir():  # a run's name under out_dir, else the did-you-mean error
            run_dir = resolve_run(target, out_dir)
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
    raise RunError(f"no runs {what}in {_searched(out_dir)}, or start one with: charrnn train "
                   "corpus.txt")


# ----------------------------------------------------------------------------- starting a run


NAME_MAX_BYTES = 255  # the longest file name most file systems take
PATH_MAX_BYTES = 4096  # the longest path Linux takes
_TEMPORARY = ".tmp-{stem}-XXXXXXXX.npz"  # the longest name `checkpoint.save` writes in a run


def _shown(name: str) -> str:
    """A name as an error message quotes it: escaped, and cut if it is very long."""
    return repr(name[:60]) + ("..." if len(name) > 60 else "")


def validate_name(name: str, out_dir: str | os.PathLike | None = None) -> str:
    """A run name is one path component of letters, digits, '-', '_' and '.', not empty, not
    starting with a dot or '-', no control or formatting characters (nothing a terminal would
    read as an escape sequence), at most NAME_MAX_BYTES bytes; under `out_dir`, its files'
    paths must fit PATH_MAX_BYTES."""
    if not name or name != name.strip() or "/" in name or "\\" in name or name.startswith("."):
        raise RunError(
            f"invalid run name {_shown(name)}: use letters, digits, '-', '_' and '.', without "
            "path separators, not starting with a dot."
        )
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name):
        raise RunError(f"invalid run name {_shown(name)}: it contains control characters.")
    if name.startswith("-") or not all(c.isalnum() or c in "-_." for c in name):
        # no shell pattern (`*`, `?`), `$`, space or option look-alike: a name is typed bare
        raise RunError(f"invalid run name {_shown(name)}: use only letters, digits, '-', '_' "
                       "and '.', not starting with '-' or '.'.")
    if len(os.fsencode(name)) > NAME_MAX_BYTES:
        raise RunError(f"invalid run name {_shown(name)}: it is longer than {NAME_MAX_BYTES} "
                       "bytes.")
    if out_dir is not None:
        longest = Path(out_dir).absolute() / name / _TEMPORARY.format(stem="latest")
        if len(os.fsencode(str(longest))) > PATH_MAX_BYTES:
            raise RunError(f"invalid run name {_shown(name)}: the paths of its files in "
                           f"{out_dir} would be longer than {PATH_MAX_BYTES} bytes.")
    return name


def _candidate_names(base: str):
    """`base` made a valid name (other characters become '-', at most 100 of them), then
    `base-2`, `base-3`, ...: the names a new run may take."""
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in base[:100]).strip(".-")
    stem = stem or "run"
    yield stem
    n = 2
    while True:
        yield f"{stem}-{n}"
        n += 1


def _base_name(corpus) -> str:
    return "demo" if corpus is None else Path(corpus).stem


def unique_name(out_dir: str | os.PathLike, base: str) -> str:
    """`base`, or `base-2`, `base-3`, ... whichever does not exist yet under out_dir."""
    return next(n for n in _candidate_names(base) if not (Path(out_dir) / n).exists())


def new_run_dir(out_dir: str | os.PathLike, name: str | None,
                corpus: str | os.PathLike | None) -> Path:
    """The directory a new run would get: `name`, or one derived from the corpus file name
    (None: the demo corpus). Raises RunError if that run exists already. Nothing is created:
    `create_run_dir` does, once everything else has been checked."""
    if name is None:
        name = unique_name(out_dir, _base_name(corpus))
    run_dir = Path(out_dir) / validate_name(name, out_dir)
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


def create_run_dir(out_dir: str | os.PathLike, name: str | None,
                   corpus: str | os.PathLike | None) -> Path:
    """Create the directory of a new run, atomically, and return it: `name` (RunError if it
    exists), else the first free name derived from the corpus, so that two trainings started
    at once without --name get two runs."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create {out_dir}: {exc.strerror or exc}.") from None
    names = [name] if name is not None else _candidate_names(_base_name(corpus))
    for candidate in names:
        run_dir = out_dir / validate_name(candidate, out_dir)
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            if name is not None:
                new_run_dir(out_dir, name, corpus)  # raises, saying what is there
        except OSError as exc:
            raise RunError(f"cannot create the run directory {run_dir}: "
                           f"{exc.strerror or exc}.") from None
    raise AssertionError("unreachable: the names never run out")  # pragma: no cover


def clean_temporaries(run_dir: str | os.PathLike) -> None:
    """Remove the temporary files of checkpoint writes that a killed process left behind: only
    regular files named as `checkpoint.save` names them, never anything else."""
    from charrnn.checkpoint import TMP_PREFIX  # numpy: only the trainer, which has it, calls this

    stems = "|".join(re.escape(Path(n).stem) for n in CHECKPOINT_NAMES)
    own = re.compile(rf"{re.escape(TMP_PREFIX)}({stems})-[a-z0-9_]{{8}}\.npz")
    for tmp in Path(run_dir).glob(TMP_PREFIX + "*"):
        try:
            if own.fullmatch(tmp.name) and tmp.is_file() and not tmp.is_symlink():
                tmp.unlink()
        except OSError:
            pass


# ----------------------------------------------------------------------------- resuming a run


def new_run_id() -> str:
    """A run's id: kept in every checkpoint and in each start event of the run's log, so that a
    checkpoint is never resumed into another run's directory."""
    return uuid.uuid4().hex


def log_run_ids(run_dir: str | os.PathLike) -> list[str | None]:
    """The run id of each start event of the run's log, in order: None for a start written
    before run ids (or with a damaged one); no entries without a log."""
    records = read_log(Path(run_dir) / LOG_NAME)
    ids = (r.get("run_id") for r in records if r.get("event") == "start")
    return [i if isinstance(i, str) else None for i in ids]


def _branch_hint(ckpt_path) -> str:
    return f"charrnn train --resume {ckpt_path} --name NEW_NAME"


def resume_run_dir(ckpt_path: str | os.PathLike, run_id: str | None, step: int,
                   out_dir: str | os.PathLike, name: str | None = None,
                   given_a_file: bool = False) -> Path | None:
    """The run directory a resume from `ckpt_path` (of run `run_id`, at `step`) trains in, or
    None when it starts a new run under `out_dir`; RunError when training there would lose or
    mix up anything. The rule (README, Reliability):

    - With `name` (--name), the checkpoint starts a new run of that name, unless that name is
      the checkpoint's own run directory under `out_dir`.
    - A checkpoint file (`given_a_file`: named as a file, not found in a run directory that was
      named) whose folder has no log.jsonl is outside any run: a new run.
    - A checkpoint continues in its folder only if it belongs to the run there (its run id is
      in the log's start events; a checkpoint or log from before run ids cannot tell, and
      counts as the run's) and is not behind the run's latest.npz: anything else would
      overwrite newer steps or mix two runs, and is refused, saying how to branch on purpose.
    """
    from charrnn import checkpoint  # numpy: only the trainer, which has it, calls this

    ckpt_path = Path(ckpt_path)
    run_dir = ckpt_path.parent
    if name is not None and (Path(out_dir) / name).absolute() != run_dir.absolute():
        return None
    if given_a_file and not (run_dir / LOG_NAME).is_file():
        return None
    ids = log_run_ids(run_dir)
    if run_id is not None and ids and run_id not in ids:
        raise RunError(f"{ckpt_path} belongs to another run than the one in {run_dir}; "
                       f"resuming it there would mix the two: to continue it on purpose, "
                       f"start a new run from it: {_branch_hint(ckpt_path)}")
    latest = run_dir / LATEST_NAME
    if ckpt_path.name == LATEST_NAME or not latest.exists():
        return run_dir
    try:
        newest = checkpoint.read_training(latest)
    except CharRNNError as exc:
        raise RunError(f"the run's {LATEST_NAME} cannot be read ({exc}), so resuming from "
                       f"{ckpt_path} could overwrite newer steps; to continue it on purpose, "
                       f"start a new run from it: {_branch_hint(ckpt_path)}") from None
    newest_step = newest.step if newest is not None and newest.step is not None else 0
    if step < newest_step:
        raise RunError(f"{ckpt_path} is at step {step:,}, behind the run's {LATEST_NAME} at "
                       f"step {newest_step:,}; resuming from it would overwrite the "
                       f"{newest_step - step:,} steps after it: to train on from step {step:,} "
                       f"on purpose, start a new run from it: {_branch_hint(ckpt_path)}")
    return run_dir


