"""The model's size and dropout, chosen from the corpus and the budget (`--size`).

More time should buy a better model, and a model that fits 10 minutes overfits in an hour. So
a new run that does not set its size picks it here, from two numbers:

    minutes  the budget on this machine: --time-limit, or --max-steps / --epochs turned
             into minutes by a quick measurement of this machine's speed (`estimate_speed`)
    chars    the training split's length in characters

The rule (one table and one formula, calibrated by the runs in README, Performance):

    size     layers × units   chosen by `auto` when
    tiny     1 × 128          minutes < 0.25 (15 seconds)
    small    2 × 256          0.25 <= minutes < 5, or a corpus under 20 k characters
    medium   2 × 384          5 <= minutes < 20, or a corpus under 200 k characters
    large    2 × 512          minutes >= 20

    dropout  = clip(0.5 · log10(pressure) − 0.38, 0, 0.4)
    pressure = passes · (units / 256)² · layers / 2   (the small size's passes, in effect)
    weight decay = 0.2 once the dropout is at its cap of 0.4 and the optimizer is Adam, else 0
                                                      (decoupled, `optim.py`)
    passes   = minutes · 60 · RATE[size] / chars      (or, for a step or epoch budget, the
                                                       characters it trains on / chars)

A bigger model learns more per character but takes more time per character; dropout follows
how much the model can memorise (the passes over the text times its recurrent weights,
relative to 2×256); beyond a dropout of 0.4, decoupled weight decay takes over. The same λ is
another decay at another optimizer's rate (each step takes lr · λ of the weights away), and
the runs used Adam at its default rate, so the rule adds it only with Adam. The runs that
chose these numbers, and what they measured, are in the README (Performance). Options the
user sets (--hidden-size, --num-layers, --dropout, --weight-decay, or a named --size) always
win; the rule fills in only what is left (with --dropout given, it adds no weight decay).

RATE is the characters per second each size trained at here (2 cores, numpy engine,
evaluations included); budgets given in steps or epochs are converted with the small size's
rate scaled by this machine's measured speed, so that the same command sizes alike here and
on a faster machine in proportion to what it can compute.
"""

import functools
import math
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    num_layers: int
    hidden_size: int
    rate: float  # characters per second trained here (2 cores), evaluations included


PRESETS = {
    "tiny": Preset(1, 128, 60_000.0),
    "small": Preset(2, 256, 22_300.0),
    "medium": Preset(2, 384, 10_900.0),
    "large": Preset(2, 512, 7_050.0),
}
# auto: the first size whose row admits (minutes, chars); `large` takes the rest
_AUTO = (("tiny", 0.25, 0), ("small", 5.0, 20_000), ("medium", 20.0, 200_000))
MAX_DROPOUT = 0.4
# the weight decay that takes over at MAX_DROPOUT, and the optimizer it was measured with
WEIGHT_DECAY, DECAY_OPTIMIZER = 0.2, "adam"
# seconds one _gemm_probe took on the machine RATE was measured on
_PROBE_SECONDS = 0.78e-3


def auto_size(minutes, chars):
    """The preset `auto` picks for a budget of `minutes` on a training text of `chars`."""
    for name, below_minutes, below_chars in _AUTO:
        if minutes < below_minutes or chars < below_chars:
            return name
    return "large"


def describe():
    """The presets and the `auto` table, in words (for --help)."""
    sizes = ", ".join(f"{name} {p.num_layers}×{p.hidden_size}" for name, p in PRESETS.items())
    rows = [f"{name} under {_fmt_minutes(minutes)}" for name, minutes, _ in _AUTO]
    caps = [f"{name} under {chars // 1000:,} k characters" for name, _, chars in _AUTO if chars]
    return (f"{sizes}; auto picks by the budget ({', '.join(rows)}, else large) and the "
            f"corpus (at most {' and '.join(caps)}).")


def epochs(size, minutes, chars):
    """Passes over `chars` characters that `minutes` of training at size `size` makes here."""
    return minutes * 60.0 * PRESETS[size].rate / max(chars, 1)


def dropout_for(passes, num_layers=2, hidden_size=256):
    """Dropout for a model of `num_layers` × `hidden_size` that makes `passes` passes over its
    text (see the module's formula); math.inf (an endless run) gets MAX_DROPOUT."""
    pressure = passes * (hidden_size / 256) ** 2 * num_layers / 2
    if pressure <= 1.0:
        return 0.0
    return round(min(MAX_DROPOUT, max(0.0, 0.5 * math.log10(pressure) - 0.38)), 2)


