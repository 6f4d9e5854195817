"""The training loop: from a corpus to a checkpointed, resumable, logged run.

A run lives in `<out_dir>/<name>/`: `log.jsonl` (append-only, one JSON object a line),
`latest.npz` (the newest state) and `best.npz` (the lowest validation loss). `train()` takes the
run's lock, trains until a budget is used up (steps, epochs, time), an early stop, Ctrl-C or
unrecoverable divergence, and returns a `TrainResult`. It never prints: what the user should see
goes through a reporter (see `Reporter`), and problems raise `CharRNNError`.
"""

import contextlib
import math
import os
import signal
import time
import zlib
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from charrnn import cells, checkpoint, data, runs, sampling, sizing
from charrnn.errors import CharRNNError, RunError, refuse_oversized
from charrnn.config import TrainConfig
from charrnn.engine import make_engine, prepare
from charrnn.engines.auto import reference_speed
from charrnn.engines.distributed import PeerLost
from charrnn.model import CharRNN, grow_vocabulary
from charrnn.optim import LRSchedule
from charrnn.runs import BEST_NAME, LATEST_NAME, RunLock

# the options that set the model's shape: a run started --init-from takes them from its parent
SHAPE_OPTIONS = ("size", "cell", "hidden_size", "num_layers", "dtype")
VOCAB_OPTIONS = ("min_count", "max_vocab")  # how a new run makes its vocabulary
# options a resumed run cannot change: the model's shape, the data layout, optimizer and seed
FIXED_OPTIONS = (*SHAPE_OPTIONS, *VOCAB_OPTIONS, "batch_size", "seq_length", "optimizer", "seed")
HUGE_VOCAB = 2000  # a vocabulary larger than this gets a hint: --min-count
MAX_DIVERGENCES = 3
DIVERGED = (f"training diverged {MAX_DIVERGENCES} times in a row (non-finite loss or gradients) "
            "even after lowering the learning rate to {lr:.3g}; the last good state is saved in "
            "{path}; try a smaller --learning-rate or --grad-clip.")
BUDGETS = ("max_steps", "epochs", "time_limit")  # the limits on how much a run trains
# what each stop reason of `stop_reason` is set with
STOP_OPTIONS = {"max_steps": "max_steps", "epochs": "epochs", "time_limit": "time_limit",
                "early_stopping": "patience"}
# the Trainer's bookkeeping that a TrainingState holds under the same names
PROGRESS = ("step", "epoch", "batch", "lr_scale", "best_val_loss", "bad_evals", "last_eval_step")


@dataclass
class TrainResult:
    """How a training session ended."""

    run_dir: Path
    reason: str  # "max_steps", "epochs", "time_limit", "early_stopping", "interrupted", "diverged"
    step: int
    epoch: float
    best_val_loss: float | None
    elapsed: float  # seconds of training of the whole run
    message: str = ""  # for "diverged": what happened and what to try
    signal: int | None = None  # for "interrupted": the signal that stopped it (SIGINT, SIGTERM)


class Reporter:
    """What the trainer tells the user; this base class shows nothing (`--quiet`)."""

    def start(self, info):
        """Before the first step. info: run_dir, step, max_steps, time_limit, steps_per_epoch..."""

    def update(self, step, loss, chars_per_sec, lr, elapsed):
        """After each step."""

    def evaluating(self, step):
        """Before each evaluation (it may take a while)."""

    def evaluated(self, step, val_loss, best):
        """After each evaluation."""

    def message(self, text):
        """A line for the user: a notice, a warning or a sample."""

    def close(self):
        """After the last step."""


# ----------------------------------------------------------------------------------------------
# Budget and progress.


def parse_duration(text):
    """'90s', '10m', '1h', '1h30m', '2.5h' or plain seconds -> seconds (float). ValueError if bad."""
    s = str(text).strip().lower()
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    unreadable = f"cannot read {text!r} as a duration; use e.g. 90s, 10m or 1h30m"

    def seconds(number, unit):  # '.', '1.2.3' or a Unicode digit such as '²' is no number
        try:
            return float(number) * unit
        except ValueError:
            raise ValueError(unreadable) from None

    total, number = 0.0, ""
    for ch in s:
        if ch in "0123456789.":
            number += ch
        elif ch in units and number:
            total += seconds(number, units[ch])
            number = ""
        else:
            raise ValueError(unreadable)
    if number:
        total += seconds(number, 1.0)
    if not s or not 0 < total < math.inf:
        raise ValueError(f"cannot read {text!r} as a positive duration; use e.g. 90s, 10m or 1h")
    return total


def progress(cfg, step, epoch, elapsed):
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


class Meter:
    """The losses and step times since the last `train` record of the log."""

    def __init__(self, chars_per_step):
        self.chars_per_step = chars_per_step
        self.loss, self.steps, self.time = 0.0, 0, 0.0

    def add(self, loss, seconds):
        self.loss, self.steps, self.time = self.loss + loss, self.steps + 1, self.time + seconds

    def record(self):
        """The mean loss and the speed since the last call, then start again."""
        out = {"loss": self.loss / self.steps,
               "chars_per_sec": round(self.chars_per_step * self.steps / self.time, 1)}
        self.loss, self.steps, self.time = 0.0, 0, 0.0
        return out


