"""Saving and loading checkpoints: one `.npz` of plain arrays plus one JSON metadata entry.

Layout of the archive (every entry a numeric array; nothing is ever pickled):
  meta            uint8 bytes of a UTF-8 JSON object: format version, charrnn version, model
                  config, vocabulary (code points), dtype and the training state
                  (`TrainingState.to_json()`: step, epoch, data position, RNG state,
                  learning-rate scale, best validation loss, ...; {} for a bare model)
  params/<name>   the model's parameters, e.g. params/layers.0.Wx
  optim/<key>     the optimizer's state arrays, e.g. optim/m.layers.0.Wx (training checkpoints)
  state/<l>/<i>   the carried hidden state: layer l, array i (h, and c for the LSTM), (H, N)

Writes are atomic (`files.atomic_writer`): a temporary file in the same directory, flushed and
fsync'ed, then `os.replace`d over the target, so a crash leaves either the old or the new
checkpoint; the file's permissions follow the umask.
Loads never unpickle, and check everything before they allocate anything big: the metadata
first (every field, each error naming it), then each entry's name and its array header (shape,
dtype) against what the model's config implies, then the data, which must be finite.
"""

import json
import os
import re
import zipfile
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from charrnn import cells, files
from charrnn._version import __version__
from charrnn.config import TrainConfig
from charrnn.data import Vocab
from charrnn.errors import CharRNNError, CheckpointError, refuse_oversized
from charrnn.jsonvalues import is_finite_number
from charrnn.model import CharRNN, ModelConfig, param_shapes

