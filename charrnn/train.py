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
import time
import zlib
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from charrnn import cells, checkpoint, data, runs, sampling
from charrnn.clock import Clock, ExcludingStops, Interrupt
from charrnn.config import TrainConfig, budget_fraction, stop_reason
from charrnn.engines import make_engine, prepare
from charrnn.engines.distributed import PeerLost
from charrnn.errors import CharRNNError, RunError, refuse_oversized
from charrnn.optim import LRSchedule
from charrnn.planning import (apply_size_rule, file_identity, load_corpus, parent_record,
                              plan_new, plan_resume, session_model, session_vocabulary)
from charrnn.lock import RunLock
from charrnn.runlog import LogWriter
from charrnn.runs import BEST_NAME, LATEST_NAME
from charrnn.units import bits

MAX_DIVERGENCES = 3
DIVERGED = (f"training diverged {MAX_DIVERGENCES} times in a row (non-finite loss or gradients) "
            "even after lowering the learning rate to {lr:.3g}; {where}; try a smaller "
            "--learning-rate or --grad-clip.")
SAVED = "the last good state is saved in {path}"
UNCHANGED = ("no step succeeded, so {path} is as it was, with the run's own options (this "
             "session's changes are not kept)")
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
    signal: int | None = None  # for "interrupted": the signal that stopped it (SIGINT, ...)
    val_loss: float | None = None  # measured at the last step; None: no validation, a signal


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


class Rollback:
    """The last good state of a session (the engine's snapshot and the data position), to go
    back to when training diverges; `count` the rollbacks since it was taken."""

    def __init__(self, engine):
        self.engine, self.snapshot, self.count = engine, None, 0

    def take(self, position):
        self.snapshot, self.count = (self.engine.snapshot(), position), 0

    def restore(self):
        """Restore the engine; returns the data position (step, epoch, batch) of the state."""
        engine_snapshot, position = self.snapshot
        self.engine.restore(engine_snapshot)
        self.count += 1
        return position


class Evaluations:
    """The Trainer's evaluations on the validation split: the scheduled ones (every
    --eval-every steps), which decide --patience and best.npz, and the end of a session's,
    which only measures. Uses the Trainer's val_stream, engine, bookkeeping and log."""

    @property
    def val_loss(self):
        """The validation loss measured at this step in this session, or None."""
        return self.measured[1] if self.measured and self.measured[0] == self.step else None

    def eval_and_save_best(self):
        """A scheduled evaluation (every --eval-every steps) on the validation split, if any:
        log it, count it for --patience and save best.npz if it improved."""
        val = self.measure()
        if val is None:
            return
        improved = math.isfinite(val) and (self.best_val_loss is None or val < self.best_val_loss)
        self.best_val_loss = val if improved else self.best_val_loss
        self.bad_evals = 0 if improved else self.bad_evals + 1
        self.last_eval_step = self.step
        self.log("eval", val_loss=val, val_bpc=bits(val), best_val_loss=self.best_val_loss)
        self.reporter.evaluated(self.step, val, self.best_val_loss)
        if improved:
            self.save(BEST_NAME)

    def final_eval(self):
        """The end of a session's evaluation, unless the last step was just evaluated: logged
        (`"final": true`) and shown, but it decides nothing (patience, the schedule and the
        scheduled evaluations' best are left as they are, so a resumed session continues as
        the uninterrupted run would), and it writes best.npz only when no scheduled evaluation
        has, so that every run has a best.npz to sample from; the next scheduled improvement
        replaces it. Returns whether it measured."""
        if self.val_stream is None or self.val_loss is not None:
            return False
        val = self.measure()
        self.log("eval", val_loss=val, val_bpc=bits(val), best_val_loss=self.best_val_loss,
                 final=True)
        self.reporter.evaluated(self.step, val, self.best_val_loss)
        if self.best_val_loss is None and math.isfinite(val):
            self.save(BEST_NAME)
        return True

    def measure(self):
        """The validation loss of the weights now (None without a validation split), recorded
        in `measured` for the checkpoints of this step. It leaves the training state (carried
        state, random generator, data position) as it was."""
        if self.val_stream is None:
            return None
        self.reporter.evaluating(self.step)
        val = self.engine.evaluate(self.val_stream)
        self.measured = (self.step, val)
        return val


