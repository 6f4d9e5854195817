"""Saving and loading checkpoints: one `.npz` of plain arrays plus one JSON metadata entry.

Layout of the archive (every entry a numeric array; nothing is ever pickled):
  meta            uint8 bytes of a UTF-8 JSON object: format version, charrnn version, model
                  config, vocabulary (code points), dtype and the training state
                  (`TrainingState.to_json()`: step, epoch, data position, RNG state,
                  learning-rate scale, best validation loss, ...; {} for a bare model)
  params/<name>   the model's parameters, e.g. params/layers.0.Wx
  optim/<key>     the optimizer's state arrays, e.g. optim/m.layers.0.Wx (training checkpoints)
  state/<l>/<i>   the carried hidden state: layer l, array i (h, and c for the LSTM), (H, N)

Writes are atomic: a temporary file in the same directory, flushed and fsync'ed, then
`os.replace`d over the target, so a crash leaves either the old or the new checkpoint.
Loads use `np.load(..., allow_pickle=False)` and check every entry before trusting it.
"""

import json
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from charrnn._version import __version__
from charrnn.config import TrainConfig
from charrnn.data import Vocab
from charrnn.errors import CharRNNError, CheckpointError
from charrnn.jsonvalues import is_finite_number
from charrnn.model import CharRNN, ModelConfig, param_shapes

FORMAT_VERSION = 1
TMP_PREFIX = ".tmp-"  # temporary files of interrupted writes start with this; safe to delete
_ZIP_MAGIC = b"PK\x03\x04"


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
    last_eval_step: int | None = None  # a resume does not evaluate this step again
    rng: dict | None = None  # the dropout generator's `bit_generator.state`
    train_config: TrainConfig | None = None  # the run's options
    lr_schedule: dict | None = None  # `LRSchedule.to_json()`, for the record
    optimizer: dict | None = None  # the optimizer's name and hyperparameters, for the record
    corpus: str = "demo"  # the corpus file's absolute path, or "demo"
    corpus_fingerprint: dict | None = None  # {"chars", "crc32"} of the training text's ids
    sample_context: str = ""  # training text that sampling reads before the prime
    saved_at: str | None = None  # UTC, ISO 8601, to the second
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
          "best_val_loss": _AMOUNT, "rng": _of(dict), "lr_schedule": _of(dict),
          "optimizer": _of(dict), "corpus_fingerprint": _of(dict), "corpus": _of(str),
          "sample_context": _of(str), "saved_at": _of(str)}
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
    for name, p in ckpt.model.params.items():
        if not np.isfinite(p).all():
            raise CheckpointError(f"refusing to save {path}: parameter {name} is not finite.")
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
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.stem + "-", suffix=".npz", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(exc, OSError):
            kept = "the previous checkpoint is intact" if path.exists() else "no file was written"
            raise CheckpointError(
                f"could not write checkpoint {path}: {exc.strerror or exc}; {kept}."
            ) from None
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory):
    """Make the rename itself durable (POSIX); harmless where directories cannot be opened."""
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


def load(path):
    """Read a checkpoint written by `save`, never executing or unpickling anything.

    Raises CheckpointError with one sentence for a missing, truncated, foreign, pickled,
    newer-format or inconsistent file.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a checkpoint file" if path.is_dir() else "does not exist"
        raise CheckpointError(f"{path} {what}.")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc.strerror or exc}.") from None
    if magic != _ZIP_MAGIC:
        raise CheckpointError(f"{path} is not a charrnn checkpoint (not an .npz archive).")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise CheckpointError(
                f"{path} contains pickled Python objects; charrnn never unpickles files, "
                "so it refuses to load it."
            ) from None
        raise CheckpointError(f"{path} is corrupt: {exc}.") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise CheckpointError(
            f"{path} is corrupt or truncated ({exc}); use another checkpoint, "
            "e.g. the run's latest.npz or best.npz."
        ) from None
    return _from_arrays(path, arrays)


def _from_arrays(path, arrays):
    meta = _read_meta(path, arrays)
    try:
        config = ModelConfig.from_json(meta["config"])
        vocab = Vocab.from_json(meta["vocab"])
        dtype = np.dtype(meta.get("dtype", "float32"))
        training = meta.get("training", {})
    except (CharRNNError, TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path} has invalid metadata ({exc}).") from None
    if dtype not in (np.float32, np.float64) or config.vocab_size != vocab.size:
        raise CheckpointError(f"{path} has invalid metadata (dtype or vocabulary size).")
    if not isinstance(training, dict):
        raise CheckpointError(f"{path} has invalid metadata (the training state is not an object).")
    training = TrainingState.from_json(training) if training else None
    params = {}
    for name, shape in param_shapes(config).items():
        arr = arrays.get(f"params/{name}")
        if arr is None or arr.shape != shape or arr.dtype != dtype:
            raise CheckpointError(f"{path} is inconsistent: parameter {name} is missing or malformed.")
        if not np.isfinite(arr).all():  # save never writes one: the file was altered
            raise CheckpointError(f"{path} is corrupt: parameter {name} holds NaN or infinity.")
        params[name] = np.ascontiguousarray(arr)
    model = CharRNN(config, params=params, dtype=dtype)
    optim = {k[len("optim/") :]: v for k, v in arrays.items() if k.startswith("optim/")}
    state = _read_state(path, arrays, model)
    return Checkpoint(model=model, vocab=vocab, training=training, optim=optim, state=state)


def _read_meta(path, arrays):
    raw = arrays.get("meta")
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{path} is an .npz archive but not a charrnn checkpoint.")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(f"{path} has unreadable metadata; the file is corrupt.") from None
    if not isinstance(meta, dict) or meta.get("format") != "charrnn-checkpoint":
        raise CheckpointError(f"{path} is an .npz archive but not a charrnn checkpoint.")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer charrnn (checkpoint format {version}, this is "
            f"charrnn {__version__} reading format {FORMAT_VERSION}); upgrade charrnn to load it."
        )
    return meta


def _read_state(path, arrays, model):
    """The carried hidden state, or None if the checkpoint has none."""
    if not any(k.startswith("state/") for k in arrays):
        return None
    template = model.init_state(1)
    first = arrays.get("state/0/0")
    N = first.shape[-1] if first is not None and first.ndim == 2 else None  # every array's streams
    state = []
    for layer, arrs in enumerate(template):
        loaded = []
        for i, a in enumerate(arrs):
            s = arrays.get(f"state/{layer}/{i}")
            if s is None or s.dtype != model.dtype or s.shape != (a.shape[0], N):
                raise CheckpointError(f"{path} is inconsistent: its hidden state is malformed.")
            loaded.append(np.ascontiguousarray(s))
        state.append(tuple(loaded))
    return tuple(state)