FORMAT_VERSION = 1
TMP_PREFIX = files.TMP_PREFIX  # temporary files of interrupted writes start with this
_ZIP_MAGIC = b"PK\x03\x04"
_META_MAX_BYTES = 64 << 20  # the metadata's largest sane size: a full Unicode vocabulary fits
_HEADER_MAX_BYTES = 10_000  # an array header's largest size (numpy's own default limit)
_MAX_OPTIMIZER_SLOTS = 4  # kinds of optimizer state per parameter (Adam has 2)
_SLOT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class TrainingState:
    """Where a training run stands: what `charrnn train` saves in each checkpoint, and resumes.

    The trainer sets every field. A checkpoint saved from Python may hold only some (the others
    keep their defaults); a bare model holds none (its Checkpoint's `training` is None).
    `from_json` reads whatever a file holds without failing, so that sample, eval and info can
    use a damaged or hand-edited file; `check_resumable` refuses to continue training from one.
    """

    step: int | None = None  # steps of the run, resumes included
    epoch: int | None = None  # whole passes over the training text
    batch: int | None = None  # index of the next batch within the epoch
    epoch_float: float | None = None  # epoch + batch / batches per epoch
    time: float = 0.0  # seconds of training, resumes included
    lr_scale: float = 1.0  # halved at each divergence
    best_val_loss: float | None = None  # nats/char; None before the first evaluation
    bad_evals: int = 0  # evaluations since the last improvement (what --patience counts)
    last_eval_step: int | None = None  # the step of the last evaluation
    val_loss: float | None = None  # nats/char of these weights, if evaluated at their step
    rng: dict | None = None  # the dropout generator's `bit_generator.state`
    train_config: TrainConfig | None = None  # the run's options
    lr_schedule: dict | None = None  # `LRSchedule.to_json()`, for the record
    optimizer: dict | None = None  # the optimizer's name and hyperparameters, for the record
    corpus: str = "demo"  # the corpus file's absolute path, or "demo"
    encoding: str = "utf-8"  # the corpus file's encoding, which a resume reads it with
    corpus_fingerprint: dict | None = None  # {"chars", "crc32"} of the training text's ids
    sample_context: str = ""  # training text that sampling reads before the prime
    saved_at: str | None = None  # UTC, ISO 8601, to the second
    run_id: str | None = None  # the run's id (`runs.new_run_id`); None in files from before ids
    default_time_limit: bool = False  # the time limit was the default, not the user's choice
    # not saved: what `from_json` found missing (of what a resume needs), of the wrong type or
    # out of range, by field name ("train_config.seed" for one option)
    damaged: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def to_json(self):
        """The JSON-ready dict kept in a checkpoint's metadata."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "damaged"}
        if self.train_config is not None:
            out["train_config"] = asdict(self.train_config)
        return out

    @classmethod
    def from_json(cls, d):
        """The state saved as the dict `d`, whatever it holds. null reads as absent. A value
        that a resume could not use is listed in `damaged`; it is kept if it still is a finite
        number where a number belongs (info shows it), and replaced by the default otherwise."""
        values, damaged = {}, []
        for f in fields(cls):
            value = d.get(f.name) if f.name != "damaged" else None
            if value is None:
                damaged += [f.name] if f.name in _REQUIRED else []
                continue
            if f.name == "train_config":
                bad = _train_config_problems(value)
                if not bad:
                    values[f.name] = TrainConfig(**value)
                damaged += bad
                continue
            valid, readable = _KINDS[f.name]
            if not valid(value):
                damaged.append(f.name)
            if readable(value):
                values[f.name] = value
        return cls(**values, damaged=tuple(damaged))

    def summary(self):
        """What `charrnn info` shows of this state: the numbers it holds and the run's options,
        leaving out what it lacks. The epoch is fractional, as the log and the table give it,
        and `learning_rate` is the peak rate in force (the optimizer's default when none was
        set)."""
        config = self.train_config
        summary = {"step": self.step,
                   "epoch": self.epoch_float if self.epoch_float is not None else self.epoch,
                   "best_val_loss": self.best_val_loss, "val_loss": self.val_loss,
                   "time": self.time,
                   "learning_rate": config.base_lr if config else None,
                   "train_config": asdict(config) if config else None}
        return {k: v for k, v in summary.items() if v is not None}

    def check_resumable(self, path):
        """Raise CheckpointError, in one sentence about the file at `path`, unless training can
        continue from this state: it needs the run's options, the data position and the random
        generator, and every value in range."""
        damaged_config = any(n.startswith("train_config") for n in self.damaged)
        if self.train_config is None and not damaged_config:
            raise CheckpointError(f"{path} holds a model without training state; it cannot be "
                                  "resumed.")
        if self.damaged:
            raise CheckpointError(
                f"{path} has a damaged training state ({', '.join(self.damaged)}); it cannot be "
                "resumed, but sample, eval and info can still use it."
            )


def _is_count(value):
    return is_finite_number(value) and isinstance(value, int) and value >= 0


def _is_amount(value):
    return is_finite_number(value) and value >= 0


def _of(kind):
    def check(value):
        return isinstance(value, kind)

    return check, check


_COUNT, _AMOUNT = (_is_count, is_finite_number), (_is_amount, is_finite_number)
# per field: (whether a resume can use a saved value, whether info and sampling can show it)
_KINDS = {"step": _COUNT, "epoch": _COUNT, "batch": _COUNT, "bad_evals": _COUNT,
          "last_eval_step": _COUNT, "epoch_float": _AMOUNT, "time": _AMOUNT, "lr_scale": _AMOUNT,
          "best_val_loss": _AMOUNT, "val_loss": _AMOUNT, "rng": _of(dict),
          "lr_schedule": _of(dict), "optimizer": _of(dict), "corpus_fingerprint": _of(dict),
          "corpus": _of(str),
          "encoding": _of(str), "sample_context": _of(str), "saved_at": _of(str),
          "run_id": _of(str), "default_time_limit": _of(bool)}
_REQUIRED = ("step", "epoch", "batch", "rng")  # what a resume restores with no default


def _train_config_problems(saved):
    """The names of the bad entries of a saved `train_config` (the whole of it, if it is not
    a dict of TrainConfig's fields): each value must have its field's type, numbers >= 0."""
    kinds = {f.name: f.type for f in fields(TrainConfig)}
    if not isinstance(saved, dict) or set(saved) - set(kinds):
        return ["train_config"]
    bad = []
    for k, v in saved.items():
        allowed = getattr(kinds[k], "__args__", (kinds[k],))  # int | None -> (int, NoneType)
        allowed += (int,) if float in allowed else ()
        number = isinstance(v, (int, float))
        if not isinstance(v, allowed) or isinstance(v, bool) or (number and not _is_amount(v)):
            bad.append(f"train_config.{k}")
    return bad


@dataclass
class Checkpoint:
    """Everything a checkpoint holds, in memory.

    `training` is the training state (None for a bare model); `optim` the optimizer's state
    arrays; `state` the carried hidden state (tuple per layer of (H, N) arrays) or None.
    """

    model: CharRNN
    vocab: Vocab
    training: TrainingState | None = None
    optim: dict = field(default_factory=dict)
    state: tuple | None = None

    @property
    def config(self):
        return self.model.config


def save(path, ckpt):
    """Write `ckpt` to `path` atomically. Raises CheckpointError (previous file intact) on failure."""
    path = Path(path)
    meta = {
        "format": "charrnn-checkpoint",
        "format_version": FORMAT_VERSION,
        "charrnn_version": __version__,
        "config": ckpt.model.config.to_json(),
        "dtype": ckpt.model.dtype.name,
        "vocab": ckpt.vocab.to_json(),
        "training": ckpt.training.to_json() if ckpt.training is not None else {},
    }
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}
    arrays.update({f"params/{k}": v for k, v in ckpt.model.params.items()})
    arrays.update({f"optim/{k}": v for k, v in ckpt.optim.items()})
    for layer, arrs in enumerate(ckpt.state or ()):
        arrays.update({f"state/{layer}/{i}": a for i, a in enumerate(arrs)})
    bad = _not_finite(arrays)
    if bad:
        raise CheckpointError(f"refusing to save {path}: {_entry(bad)} is not finite.")
    with files.atomic_writer(path, "checkpoint", error=CheckpointError) as f:
        np.savez(f, **arrays)


def _not_finite(arrays):
    """The name of the first float entry of `arrays` that holds NaN or infinity, or None: no
    checkpoint may hold one, neither in its parameters nor in its optimizer or hidden state."""
    return next((name for name, a in arrays.items()
                 if a.dtype.kind == "f" and not np.isfinite(a).all()), None)


def _entry(name):
    """An archive entry's name as a sentence names it: 'parameter head.W', 'hidden state 0/1'."""
    kind, _, rest = name.partition("/")
    return {"params": "parameter", "optim": "optimizer state", "state": "hidden state"}.get(
        kind, "entry") + f" {rest}"


def load(path):
    """Read a checkpoint written by `save`, never executing or unpickling anything.

    Raises CheckpointError with one sentence for a missing, truncated, foreign, pickled,
    newer-format, inconsistent, oversized or non-finite file, before anything big is read.
    """
    path = Path(path)
    with _archive(path) as zf:
        members = _members(path, zf)
        meta = _read_meta(path, zf, members)
        config, vocab, dtype, training = _check_meta(path, meta)
        shapes = _check_headers(path, zf, members, config, dtype)
        arrays = {name: _read_array(zf, members[name]) for name in shapes}
    bad = _not_finite(arrays)
    if bad:  # save never writes one: the file was altered
        raise CheckpointError(f"{path} is corrupt: {_entry(bad)} holds NaN or infinity.")
    params = {name: np.ascontiguousarray(arrays[f"params/{name}"]) for name in param_shapes(config)}
    model = CharRNN(config, params=params, dtype=dtype)
    optim = {k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")}
    state = _read_state(path, arrays, model)
    training = TrainingState.from_json(training) if training else None
    return Checkpoint(model=model, vocab=vocab, training=training, optim=optim, state=state)


def read_meta(path):
    """The checked metadata of the checkpoint at `path` (a dict: format_version,
    charrnn_version, config, dtype, vocab, training), without reading its arrays."""
    path = Path(path)
    with _archive(path) as zf:
        meta = _read_meta(path, zf, _members(path, zf))
    _check_meta(path, meta)
    return meta


def read_training(path):
    """The TrainingState of the checkpoint at `path` (None for a bare model), without reading
    its arrays."""
    training = read_meta(path).get("training") or {}
    return TrainingState.from_json(training) if training else None


class _archive:
    """`with _archive(path) as zf`: the checkpoint's zip archive, open; every way the file can
    fail to be one (missing, unreadable, not a zip, truncated, bad compression) is a
    CheckpointError in one sentence."""

    def __init__(self, path):
        self.path = path
        self._file = None

    def __enter__(self):
        path = self.path
        if not path.is_file():
            what = "is a directory, not a checkpoint file" if path.is_dir() else "does not exist"
            raise CheckpointError(f"{path} {what}.")
        try:
            self._file = open(path, "rb")
            magic = self._file.read(4)
        except OSError as exc:
            self.__exit__()
            raise CheckpointError(f"{path} cannot be read: {exc.strerror or exc}.") from None
        if magic != _ZIP_MAGIC:
            self.__exit__()
            raise CheckpointError(f"{path} is not a charrnn checkpoint (not an .npz archive).")
        try:
            return zipfile.ZipFile(self._file)
        except _READ_ERRORS as exc:
            self.__exit__()
            raise _corrupt(path, exc) from None

    def __exit__(self, *exc_info):
        if self._file is not None:
            self._file.close()
            self._file = None
        if exc_info and isinstance(exc_info[1], _READ_ERRORS):
            raise _corrupt(self.path, exc_info[1]) from None


# what reading a damaged archive raises, beyond our own CheckpointError
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, ValueError,
                NotImplementedError, RuntimeError)


def _corrupt(path, exc):
    return CheckpointError(f"{path} is corrupt or truncated ({exc}); use another checkpoint, "
                           "e.g. the run's latest.npz or best.npz.")


def _members(path, zf):
    """{entry name without .npy: ZipInfo}; a foreign archive (no meta entry) is refused."""
    members = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy") or info.filename[:-4] in members:
            raise CheckpointError(f"{path} has an unexpected entry {info.filename[:80]!r}; it "
                                  "is not a checkpoint charrnn wrote.")
        members[info.filename[:-4]] = info
    if "meta" not in members:
        raise CheckpointError(f"{path} is an .npz archive but not a charrnn checkpoint.")
    return members


def _header(path, zf, info):
    """(shape, dtype) from an entry's .npy header, reading nothing else. A pickled entry is
    refused here, before anything could unpickle it."""
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy format {version}")
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f, max_header_size=_HEADER_MAX_BYTES)
    if dtype.hasobject:
        raise CheckpointError(f"{path} contains pickled Python objects; charrnn never "
                              "unpickles files, so it refuses to load it.")
    return shape, dtype


