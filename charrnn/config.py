"""Every option's name, choices and default, in one numpy-free place: the model's shape
(`ModelConfig`), the training options (`TrainConfig`), the optimizers and their default
learning rates. The command line builds its choices, defaults and help from here, and the
library validates against it.
"""

import math
import re
from dataclasses import asdict, dataclass

from charrnn import cells

# Default learning rates for character-level RNNs (with global-norm clipping at ~5):
#   rmsprop 2e-3: the rate karpathy/char-rnn trains its LSTMs with (RMSprop, decay 0.95).
#   adam 3e-3: Adam's per-parameter step has the same scale (about lr); with the warm-up and the
#     cosine decay of the default schedule, 3e-3 trained better than 2e-3 in 10 minutes on
#     tiny-shakespeare (README, Performance).
#   adagrad 1e-1: min-char-rnn's rate; Adagrad's steps shrink as sum(g^2) grows, so it starts large.
#   sgd 1.0: plain SGD on LSTMs as in Zaremba et al. 2014 (lr 1, clipping at norm 5).
DEFAULT_LR = {"adam": 3e-3, "rmsprop": 2e-3, "adagrad": 1e-1, "sgd": 1.0}
OPTIMIZERS = tuple(DEFAULT_LR)  # the --optimizer choices; optim.OPTIMIZERS implements them
LR_SCHEDULES = ("cosine", "constant")
DTYPES = ("float32", "float64")
SIZES = ("auto", "tiny", "small", "medium", "large", "xlarge")  # --size; `sizing.PRESETS` defines them
DEFAULT_TIME_LIMIT = 600.0  # seconds: a new run that sets no budget at all trains 10 minutes
DEFAULT_TEMPERATURE = 0.8  # sampling's temperature when none is given
UNKNOWN_CHOICES = ("error", "skip", "replace")  # what to do with characters a model lacks


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model's shapes; saved in every checkpoint."""

    cell: str = "lstm"  # a name in the cell table (`charrnn.cells.CELLS`)
    vocab_size: int = 65  # number of distinct characters
    hidden_size: int = 256  # units per layer
    num_layers: int = 2  # stacked recurrent layers
    dropout: float = 0.0  # dropout probability between layers and before the head (training only)

    def __post_init__(self):
        cells.get(self.cell)  # ValueError naming the choices
        if self.vocab_size < 1 or self.hidden_size < 1 or self.num_layers < 1:
            raise ValueError("vocab_size, hidden_size and num_layers must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")

    @property
    def cell_spec(self):
        """This config's row of the cell table."""
        return cells.get(self.cell)

    def to_json(self):
        return asdict(self)

    @classmethod
    def from_json(cls, d):
        return cls(**d)


@dataclass
class TrainConfig:
    """Every training option; saved in checkpoints and in the log's `start` event."""

    # model; a new run's `train()` sets the next three by `size` unless they are given
    size: str = "auto"  # one of SIZES: "auto" sizes by corpus and budget (`charrnn.sizing`)
    cell: str = "lstm"  # a name in the cell table
    hidden_size: int = 256  # units per layer
    num_layers: int = 2  # stacked recurrent layers
    dropout: float = 0.1  # between layers and before the head
    dtype: str = "float32"  # one of DTYPES
    # data
    seq_length: int = 50  # BPTT steps per batch
    batch_size: int = 64  # parallel streams
    val_fraction: float = 0.1  # last part of the text held out for validation
    val_max_chars: int = 200_000  # evaluations score at most the first this-many val characters
    min_count: int | None = None  # rarer characters map to U+FFFD (`data.limit_vocab`)
    max_vocab: int | None = None  # at most this many characters, U+FFFD included
    # optimisation
    optimizer: str = "adam"  # one of OPTIMIZERS
    learning_rate: float | None = None  # None: the optimizer's DEFAULT_LR
    lr_schedule: str = "cosine"  # "cosine" (decay over the budget) or "constant"
    warmup_steps: int = 100  # linear warm-up steps
    min_lr_ratio: float = 0.1  # cosine decays to learning_rate * this
    grad_clip: float = 5.0  # global-norm clipping threshold, 0 = off
    weight_decay: float = 0.0  # decoupled decay of the weight matrices: W -= lr * this * W
    # budget: training stops at the first limit reached
    max_steps: int | None = None  # total steps of the run, resumes included
    epochs: float | None = None  # passes over the training text
    time_limit: float | None = None  # seconds of training, resumes included
    patience: int | None = None  # evaluations without improvement before stopping early
    # monitoring
    eval_every: int = 200  # steps between validations
    checkpoint_every: int = 200  # steps between latest.npz saves
    sample_every: int = 0  # steps between printed samples, 0 = never
    sample_length: int = 200  # characters per printed sample
    log_every: int = 10  # steps between `train` lines in log.jsonl
    seed: int | None = None  # None: a random seed, recorded in the log
    threads: int | None = None  # cores per step (batch chunks); None: `parallel.default_threads`

    def model_config(self, vocab_size):
        return ModelConfig(self.cell, vocab_size, self.hidden_size, self.num_layers, self.dropout)

    @property
    def base_lr(self):
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LR[self.optimizer]