class Trainer(Evaluations):
    """One training session of a run: an engine (the model and its optimizer), the data
    position and the bookkeeping; `run` trains until a budget, an early stop, a signal or
    unrecoverable divergence ends the session, and `finish` saves and logs how it ended."""

    def __init__(self, run_dir, cfg, engine, vocab, train_ids, val_ids, corpus, reporter, log):
        self.run_dir, self.cfg, self.engine, self.vocab = Path(run_dir), cfg, engine, vocab
        self.corpus, self.reporter, self.run_log = corpus, reporter, log  # log: a runlog.LogWriter
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
        self.measured = None  # (step, validation loss) of this session's last evaluation
        self.writer = engine.writer  # False on ranks > 0 of a torchrun launch: they write nothing
        # a resume's saved options, which checkpoints keep until a step with this session's
        # options (`cfg`) succeeds (`trained`): a change that diverges at once is not kept
        self.run_cfg, self.trained = None, False

    # -- state in and out of checkpoints -------------------------------------------------------

    def training_state(self):
        """Where this run stands, for a checkpoint."""
        return checkpoint.TrainingState(
            **{name: getattr(self, name) for name in PROGRESS},
            epoch_float=self.epoch_float, time=self.clock.elapsed, rng=self.engine.rng_state,
            train_config=self.cfg if self.trained or self.run_cfg is None else self.run_cfg,
            lr_schedule=self.schedule.to_json(),
            optimizer=self.engine.optimizer_info(), corpus=self.corpus,
            corpus_fingerprint=self.fingerprint, sample_context=self.sample_context,
            saved_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            run_id=self.run_id, encoding=self.encoding, default_time_limit=self.default_time_limit,
            val_loss=self.val_loss if self.val_loss is not None and math.isfinite(self.val_loss)
            else None,
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
            p = budget_fraction(self.cfg, self.step, self.epoch_float, self.clock.elapsed)
        return self.schedule(self.step, p) * self.lr_scale

    def stop_reason(self):
        return stop_reason(self.cfg, self.step, self.epoch_float, self.clock.elapsed, self.bad_evals)

    # -- the work ------------------------------------------------------------------------------

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
            self.trained = True
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
        self.step, self.epoch, self.batch = self.rollback.restore()
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
        """Evaluate the last step (`final_eval`; not after a signal, which asks to stop now),
        save latest.npz (unless it is current) and log how the session ended. A resume that
        diverged before any step succeeded leaves latest.npz as it was (the run's options, not
        the session's)."""
        self.clock.stop()
        untouched = not self.trained and self.latest_step == self.step
        saved = self.latest_step == self.step and (reason != "diverged" or untouched)
        if reason == "interrupted":
            self.log("interrupt")
        elif not untouched and self.final_eval():
            saved = False  # again, with the validation loss of its step
        if not saved:
            self.save(LATEST_NAME)  # after a divergence: the last good state, rolled back to
        val = self.val_loss
        self.log("end", reason=reason, best_val_loss=self.best_val_loss,
                 **({} if val is None else {"val_loss": val}))
        message = ""
        if reason == "diverged":
            where = (UNCHANGED if untouched else SAVED).format(path=self.run_dir / LATEST_NAME)
            message = DIVERGED.format(lr=self.lr(), where=where)
        return TrainResult(self.run_dir, reason, self.step, self.epoch_float,
                           self.best_val_loss, self.clock.elapsed, message, signum, val)


# ----------------------------------------------------------------------------------------------
# Entry point.


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
        plan = plan_resume(resume, corpus, overrides, out_dir, name, encoding, reporter)
    else:
        plan = plan_new(corpus, overrides, out_dir, name, encoding, init_from,
                         default_time_limit, placement.group)
    cfg, ckpt, run_dir = plan.cfg, plan.ckpt, plan.run_dir
    if cfg.patience and not cfg.val_fraction:
        raise CharRNNError("--patience counts evaluations on the validation split, which "
                           "--val-fraction 0 leaves empty; drop one of the two.")

    text, corpus_record, description = load_corpus(plan.corpus, plan.encoding)
    vocab, ids, limited = session_vocabulary(plan, text, reporter)
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
        cfg, sized = apply_size_rule(cfg, overrides, int(train_ids.size), placement.group,
                                     placement.engine, vocab.size, placement.device)
    if cfg.base_lr * cfg.weight_decay >= 1:
        raise CharRNNError(f"--weight-decay {cfg.weight_decay:g} at learning rate {cfg.base_lr:g} "
                           "would take all of each weight away in a step; give a weight decay "
                           f"below {1 / cfg.base_lr:g} (1 / the learning rate).")
    check_memory(cfg, vocab.size)
    placement.settle(cfg, vocab.size)
    if placement.choice is not None and placement.choice.note:
        reporter.message(placement.choice.note)
    if placement.group is not None:
        placement.group.check_batch(cfg.batch_size)
    if val_ids.size > cfg.val_max_chars:
        reporter.message(f"note: each evaluation scores the first {cfg.val_max_chars:,} of the "
                         f"{val_ids.size:,} validation characters.")
    model = session_model(plan, cfg, vocab)

    created = None  # the runs directory, if this session made it
    if not plan.in_place and writer:
        created = None if os.path.isdir(out_dir) else Path(out_dir).absolute()
        run_dir = runs.create_run_dir(out_dir, name, plan.corpus)
        if plan.branch is not None:
            reporter.message(f"note: {plan.branch['checkpoint']} goes on as a new run in {run_dir}.")
    with contextlib.ExitStack() as stack:
        log = _NoLog()
        if writer:
            stack.enter_context(RunLock(run_dir))
            log = stack.enter_context(LogWriter(run_dir))
        interrupt = stack.enter_context(Interrupt())
        if writer and plan.in_place and file_identity(plan.ckpt_path) != plan.loaded_file:
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
            trainer.run_cfg = ckpt.training.train_config
            if plan.in_place and plan.ckpt_path.name == LATEST_NAME:
                trainer.latest_step = trainer.step  # the file resumed from is current
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
            **({} if plan.parent is None else {"init_from": parent_record(plan)}),
        )
        reporter.start({
            "run_dir": str(run_dir), "name": run_dir.name, "description": description,
            "step": trainer.step, "max_steps": cfg.max_steps, "time_limit": cfg.time_limit,
            "elapsed": trainer.clock.before, "steps_per_epoch": trainer.stream.steps_per_epoch,
            "epochs": cfg.epochs, "num_params": model.num_params, "resumed": ckpt is not None,
            "config": cfg, "sizing": sized and sized.why,
            "engine": placement.choice and placement.choice.why,
        })
        if created:  # a typo in --out-dir or CHARRNN_HOME would otherwise go unseen
            reporter.message("note: the runs directory did not exist; created it:\n"
                             f"        {created}")
        try:
            with ExcludingStops(trainer.clock):
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