def _read_array(zf, info):
    with zf.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False,
                                        max_header_size=_HEADER_MAX_BYTES)


def _read_meta(path, zf, members):
    info = members["meta"]
    shape, dtype = _header(path, zf, info)
    if dtype != np.uint8 or len(shape) != 1:
        raise CheckpointError(f"{path} is an .npz archive but not a charrnn checkpoint.")
    if shape[0] > _META_MAX_BYTES:
        raise CheckpointError(f"{path} has {shape[0]:,} bytes of metadata, more than a "
                              "checkpoint ever holds; the file is corrupt.")
    raw = _read_array(zf, info)
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CheckpointError(f"{path} has unreadable metadata; the file is corrupt.") from None
    if not isinstance(meta, dict) or meta.get("format") != "charrnn-checkpoint":
        raise CheckpointError(f"{path} is an .npz archive but not a charrnn checkpoint.")
    version = meta.get("format_version")
    if not _is_count(version) or version < 1:
        raise _bad_meta(path, "format_version", "is not a positive integer")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer charrnn (checkpoint format {version}, this is "
            f"charrnn {__version__} reading format {FORMAT_VERSION}); upgrade charrnn to load it."
        )
    return meta


def _bad_meta(path, name, problem):
    return CheckpointError(f"{path} has invalid metadata: {name} {problem}.")