@dataclass(frozen=True)
class Choice:
    """What the rule chose: the fields to set on TrainConfig and the phrase that says why."""

    size: str
    num_layers: int
    hidden_size: int
    dropout: float
    weight_decay: float
    minutes: float
    chars: int
    why: str

    def to_json(self):
        return {"size": self.size, "num_layers": self.num_layers,
                "hidden_size": self.hidden_size, "dropout": self.dropout,
                "weight_decay": self.weight_decay,
                "minutes": None if self.minutes == math.inf else round(self.minutes, 2),
                "chars": self.chars, "why": self.why}


def choose(size, chars, time_limit=None, work=None, given=None, speed=None, optimizer="adam"):
    """The model for a run on `chars` training characters.

    size: a name of `config.SIZES` ("auto": the rule's table). time_limit: the budget in
    seconds, if any. work: the characters a step or epoch budget trains on, if any (timed at
    `speed` characters per second, default `estimate_speed()`; the passes over the text are
    then known exactly). No budget at all is an endless run. given: the TrainConfig fields
    among num_layers, hidden_size, dropout and weight_decay that the user set, by name; they
    are kept. optimizer: the run's; the rule's weight decay is for `DECAY_OPTIMIZER` only.
    """
    given = given or {}
    minutes = min([time_limit / 60.0] if time_limit is not None else [], default=math.inf)
    if work is not None:
        minutes = min(minutes, work / (speed or estimate_speed()) / 60.0)
    name = auto_size(minutes, chars) if size == "auto" else size
    preset = PRESETS[name]
    layers = given.get("num_layers", preset.num_layers)
    hidden = given.get("hidden_size", preset.hidden_size)
    passes = min(epochs(name, time_limit / 60.0, chars) if time_limit is not None else math.inf,
                 work / max(chars, 1) if work is not None else math.inf)
    dropout = given.get("dropout", dropout_for(passes, layers, hidden))
    heavy = "dropout" not in given and dropout >= MAX_DROPOUT and optimizer == DECAY_OPTIMIZER
    weight_decay = given.get("weight_decay", WEIGHT_DECAY if heavy else 0.0)
    shape = f"{layers}×{hidden}, dropout {dropout:g}"
    shape += f", weight decay {weight_decay:g}" if weight_decay else ""
    if size != "auto":
        why = f"{shape}: --size {size}"
    else:
        why = f"{shape}: sized for {_fmt_minutes(minutes)} on {_fmt_chars(chars)} characters"
    if given:
        why += " (" + ", ".join(f"--{k.replace('_', '-')} as given" for k in sorted(given)) + ")"
    return Choice(name, layers, hidden, dropout, weight_decay, minutes, chars, why)


def _gemm_probe():
    """Seconds for the matrix product at the heart of a 2×256 LSTM step, (64, 512) @ (512, 1024)
    in float32 on one core: the best of a few tries (the least disturbed by other work),
    within about 0.2 s."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 512), dtype=np.float32)
    b = rng.standard_normal((512, 1024), dtype=np.float32)
    out = np.empty((64, 1024), dtype=np.float32)
    best, start = math.inf, time.perf_counter()
    with threadpool_limits(1):
        for _ in range(20):
            t = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - t)
            if t - start > 0.2:
                break
    return best


@functools.cache
def estimate_speed():
    """Characters per second the small size would train at on this machine: its rate here,
    scaled by how fast one core of this machine multiplies matrices compared with the one it
    was measured on."""
    return PRESETS["small"].rate * _PROBE_SECONDS / max(_gemm_probe(), 1e-9)


def _fmt_minutes(minutes):
    if minutes == math.inf:
        return "an endless run"
    if minutes >= 90:
        text = f"{minutes / 60:.3g} hours"
    elif minutes >= 1:
        text = f"{minutes:.3g} minutes"
    else:
        text = f"{minutes * 60:.2g} seconds"
    return text[:-1] if text.startswith("1 ") else text  # "1 minute", not "1 minutes"


def _fmt_chars(chars):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if chars >= scale:
            return f"{chars / scale:.3g} {unit}"
    return f"{chars:,}"