def estimate_memory(cfg, vocab_size):
    """Rough peak bytes of training: parameters x 5 (weights, grads, two Adam moments, scratch)
    plus the activations BPTT keeps for one batch (about 24 H values per step per layer for an
    LSTM, fewer for GRU/RNN) and the softmax (2 V values per step)."""
    G = cells.get(cfg.cell).G
    H, L, N, T = cfg.hidden_size, cfg.num_layers, cfg.batch_size, cfg.seq_length
    itemsize = np.dtype(cfg.dtype).itemsize
    n_params = L * (H + max(H, vocab_size)) * G * H + H * vocab_size
    activations = L * T * N * H * (6 * G) + 2 * T * N * vocab_size
    return (5 * n_params + activations) * itemsize


def check_memory(cfg, vocab_size):
    """Refuse up front a model that cannot fit in this machine's memory."""
    refuse_oversized(estimate_memory(cfg, vocab_size), "training this model",
                     "reduce --hidden-size, --num-layers, --batch-size or --seq-length.")


def _corpus_fingerprint(ids):
    return {"chars": int(ids.size), "crc32": zlib.crc32(np.ascontiguousarray(ids))}  # no copy


# ----------------------------------------------------------------------------------------------
# The trainer.


class _Interrupt:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so a step (or a checkpoint
    write) is never cut in half; a second Ctrl-C during the final save is absorbed too."""

    def __init__(self):
        self.requested = False
        self.signum = None  # the first signal received
        self._old = {}

    def __enter__(self):
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: no handlers, Ctrl-C is not ours to catch
            pass
        return self

    def _handle(self, signum, frame):
        if not self.requested:
            self.requested, self.signum = True, signum

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


class Clock:
    """Seconds of training of a run: those of earlier sessions (`before`) plus this session's,
    which stop counting at `stop()`, so that a resume continues from the saved figure.

    Time the process spends stopped is not training time. `time.perf_counter` (the monotonic
    clock) already leaves out a machine asleep, but not a process stopped by SIGSTOP or
    Ctrl-Z; so the trainer marks each step boundary (`mark`), and on SIGCONT
    (`excluding_stops`) the clock drops the time since the last mark: the stop, and the part
    of the step around it.
    """

    def __init__(self):
        self.before = 0.0
        self._start = time.perf_counter()
        self._mark = self._start
        self._stopped_at = None

    @property
    def elapsed(self):
        if self._stopped_at is not None:
            return self._stopped_at
        return self.before + (time.perf_counter() - self._start)

    def mark(self):
        """A step boundary: what `drop_since_mark` drops starts here."""
        self._mark = time.perf_counter()

    def drop_since_mark(self):
        """Leave out of the training time everything since the last mark."""
        now = time.perf_counter()
        self._start += now - self._mark
        self._mark = now

    def stop(self):
        self._stopped_at = self.elapsed


class excluding_stops:
    """`with excluding_stops(clock):` makes SIGCONT (a stopped process continued) drop the
    time since the clock's last mark; a no-op where there is no SIGCONT or outside the main
    thread."""

    def __init__(self, clock):
        self.clock = clock
        self._old = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGCONT, lambda signum, frame:
                                      self.clock.drop_since_mark())
        except (AttributeError, ValueError):  # no SIGCONT (Windows), or not the main thread
            self._old = None
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGCONT, self._old)


class Rollback:
    """The last good state of a session (the engine's snapshot and the data position), to go
    back to when training diverges; `count` the rollbacks since it was taken."""

    def __init__(self, engine):
        self.engine, self.snapshot, self.count = engine, None, 0

    def take(self, position):
        self.snapshot, self.count = (self.engine.snapshot(), position), 0

    def back(self):
        """Restore the engine; returns the data position (step, epoch, batch) of the state."""
        engine_snapshot, position = self.snapshot
        self.engine.restore(engine_snapshot)
        self.count += 1
        return position


class Trainer:
    """One training session of a run: an engine (the model and its optimizer), the data
    position and the bookkeeping; `run` trains until a budget, an early stop, a signal or
    unrecoverable divergence ends the session, and `finish` saves and logs how it ended."""

    def __init__(self, run_dir, cfg, engine, vocab, train_ids, val_ids, corpus, reporter, log):
        self.run_dir, self.cfg, self.engine, self.vocab = Path(run_dir), cfg, engine, vocab
        self.corpus, self.reporter, self.run_log = corpus, reporter, log  # log: a runs.LogWriter
        self.stream = data.BatchStream(train_ids, cfg.batch_size, cfg.seq_length)
        self.val_stream = data.validation_stream(val_ids[: cfg.val_max_chars], cfg.batch_size,
                                                 cfg.seq_length)
        self.schedule = LRSchedule(cfg.base_lr, cfg.warmup_steps, cfg.min_lr_ratio)
        self.fingerprint = _corpus_fingerprint(train_ids)
        self.sample_context = sampling.sample_context(vocab, train_ids)
        # where the run stands (PROGRESS, saved in every checkpoint) and this session's clock
        self.step = self.epoch = self.batch = 0  # batch: the next one within the epoch
        self.lr_scale = 1.0  # halved at each divergence
        self.best_val_loss, self.bad_evals = None, 0  # bad_evals: since the last improvement
        self.last_eval_step = None  # the step of the last evaluation, for the record
        self.clock = Clock()
        self.run_id = None  # `runs.new_run_id()`, set by `train`; saved in every checkpoint
        self.default_time_limit = False  # the time limit is the default, not the user's
        self.encoding = "utf-8"  # of the corpus file, for a resume to read it with
        self.rollback = Rollback(engine)
        self.latest_step = None  # the step latest.npz was last written at, in this session
        self.writer = engine.writer  # False on ranks > 0 of a torchrun launch: they write nothing

    # -- state in and out of checkpoints -------------------------------------------------------

    def training_state(self):
        """Where this run stands, for a checkpoint."""
        return checkpoint.TrainingState(
            **{name: getattr(self, name) for name in PROGRESS},
            epoch_float=self.epoch_float, time=self.clock.elapsed, rng=self.engine.rng_state,
            train_config=self.cfg, lr_schedule=self.schedule.to_json(),
            optimizer=self.engine.optimizer_info(), corpus=self.corpus,
            corpus_fingerprint=self.fingerprint, sample_context=self.sample_context,
            saved_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            run_id=self.run_id, encoding=self.encoding, default_time_limit=self.default_time_limit,
        )

    def restore(self, ckpt):
        """Continue exactly where `ckpt` (a checkpoint of this run, its state checked by
        `TrainingState.check_resumable`) stopped."""
        t = ckpt.training
        for name in PROGRESS:
            setattr(self, name, getattr(t, name))
        self.clock.before = t.time
        self.engine.rng_state = t.rng
        self.engine.load(ckpt.optim, ckpt.state)
        if self.batch >= self.stream.steps_per_epoch:  # the text changed length
            self.epoch, self.batch = self.epoch + 1, 0

    def save(self, name):
        """Write the run's checkpoint `name` (LATEST_NAME or BEST_NAME) and log it."""
        path = self.run_dir / name
        model, optim, state = self.engine.export()  # on every rank: it gathers the state
        if name == LATEST_NAME:
            self.latest_step = self.step
        if not self.writer:
            return
        checkpoint.save(path, checkpoint.Checkpoint(model, self.vocab, self.training_state(),
                                                    optim, state))
        self.log("checkpoint", path=str(path), kind=path.stem)

    # -- bookkeeping ---------------------------------------------------------------------------

    @property
    def epoch_float(self):
        return self.epoch + self.batch / self.stream.steps_per_epoch

    def log(self, event, **fields_):
        """Append a record to log.jsonl: `event`, the step, the training time, the epoch and
        `fields_`."""
        self.run_log.write({"event": event, "step": self.step,
                            "time": round(self.clock.elapsed, 3),
                            "epoch": round(self.epoch_float, 4), **fields_})

    def lr(self):
        p = None
        if self.cfg.lr_schedule == "cosine":
            p = progress(self.cfg, self.step, self.epoch_float, self.clock.elapsed)
        return self.schedule(self.step, p) * self.lr_scale

    def stop_reason(self):
        return stop_reason(self.cfg, self.step, self.epoch_float, self.clock.elapsed, self.bad_evals)

    # -- the work ------------------------------------------------------------------------------

    def eval_and_save_best(self):
        """Evaluate on the validation split (if any), log it, and save best.npz if it improved."""
        if self.val_stream is None:
            return
        self.reporter.evaluating(self.step)
        val = self.engine.evaluate(self.val_stream)
        improved = math.isfinite(val) and (self.best_val_loss is None or val < self.best_val_loss)
        self.best_val_loss = val if improved else self.best_val_loss
        self.bad_evals = 0 if improved else self.bad_evals + 1
        self.last_eval_step = self.step
        self.log("eval", val_loss=val, val_bpc=val / math.log(2), best_val_loss=self.best_val_loss)
        self.reporter.evaluated(self.step, val, self.best_val_loss)
        if improved:
            self.save(BEST_NAME)

    def sample(self):
        model = self.engine.export()[0]  # on every rank, as in `save`
        if not self.writer:
            return
        text = sampling.sample_text(model, self.vocab, self.cfg.sample_length,
                                    rng=np.random.default_rng(self.step),
                                    context=self.sample_context)[0]
        self.log("sample", text=text)
        self.reporter.message(f"--- sample at step {self.step} ---\n{text}\n---")

    def run(self, interrupt):
        """Train until a stop; under torchrun, rank 0's decision to stop (a budget, patience,
        a signal) and its learning rate (a cosine schedule over a time limit reads its clock)
        hold on every rank."""
        cfg = self.cfg
        self.rollback.take((self.step, self.epoch, self.batch))
        chars_per_step = cfg.batch_size * cfg.seq_length
        meter = Meter(chars_per_step)
        while True:
            reason = "interrupted" if interrupt.requested else self.stop_reason()
            reason, lr = self.engine.shared([reason, self.lr()])
            if reason:
                break
            if self.batch == 0:
                self.engine.reset_state()  # a new epoch starts fresh
            self.clock.mark()
            t0 = time.perf_counter()
            loss, norm, bad = self.engine.step(*self.stream.batch(self.batch), lr)
            if bad:
                if not self.diverged(bad):
                    reason = "diverged"
                    break
                continue
            self.step += 1
            self.batch += 1
            if self.batch == self.stream.steps_per_epoch:
                self.epoch, self.batch = self.epoch + 1, 0
            dt = time.perf_counter() - t0
            meter.add(loss, dt)
            self.reporter.update(self.step, loss, chars_per_step / dt, lr, self.clock.elapsed)
            if self.step % cfg.log_every == 0:
                self.log("train", **meter.record(), lr=lr, grad_norm=norm)
            if cfg.eval_every and self.step % cfg.eval_every == 0:
                self.eval_and_save_best()
            if cfg.sample_every and self.step % cfg.sample_every == 0:
                self.sample()
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.save(LATEST_NAME)
                self.rollback.take((self.step, self.epoch, self.batch))
        return self.finish(reason, interrupt.signum)

    def diverged(self, what):
        """Roll back to the last good state and halve the learning rate; `what` went non-finite.

        Logs `diverged` with the step that failed. Returns False (stop) at the
        MAX_DIVERGENCES-th divergence in a row, that is without a new good snapshot (taken at
        each checkpoint) in between.
        """
        failed = self.step + 1
        self.step, self.epoch, self.batch = self.rollback.back()
        stop = self.rollback.count >= MAX_DIVERGENCES
        if not stop:
            self.lr_scale *= 0.5
        self.log("diverged", step=failed, reason=f"non-finite {what}", rolled_back_to=self.step,
                 lr=self.lr(), count=self.rollback.count)
        if not stop:
            self.reporter.message(
                f"training diverged at step {failed} (non-finite {what}); rolled back to step "
                f"{self.step} and halved the learning rate to {self.lr():.3g}."
            )
        return not stop

    def finish(self, reason, signum=None):
        """Save latest.npz (unless it is current) and log how the session ended.

        No evaluation is added at the end: evaluations happen every `eval_every` steps only,
        so that a run split into sessions evaluates (and keeps best.npz, counts --patience)
        exactly where an uninterrupted run does.
        """
        self.clock.stop()
        saved = self.latest_step == self.step and reason != "diverged"  # latest.npz is current
        if reason == "interrupted":
            self.log("interrupt")
        if not saved:
            self.save(LATEST_NAME)  # after a divergence: the last good state, rolled back to
        self.log("end", reason=reason, best_val_loss=self.best_val_loss)
        message = DIVERGED.format(lr=self.lr(), path=self.run_dir / LATEST_NAME) \
            if reason == "diverged" else ""
        return TrainResult(self.run_dir, reason, self.step, self.epoch_float,
                           self.best_val_loss, self.clock.elapsed, message, signum)


# ----------------------------------------------------------------------------------------------
# Entry point.


def _load_corpus(corpus, encoding):
    """(text, corpus record for the log, description) for a path or None (the demo corpus)."""
    if corpus is None:
        text, description = data.demo_corpus()
        return text, "demo", description
    text = data.read_text(corpus, encoding)
    return text, str(Path(corpus).resolve()), f"corpus: {corpus} ({len(text):,} characters)"


def _file_identity(path):
    """What changes when a checkpoint is replaced (os.replace gives it a new inode)."""
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def _resumed_config(ckpt, overrides, notes):
    """The run's saved config with the user's explicit overrides; changing the model's shape,
    the optimizer or the seed is an error, any other change a notice (appended to `notes`)."""
    saved = ckpt.training.train_config
    changes = {k: v for k, v in overrides.items() if getattr(saved, k) != v}
    fixed = [k for k in changes if k in FIXED_OPTIONS]
    if fixed:
        given = ", ".join(f"--{k.replace('_', '-')} {changes[k]}" for k in fixed)
        kept = ", ".join(f"--{k.replace('_', '-')} {getattr(saved, k)}" for k in fixed)
        raise CharRNNError(
            f"cannot resume with {given}: the run was trained with {kept}; drop those options "
            "or start a new run."
        )
    new = replace(saved, **changes)
    for k in changes:
        old, now = getattr(saved, k), getattr(new, k)
        if k == "learning_rate":  # None means the optimizer's default: show the rate itself
            old, now = saved.base_lr, new.base_lr
        notes.append(f"note: {k.replace('_', '-')} changes from {old} to {now}.")
    return new


def _options_from_parent(parent, overrides):
    """The options of a new run that starts from checkpoint `parent`'s weights: its model's
    shape and dropout, and its weight decay if the new run uses the same optimizer (λ is a
    fraction of that optimizer's rate), then the user's `overrides`, which must not set the
    shape."""
    given = [f"--{k.replace('_', '-')}" for k in (*SHAPE_OPTIONS, *VOCAB_OPTIONS)
             if k in overrides]
    if given:
        raise CharRNNError(f"--init-from takes the model's shape and vocabulary from the run it "
                           f"starts from; drop {', '.join(given)}.")
    c, trained = parent.config, parent.training and parent.training.train_config
    same = trained and trained.optimizer == overrides.get("optimizer", TrainConfig.optimizer)
    return {"cell": c.cell, "hidden_size": c.hidden_size, "num_layers": c.num_layers,
            "dtype": parent.model.dtype.name, "dropout": c.dropout,
            "weight_decay": trained.weight_decay if same else 0.0, **overrides}


def _sized(cfg, overrides, chars, group=None, engine="numpy", vocab_size=65, device="cpu"):
    """(cfg, choice): a new run's config with its size, dropout and weight decay chosen by
    `sizing` from the budget and the `chars` training characters, where the user's `overrides`
    left them open; choice is the `sizing.Choice` made (None when the user set the shape and
    the dropout). A time budget is read at `engine`'s measured speed on `device` for
    `vocab_size` characters (`auto.reference_speed`); under torchrun (`group`), every rank
    sizes by rank 0's measurement."""
    shape = ("num_layers", "hidden_size", "dropout")
    given = {k: overrides[k] for k in (*shape, "weight_decay") if k in overrides}
    if all(k in given for k in shape) and cfg.size == "auto":
        return cfg, None
    works = [w for w in (cfg.max_steps and cfg.max_steps * cfg.batch_size * cfg.seq_length,
                         cfg.epochs and cfg.epochs * chars) if w]
    work, speed, measured = min(works, default=None), None, None
    if cfg.time_limit is not None:
        if group is None or group.writer:
            speed, measured = reference_speed(cfg, vocab_size, engine, device)
        if group is not None:
            speed, measured = group.shared([speed, measured])
    choice = sizing.choose(cfg.size, chars, cfg.time_limit, work, given, speed, cfg.optimizer,
                           measured)
    return replace(cfg, num_layers=choice.num_layers, hidden_size=choice.hidden_size,
                   dropout=choice.dropout, weight_decay=choice.weight_decay), choice


def _new_vocab(text, cfg, reporter):
    """A new run's vocabulary and the text's ids: every character of the text, or, with
    --min-count / --max-vocab, the frequent ones and U+FFFD for the others (see
    `data.limit_vocab`), which the reporter and the returned log record tell."""
    vocab, ids = data.encode_corpus(text)
    if cfg.min_count is None and cfg.max_vocab is None:
        if vocab.size > HUGE_VOCAB:
            reporter.message(f"hint: the text has {vocab.size:,} distinct characters; "
                             "--min-count N maps those seen fewer than N times to one "
                             "replacement character, for a smaller, faster model.")
        return vocab, ids, {}
    vocab, ids, left_out, occurrences = data.limit_vocab(vocab, ids, cfg.min_count,
                                                         cfg.max_vocab)
    reporter.message(f"note: {len(left_out):,} rare character(s) map to U+FFFD, "
                     f"{occurrences:,} of the text's {ids.size:,} characters "
                     f"({occurrences / ids.size:.2%}); the vocabulary has {vocab.size:,}.")
    return vocab, ids, {"left_out_chars": len(left_out), "left_out_occurrences": occurrences}


def _parent_vocab(vocab, path, text, reporter):
    """The vocabulary of a run started from the checkpoint at `path`, whose vocabulary is
    `vocab`: that one with the text's new characters appended (`Vocab.extended`), and the
    text's ids."""
    extended = vocab.extended(text)
    added = extended.chars[vocab.size:]
    reporter.message(f"note: starting from the weights of {path}; "
                     + (f"{len(added)} new character(s) added to its vocabulary: "
                        f"{data.format_chars(added, 20)}." if added else
                        "the text has no character it does not know."))
    return extended, extended.encode(text)


def _flag(option):
    return "--" + option.replace("_", "-")


def _budget_value(option, value):
    """A budget option's value as the user writes it: 300, 2.5, 90s, 10m."""
    if option == "time_limit":
        return f"{value / 60:g}m" if value >= 60 else f"{value:g}s"
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _resumed_budget(cfg, state, overrides, notes):
    """`cfg` with the budget the user gave on resume in force: it lifts the budget limit that
    stopped the run and a default time limit the user never chose (--patience is lifted only
    by a larger --patience). Raises CharRNNError if the run has already used up the budget
    then in force: a resume that would train nothing is a mistake, not a no-op."""
    epoch = state.epoch_float if state.epoch_float is not None else state.epoch
    if any(k in overrides for k in BUDGETS):
        stopped = stop_reason(cfg, state.step, epoch, state.time, state.bad_evals)
        lifted = [k for k in BUDGETS if k not in overrides and getattr(cfg, k) is not None
                  and (k == stopped or (k == "time_limit" and state.default_time_limit))]
        for k in lifted:
            given = " and ".join(_flag(o) for o in BUDGETS if o in overrides)
            notes.append(f"note: {given} replaces the {_flag(k)} "
                         f"{_budget_value(k, getattr(cfg, k))} the run had.")
        cfg = replace(cfg, **{k: None for k in lifted})
    done = stop_reason(cfg, state.step, epoch, state.time, state.bad_evals)
    if done:
        option = STOP_OPTIONS[done]
        value = _budget_value(option, getattr(cfg, option))
        raise CharRNNError(f"the run has already reached its {_flag(option)} {value} (step "
                           f"{state.step:,}); give a larger {_flag(option)} to train it further.")
    return cfg


class _NoLog:
    """The log of a rank > 0 under torchrun: rank 0 writes the run's."""

    def write(self, record):
        pass


def train(corpus=None, overrides=None, out_dir="checkpoints", name=None, resume=None,
          encoding=None, reporter=None, default_time_limit=None, init_from=None,
          engine="auto", device="auto"):
    """Train a new run, or continue one (`resume` = a run directory or checkpoint path).

    corpus: a text file path, or None for the built-in demo corpus (on resume: None means the
    corpus the run was started with). overrides: TrainConfig fields the user set explicitly.
    encoding: the corpus file's (None: utf-8, or on resume the one the run was started with).
    default_time_limit: seconds, used for a new run that sets no budget at all.
    With `resume`, `name` starts a new run from the checkpoint; where a resume trains is
    decided by `runs.resume_run_dir`.
    init_from: a run or checkpoint (as `runs.resolve_checkpoint` reads it) whose weights and
    model shape a new run starts from, its vocabulary extended by the corpus's new characters
    (see `model.grow_vocabulary`); the run is new in everything else (name, log, optimizer
    state, schedule, budget).
    engine, device: the engine that does the arithmetic (`engine.ENGINES`) and its device
    (auto|cpu|cuda|cuda:N|mps); a choice of this session, recorded in the log's start event,
    not saved in the run's options: a resume may use another engine (checkpoints are
    engine-neutral). Checked before anything is created. Under torchrun (WORLD_SIZE > 1) the
    processes train one run data-parallel, and only rank 0 writes it.
    Returns a TrainResult; raises CharRNNError for every user mistake, and for running out of
    memory (latest.npz as it was last saved).
    """
    placement = prepare(engine, device)
    try:
        return _train(corpus, overrides, out_dir, name, resume, encoding, reporter,
                      default_time_limit, init_from, placement)
    finally:
        placement.close()


@dataclass
class _Plan:
    """What a session trains, decided from the options before the corpus is read: a resume
    (`ckpt`), possibly going on as a new run (`branch`), or a new run, possibly from a parent's
    weights (`parent`)."""

    cfg: TrainConfig
    run_dir: Path
    corpus: str | None  # a path, or None for the demo corpus
    encoding: str
    ckpt: checkpoint.Checkpoint | None = None  # the checkpoint resumed from
    ckpt_path: Path | None = None
    loaded_file: tuple | None = None  # `_file_identity` of ckpt_path when it was read
    branch: dict | None = None  # the resumed checkpoint's run, id and step, for a new run
    parent: checkpoint.Checkpoint | None = None  # --init-from's checkpoint
    parent_path: Path | None = None
    default_limit: bool = False  # the time limit is the default, not the user's

    @property
    def in_place(self):
        """Training goes on in the resumed run's own directory."""
        return self.ckpt is not None and self.branch is None


def _plan_resume(resume, corpus, overrides, out_dir, name, encoding, reporter):
    """The plan for --resume: the checkpoint's options with the user's changes (notes go to
    `reporter`), its corpus and encoding unless given, and where training goes on."""
    ckpt_path = runs.resolve_checkpoint(resume, out_dir, resume=True)
    loaded_file = _file_identity(ckpt_path)
    ckpt = checkpoint.load(ckpt_path)
    (ckpt.training or checkpoint.TrainingState()).check_resumable(ckpt_path)  # None: a bare model
    state = ckpt.training
    run_dir = runs.resume_run_dir(ckpt_path, state.run_id, state.step, out_dir, name,
                                  given_a_file=Path(resume).is_file())
    notes = []
    cfg = _resumed_budget(_resumed_config(ckpt, overrides, notes), state, overrides, notes)
    for note in notes:
        reporter.message(note)
    if corpus is None and state.corpus != "demo":
        corpus = state.corpus
    branch = None
    if run_dir is None:  # a new run, from the checkpoint
        branch = {"run_id": state.run_id, "checkpoint": str(ckpt_path), "step": state.step}
        run_dir = runs.new_run_dir(out_dir, name, corpus)
    default_limit = state.default_time_limit and cfg.time_limit is not None \
        and "time_limit" not in overrides
    return _Plan(cfg, run_dir, corpus, encoding or state.encoding or "utf-8", ckpt, ckpt_path,
                 loaded_file, branch, default_limit=default_limit)


def _plan_new(corpus, overrides, out_dir, name, encoding, init_from, default_time_limit, group):
    """The plan for a new run: the options given (after --init-from's shape), the default
    time limit if no budget is set, and a seed (under torchrun, rank 0's)."""
    parent = parent_path = None
    if init_from is not None:
        parent_path = runs.resolve_checkpoint(init_from, out_dir)
        parent = checkpoint.load(parent_path)
        overrides = _options_from_parent(parent, overrides)
    cfg, default_limit = TrainConfig(**overrides), False
    if cfg.max_steps is None and cfg.epochs is None and cfg.time_limit is None:
        cfg = replace(cfg, time_limit=default_time_limit)
        default_limit = default_time_limit is not None
    if cfg.seed is None:
        cfg = replace(cfg, seed=int(np.random.SeedSequence().entropy % 2**32))
        if group is not None:  # every rank starts from rank 0's weights
            cfg = replace(cfg, seed=group.shared([cfg.seed])[0])
    return _Plan(cfg, runs.new_run_dir(out_dir, name, corpus), corpus, encoding or "utf-8",
                 parent=parent, parent_path=parent_path, default_limit=default_limit)


def _vocabulary(plan, text, reporter):
    """(vocab, ids, limited) for the corpus `text`: the resumed run's vocabulary, the parent's
    extended by new characters, or a new one (`limited`: what --min-count/--max-vocab left out)."""
    if plan.ckpt is not None:
        vocab = plan.ckpt.vocab
        try:
            ids = vocab.encode(text, "error" if vocab.replacement is None else "replace")
        except CharRNNError as exc:
            raise CharRNNError(f"cannot resume on this corpus: {exc} Resume on the text the "
                               "run was trained on.") from None
        return vocab, ids, {}
    if plan.parent is not None:
        return (*_parent_vocab(plan.parent.vocab, plan.parent_path, text, reporter), {})
    return _new_vocab(text, plan.cfg, reporter)


def _model(plan, cfg, vocab):
    """The model to train: the parent's grown to `vocab`, a new one, or the resumed one; its
    dropout is the session's."""
    if plan.parent is not None:
        model = grow_vocabulary(plan.parent.model, vocab.size, np.random.default_rng(cfg.seed))
    elif plan.ckpt is None:
        return CharRNN(cfg.model_config(vocab.size), seed=cfg.seed, dtype=np.dtype(cfg.dtype))
    else:
        model = plan.ckpt.model
    if model.config.dropout != cfg.dropout:
        model.config = replace(model.config, dropout=cfg.dropout)
    return model


def _parent_record(plan):
    """The log's record of the run a new run was started --init-from."""
    path, parent = plan.parent_path.resolve(), plan.parent
    return {"run": str(path.parent), "checkpoint": str(path),
            "step": parent.training.step if parent.training else None,
            "vocab_size": parent.vocab.size}


def _train(corpus, overrides, out_dir, name, resume, encoding, reporter, default_time_limit,
           init_from, placement):
    writer = placement.writer
    reporter = (reporter or Reporter()) if writer else Reporter()
    overrides = dict(overrides or {})
    valid = {f.name for f in fields(TrainConfig)}
    unknown = set(overrides) - valid
    if unknown:
        raise ValueError(f"unknown training options: {', '.join(sorted(unknown))}")
    if resume is not None and init_from is not None:
        raise CharRNNError("--resume continues a run and --init-from starts a new one; give "
                           "one of them.")
    if resume is not None:
        plan = _plan_resume(resume, corpus, overrides, out_dir, name, encoding, reporter)
    else:
        plan = _plan_new(corpus, overrides, out_dir, name, encoding, init_from,
                         default_time_limit, placement.group)
    cfg, ckpt, run_dir = plan.cfg, plan.ckpt, plan.run_dir
    if cfg.patience and not cfg.val_fraction:
        raise CharRNNError("--patience counts evaluations on the validation split, which "
                           "--val-fraction 0 leaves empty; drop one of the two.")

    text, corpus_record, description = _load_corpus(plan.corpus, plan.encoding)
    vocab, ids, limited = _vocabulary(plan, text, reporter)
    del text
    train_ids, val_ids = data.split_train_val(ids, cfg.val_fraction)
    batch_size, seq_length, warning = data.fit_batch_shape(train_ids.size, cfg.batch_size, cfg.seq_length)
    if warning:
        if ckpt is not None:
            raise CharRNNError(f"cannot resume: {warning}")
        reporter.message("warning: " + warning)
        cfg = replace(cfg, batch_size=batch_size, seq_length=seq_length)
    sized = None
    if ckpt is None and plan.parent is None:
        cfg, sized = _sized(cfg, overrides, int(train_ids.size), placement.group,
                            placement.engine, vocab.size, placement.device)
    if cfg.base_lr * cfg.weight_decay >= 1:
        raise CharRNNError(f"--weight-decay {cfg.weight_decay:g} at learning rate {cfg.base_lr:g} "
                           "would take all of each weight away in a step; give a weight decay "
                           f"below {1 / cfg.base_lr:g} (1 / the learning rate).")
    check_memory(cfg, vocab.size)
    placement.settle(cfg, vocab.size)
    if placement.choice is not None and placement.choice.note:
        reporter.message(placement.choice.note)
    if val_ids.size > cfg.val_max_chars:
        reporter.message(f"note: each evaluation scores the first {cfg.val_max_chars:,} of the "
                         f"{val_ids.size:,} validation characters.")
    model = _model(plan, cfg, vocab)

    if not plan.in_place and writer:
        run_dir = runs.create_run_dir(out_dir, name, plan.corpus)
        if plan.branch is not None:
            reporter.message(f"note: {plan.branch['checkpoint']} goes on as a new run in {run_dir}.")
    with contextlib.ExitStack() as stack:
        log = _NoLog()
        if writer:
            stack.enter_context(RunLock(run_dir))
            log = stack.enter_context(runs.LogWriter(run_dir))
        interrupt = stack.enter_context(_Interrupt())
        if writer and plan.in_place and _file_identity(plan.ckpt_path) != plan.loaded_file:
            raise RunError(f"{plan.ckpt_path} was replaced while this command started (another process "
                           "was training the run); run the command again to resume from it.")
        if writer:
            runs.clean_temporaries(run_dir)
            log.end_torn_line()
        engine = make_engine(placement.engine, model, cfg, placement.device, placement.group)
        trainer = Trainer(run_dir, cfg, engine, vocab, train_ids, val_ids, corpus_record, reporter, log)
        trainer.encoding, trainer.default_time_limit = plan.encoding, plan.default_limit
        # the run's id: the checkpoint's, else (a file from before ids) the log's, else a new one
        known = [i for i in runs.log_run_ids(run_dir) if i] if plan.in_place and writer else []
        trainer.run_id = (ckpt.training.run_id if plan.in_place else None) or \
            (known[-1] if known else runs.new_run_id())
        if ckpt is not None:
            trainer.restore(ckpt)
            if trainer.fingerprint != ckpt.training.corpus_fingerprint:
                reporter.message("note: the training text differs from the one this run started on.")
        trainer.log(
            "start",
            wall=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            resumed=ckpt is not None,
            run_id=trainer.run_id,
            **({"parent": plan.branch} if plan.branch else {}),
            pid=os.getpid(),
            engine=engine.name, device=engine.device,
            **({"engine_choice": placement.choice.to_json()} if placement.choice else {}),
            **({"processes": placement.group.size} if placement.group else {}),
            config={"model": model.config.to_json(), "train": asdict(cfg), "corpus": corpus_record,
                    "encoding": plan.encoding, "num_params": model.num_params,
                    "lr_schedule": trainer.schedule.to_json(),
                    "vocab_size": vocab.size, "train_chars": int(train_ids.size),
                    "val_chars": int(val_ids.size),
                    "val_scored_chars": int(min(val_ids.size, cfg.val_max_chars))},
            **({"vocab_limit": limited} if limited else {}),
            **({"sizing": sized.to_json()} if sized else {}),
            **({} if plan.parent is None else {"init_from": _parent_record(plan)}),
        )
        reporter.start({
            "run_dir": str(run_dir), "name": run_dir.name, "description": description,
            "step": trainer.step, "max_steps": cfg.max_steps, "time_limit": cfg.time_limit,
            "elapsed": trainer.clock.before, "steps_per_epoch": trainer.stream.steps_per_epoch,
            "epochs": cfg.epochs, "num_params": model.num_params, "resumed": ckpt is not None,
            "config": cfg, "sizing": sized and sized.why,
            "engine": placement.choice and placement.choice.why,
        })
        try:
            with excluding_stops(trainer.clock):
                return trainer.run(interrupt)
        except PeerLost:  # latest.npz as last saved: the lost rank's carried state is gone
            trainer.clock.stop()
            trainer.log("end", reason="rank_lost", best_val_loss=trainer.best_val_loss)
            raise
        except MemoryError:
            raise CharRNNError(
                f"training ran out of memory at step {trainer.step:,} (a memory limit such as "
                f"ulimit -v, or the machine's memory); {run_dir / LATEST_NAME} is as it was last "
                "saved; try a smaller --batch-size, --seq-length or --hidden-size."
            ) from None
        finally:
            engine.close()  # its worker processes, if any
            reporter.close()