_MODEL_SHAPE = ("cell", "vocab_size", "hidden_size", "num_layers")  # what a config must name


def _check_meta(path, meta):
    """(ModelConfig, Vocab, dtype, training dict) from checked metadata; CheckpointError naming
    the first field that is missing, of the wrong type or out of range."""
    if not isinstance(meta.get("charrnn_version", ""), str):
        raise _bad_meta(path, "charrnn_version", "is not a string")
    config = meta.get("config")
    if not isinstance(config, dict):
        raise _bad_meta(path, "config", "is not an object")
    known = {f.name for f in fields(ModelConfig)}
    for key in [*_MODEL_SHAPE, *config]:
        if key not in known:
            raise _bad_meta(path, f"config.{str(key)[:40]}", "is not a model option")
        if key not in config:
            raise _bad_meta(path, f"config.{key}", "is missing")
    if config["cell"] not in cells.CELLS:
        raise _bad_meta(path, "config.cell", f"is not one of {', '.join(cells.CELLS)}")
    for key in ("vocab_size", "hidden_size", "num_layers"):
        if not _is_count(config[key]) or config[key] < 1:
            raise _bad_meta(path, f"config.{key}", "is not a positive integer")
    dropout = config.get("dropout", 0.0)
    if not is_finite_number(dropout) or not 0 <= dropout < 1:
        raise _bad_meta(path, "config.dropout", "is not a number from 0 up to 1")
    dtype = meta.get("dtype", "float32")
    if dtype not in ("float32", "float64"):
        raise _bad_meta(path, "dtype", "is not float32 or float64")
    try:
        vocab = Vocab.from_json(meta.get("vocab"))
    except CharRNNError:
        raise _bad_meta(path, "vocab", "is not a non-empty list of increasing Unicode code "
                                       "points") from None
    if vocab.size != config["vocab_size"]:
        raise _bad_meta(path, "vocab", f"has {vocab.size} characters, not config.vocab_size "
                                       f"({config['vocab_size']})")
    training = meta.get("training", {})
    if not isinstance(training, dict):
        raise _bad_meta(path, "training", "is not an object")
    return ModelConfig.from_json(config), vocab, np.dtype(dtype), training


