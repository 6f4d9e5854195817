"""The model's size and dropout, chosen from the corpus and the budget (`--size`).

More time should buy a better model, and a model that fits 10 minutes overfits in an hour. So
a new run that does not set its size picks it here, from these numbers:

    minutes  the time budget (--time-limit), if any
    work     the characters a --max-steps or --epochs budget trains on, if any
    speed    the characters per second the reference size (small) trains at with the run's
             engine on this machine, measured (`engines.auto.measured`); the other sizes'
             speeds follow in the calibration's proportions (`rate`)
    chars    the training split's length in characters

The rule (one table and one formula, calibrated by the runs in README, Performance):

    size     layers × units   chosen by `auto` when the budget lets it read   and the text has
    tiny     1 × 128          (otherwise)
    small    2 × 256          334 k characters (15 s on the calibration machine)
    medium   2 × 384          3.27 M characters (5 minutes there)              20 k characters
    large    2 × 512          8.46 M characters (20 minutes there)             200 k characters
    xlarge   2 × 1024         51.8 M characters (8 hours there)                2 M characters

    reads    = min(minutes · 60 · rate(size), work)   the largest size, in order, whose row
                                                       admits it
    dropout  = clip(0.5 · log10(pressure) − 0.38, 0, 0.4)
    pressure = passes · (units / 256)² · layers / 2   (the small size's passes, in effect)
    weight decay = 0.2 once the dropout is at its cap of 0.4 and the optimizer is Adam, else 0
                                                      (decoupled, `optim.py`)
    passes   = minutes · 60 · rate(size) / chars  (or, for a step or epoch budget, the
                                                   characters it trains on / chars)

On the calibration machine the thresholds are the old table's minutes (tiny under 15 seconds,
small under 5 minutes, medium under 20, else large); a faster engine or machine reads more
in the same minutes and so moves up the table, never down. xlarge has no calibration run:
its rate is extrapolated from large's, and it is chosen only where a budget can read 50 M
characters of a corpus of 2 M or more (a GPU's hours), never for an endless run.

A bigger model learns more per character but takes more time per character; dropout follows
how much the model can memorise (the passes over the text times its recurrent weights,
relative to 2×256); beyond a dropout of 0.4, decoupled weight decay takes over. The same λ is
another decay at another optimizer's rate (each step takes lr · λ of the weights away), and
the runs used Adam at its default rate, so the rule adds it only with Adam. The runs that
chose these numbers, and what they measured, are in the README (Performance). Options the
user sets (--hidden-size, --num-layers, --dropout, --weight-decay, or a named --size) always
win; the rule fills in only what is left (with --dropout given, it adds no weight decay).

A preset's rate is the characters per second it trained at on the calibration machine (2
cores, numpy engine, evaluations included). Without a measured speed (`choose`'s default),
the rule reads the calibration machine's.
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    num_layers: int
    hidden_size: int
    rate: float  # characters per second on the calibration machine, evaluations included
    chosen_from: float  # auto picks it from this many minutes on the calibration machine
    min_corpus: int  # ... and a training text of at least this many characters

    @property
    def min_chars(self):
        """The characters a budget must let this preset read for auto to pick it."""
        return self.chosen_from * 60.0 * self.rate


PRESETS = {
    "tiny": Preset(1, 128, 60_000.0, 0.0, 0),
    "small": Preset(2, 256, 22_300.0, 0.25, 0),
    "medium": Preset(2, 384, 10_900.0, 5.0, 20_000),
    "large": Preset(2, 512, 7_050.0, 20.0, 200_000),
    # not calibrated: its rate extrapolated from large's (a step costs ~ units²); chosen for
    # budgets that let it read 50 M characters of a corpus of 2 M or more (a GPU's hours)
    "xlarge": Preset(2, 1024, 1_800.0, 480.0, 2_000_000),
}
REFERENCE = "small"  # the preset whose measured speed the rule reads (`choose`'s speed)
MAX_DROPOUT = 0.4
# the weight decay that takes over at MAX_DROPOUT, and the optimizer it was measured with
WEIGHT_DECAY, DECAY_OPTIMIZER = 0.2, "adam"


def rate(size, speed=None):
    """Characters per second preset `size` trains at where the reference preset trains at
    `speed` (default: the calibration machine's), in the calibration's proportions."""
    ref = PRESETS[REFERENCE].rate
    return PRESETS[size].rate * (speed or ref) / ref


def auto_size(minutes, chars, speed=None, work=None):
    """The preset `auto` picks for a budget of `minutes` (and/or `work` characters of
    training: a step or epoch budget) on a training text of `chars`, where the reference
    preset trains at `speed` characters per second: the largest preset, in order, that the
    budget lets read its `min_chars` and whose `min_corpus` the text reaches. A faster engine
    reads more in the same minutes, so it never gets a smaller model; a work budget reads its
    characters at any speed. An endless run stops at large: there is no budget to say what
    xlarge would read."""
    chosen = "tiny"
    for name, preset in list(PRESETS.items())[1:]:
        reads = min(minutes * 60.0 * rate(name, speed), math.inf if work is None else work)
        if reads == math.inf and name == "xlarge":
            break
        if reads < preset.min_chars or chars < preset.min_corpus:
            break
        chosen = name
    return chosen


def describe():
    """The presets and the `auto` table, in words (for --help)."""
    sizes = ", ".join(f"{name} {p.num_layers}×{p.hidden_size}" for name, p in PRESETS.items())
    names = list(PRESETS)
    rows = [f"{names[i]} under {_fmt_chars(PRESETS[n].min_chars)}" for i, n in
            enumerate(names[1:])]
    caps = [f"{names[i]} under {_fmt_chars(PRESETS[n].min_corpus)}" for i, n in
            enumerate(names[1:]) if PRESETS[n].min_corpus]
    return (f"{sizes}; auto picks the largest the budget lets read enough characters at this "
            f"machine's measured speed ({', '.join(rows)} characters read) and the corpus "
            f"allows ({', '.join(caps)} characters of text).")


def epochs(size, minutes, chars, speed=None):
    """Passes over `chars` characters that `minutes` of training at size `size` makes where
    the reference preset trains at `speed` characters per second."""
    return minutes * 60.0 * rate(size, speed) / max(chars, 1)


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


def choose(size, chars, time_limit=None, work=None, given=None, speed=None, optimizer="adam",
           measured=None):
    """The model for a run on `chars` training characters.

    size: a name of `config.SIZES` ("auto": the rule's table). time_limit: the budget in
    seconds, if any. work: the characters a step or epoch budget trains on, if any (the
    passes over the text are then known exactly, and the size follows from them, whatever the
    speed). No budget at all is an endless run. speed: the characters per second the
    reference preset (REFERENCE) trains at with this run's engine here, as measured (default:
    the calibration machine's); measured: what measured it, for the phrase (e.g. "numpy
    engine"). given: the TrainConfig fields among num_layers, hidden_size, dropout and
    weight_decay that the user set, by name; they are kept. optimizer: the run's; the rule's
    weight decay is for `DECAY_OPTIMIZER` only.
    """
    given = given or {}
    minutes = math.inf if time_limit is None else time_limit / 60.0
    name = auto_size(minutes, chars, speed, work) if size == "auto" else size
    preset = PRESETS[name]
    layers = given.get("num_layers", preset.num_layers)
    hidden = given.get("hidden_size", preset.hidden_size)
    passes = min(epochs(name, time_limit / 60.0, chars, speed) if time_limit is not None
                 else math.inf, work / max(chars, 1) if work is not None else math.inf)
    dropout = given.get("dropout", dropout_for(passes, layers, hidden))
    heavy = "dropout" not in given and dropout >= MAX_DROPOUT and optimizer == DECAY_OPTIMIZER
    weight_decay = given.get("weight_decay", WEIGHT_DECAY if heavy else 0.0)
    shape = f"{layers}×{hidden}, dropout {dropout:g}"
    shape += f", weight decay {weight_decay:g}" if weight_decay else ""
    if size != "auto":
        why = f"{shape}: --size {size}"
    else:
        why = f"{shape}: sized for {_budget(name, time_limit, work, speed, passes, chars)}"
        if time_limit is not None and "passes" not in why:
            ref = PRESETS[REFERENCE]
            fast = _fmt_chars(round(rate(REFERENCE, speed)))
            why += (f" on {_fmt_chars(chars)} characters at {fast} chars/s "
                    f"({ref.num_layers}×{ref.hidden_size}, "
                    f"{measured or ('as given' if speed else 'the calibration machine')})")
        elif time_limit is None and work is None:
            why += f" on {_fmt_chars(chars)} characters"
    if given:
        why += " (" + ", ".join(f"--{k.replace('_', '-')} as given" for k in sorted(given)) + ")"
    return Choice(name, layers, hidden, dropout, weight_decay, minutes, chars, why)


def _budget(size, time_limit, work, speed, passes, chars):
    """The budget in the user's terms: the time limit, or the passes over the text of a step
    or epoch budget if it ends the run first at `size`'s rate; never a time it cannot know."""
    if time_limit is None and work is None:
        return "an endless run"
    if work is None or (time_limit is not None and time_limit * rate(size, speed) <= work):
        return _fmt_minutes(time_limit / 60.0)
    return f"{passes:.2g} passes over {_fmt_chars(chars)} characters"


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