# how messages show an option left unset (None): never Python's None
UNSET = {"learning_rate": "the optimizer's default", "min_count": "none", "max_vocab": "no limit",
         "max_steps": "no limit", "epochs": "no limit", "time_limit": "no limit",
         "patience": "none", "seed": "random", "threads": "auto"}


def show_option(name, value):
    """The value of TrainConfig option `name` as a message shows it: None as what it means for
    that option ("no limit", "none"), anything else as Python writes it (0.003, 1e+308)."""
    return UNSET.get(name, "unset") if value is None else str(value)


# ----------------------------------------------------------------------------------------------
# The budget: how long a run trains, and what has ended it.

BUDGETS = ("max_steps", "epochs", "time_limit")  # the limits on how much a run trains
# what each stop reason of `stop_reason` is set with
STOP_OPTIONS = {"max_steps": "max_steps", "epochs": "epochs", "time_limit": "time_limit",
                "early_stopping": "patience"}


_DURATION_PART = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)([hms]?)")  # ASCII digits only
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text):
    """'90s', '10m', '1h', '1h30m', '2.5h', '1h30' (90 minutes: a number after a unit counts
    in the next smaller one, as a clock reads), '10m30' or plain seconds -> seconds (float).
    Units go from hours down to seconds, each at most once; ValueError if bad (e.g. '10m10m',
    '30m1h', '10s5')."""
    s = str(text).strip().lower()
    unreadable = (f"cannot read {text!r} as a duration; use e.g. 90s, 10m, 1h30m or 1h30, "
                  "each unit once, hours before minutes before seconds")
    total, pos, allowed = 0.0, 0, "hms"
    while pos < len(s):
        part = _DURATION_PART.match(s, pos)
        if part is None:
            raise ValueError(unreadable)
        number, unit = part.groups()
        if not unit:  # a bare number: seconds alone, else the unit after the last one given
            unit = allowed[:1] if pos else "s"
            if part.end() != len(s) or not unit:
                raise ValueError(unreadable)
        if unit not in allowed:
            raise ValueError(unreadable)
        allowed = allowed[allowed.index(unit) + 1:]
        total += float(number) * _UNITS[unit]
        pos = part.end()
    if not s or not 0 < total < math.inf:
        raise ValueError(f"cannot read {text!r} as a positive duration; use e.g. 90s, 10m or 1h")
    return total


def budget_fraction(cfg, step, epoch, elapsed):
    """Fraction of the training budget used: the largest of the limits that are set, or None."""
    parts = []
    if cfg.max_steps:
        parts.append(step / cfg.max_steps)
    if cfg.epochs:
        parts.append(epoch / cfg.epochs)
    if cfg.time_limit:
        parts.append(elapsed / cfg.time_limit)
    return max(parts) if parts else None


def stop_reason(cfg, step, epoch, elapsed, bad_evals):
    """Which budget a run at this point has used up ("early_stopping", "max_steps", "epochs",
    "time_limit"), or None. Early stopping comes first: a session whose --max-steps ends where
    --patience runs out stops for the reason an uninterrupted run would give."""
    if cfg.patience is not None and bad_evals >= cfg.patience:
        return "early_stopping"
    if cfg.max_steps is not None and step >= cfg.max_steps:
        return "max_steps"
    if cfg.epochs is not None and epoch >= cfg.epochs:
        return "epochs"
    if cfg.time_limit is not None and elapsed >= cfg.time_limit:
        return "time_limit"
    return None