def _expected(name, config, dtype, params):
    """(shape or None for "any (H, N)", allowed dtypes) of the entry `name`, or None if a
    checkpoint of this config has no such entry."""
    kind, _, rest = name.partition("/")
    if kind == "params" and rest in params:
        return params[rest], (dtype,)
    if kind == "optim" and rest == "t":
        return (), (np.dtype(np.int64), np.dtype(np.int32))
    slot, _, param = rest.partition(".")
    if kind == "optim" and _SLOT_NAME.fullmatch(slot) and param in params:
        return params[param], (np.dtype(np.float32), np.dtype(np.float64))
    layer, _, index = rest.partition("/")
    if (kind == "state" and layer.isdigit() and index.isdigit()
            and int(layer) < config.num_layers and int(index) < len(config.cell_spec.states)):
        return None, (dtype,)
    return None


def _check_headers(path, zf, members, config, dtype):
    """{entry name: shape} of the arrays to read, once every entry's name, shape and dtype has
    been checked against `config` and their total size against this machine's memory."""
    params = param_shapes(config)
    shapes, streams, total = {}, set(), 0
    for name, info in members.items():
        if name == "meta":
            continue
        expected = _expected(name, config, dtype, params)
        if expected is None:
            raise CheckpointError(f"{path} has an unexpected entry {name[:80]!r} for a "
                                  f"{config.cell} of {config.num_layers} layer(s); the file "
                                  "is not a checkpoint charrnn wrote.")
        shape, found = _header(path, zf, info)
        want, dtypes = expected
        if want is None and len(shape) == 2 and shape[0] == config.hidden_size:
            streams.add(shape[1])
            want = shape
        if shape != want or found not in dtypes:
            raise CheckpointError(f"{path} is inconsistent: {_entry(name)} is missing or "
                                  f"malformed (shape {shape}, {found}).")
        shapes[name] = shape
        total += int(np.prod(shape, dtype=object)) * found.itemsize
    missing = [n for n in params if f"params/{n}" not in shapes]
    if missing:
        raise CheckpointError(f"{path} is inconsistent: parameter {missing[0]} is missing or "
                              "malformed.")
    slots = {n.partition("/")[2].partition(".")[0] for n in shapes if n.startswith("optim/")}
    if len(streams) > 1 or len(slots - {"t"}) > _MAX_OPTIMIZER_SLOTS:
        raise CheckpointError(f"{path} is inconsistent: its hidden state or optimizer state is "
                              "malformed.")
    refuse_oversized(2 * total, f"loading {path}", "it is too large for this machine.")
    return shapes


def _read_state(path, arrays, model):
    """The carried hidden state, or None if the checkpoint has none (its entries' shapes were
    checked by `_check_headers`)."""
    if not any(k.startswith("state/") for k in arrays):
        return None
    state = []
    for layer, arrs in enumerate(model.init_state(1)):
        loaded = []
        for i in range(len(arrs)):
            s = arrays.get(f"state/{layer}/{i}")
            if s is None:
                raise CheckpointError(f"{path} is inconsistent: its hidden state is malformed.")
            loaded.append(np.ascontiguousarray(s))
        state.append(tuple(loaded))
    return tuple(state)
