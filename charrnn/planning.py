"""Planning a training session before it trains: what `charrnn train` was asked (a resume, a
new run, a new run from a parent's weights), the options in force (a resume's saved ones with
the user's changes and budget, the size rule's choice for a new run), the corpus, the
vocabulary and the model to start from. Everything here raises `CharRNNError` for a user
mistake before anything is created.
"""

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from charrnn import checkpoint, data, runs, sizing
from charrnn.engines import auto
from charrnn.config import BUDGETS, STOP_OPTIONS, TrainConfig, show_option, stop_reason
from charrnn.errors import CharRNNError
from charrnn.model import CharRNN, grow_vocabulary


# the options that set the model's shape: a run started --init-from takes them from its parent
SHAPE_OPTIONS = ("size", "cell", "hidden_size", "num_layers", "dtype")
VOCAB_OPTIONS = ("min_count", "max_vocab")  # how a new run makes its vocabulary
# options a resumed run cannot change: the model's shape, the data layout, optimizer and seed
FIXED_OPTIONS = (*SHAPE_OPTIONS, *VOCAB_OPTIONS, "batch_size", "seq_length", "optimizer", "seed")
HUGE_VOCAB = 2000  # a vocabulary larger than this gets a hint: --min-count


def load_corpus(corpus, encoding):
    """(text, corpus record for the log, description) for a path or None (the demo corpus)."""
    if corpus is None:
        text, description = data.demo_corpus()
        return text, "demo", description
    text = data.read_text(corpus, encoding)
    return text, str(Path(corpus).resolve()), f"corpus: {corpus} ({len(text):,} characters)"


def file_identity(path):
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
        given = ", ".join(f"{_flag(k)} {_shown(k, changes[k])}" for k in fixed)
        kept = ", ".join(f"{_flag(k)} {_shown(k, getattr(saved, k))}" if getattr(saved, k)
                         is not None else f"no {_flag(k)}" for k in fixed)
        raise CharRNNError(
            f"cannot resume with {given}: the run was trained with {kept}; drop those options "
            "or start a new run."
        )
    new = replace(saved, **changes)
    for k in changes:
        old, now = getattr(saved, k), getattr(new, k)
        if k == "learning_rate":  # None means the optimizer's default: show the rate itself
            old, now = saved.base_lr, new.base_lr
        notes.append(f"note: {k.replace('_', '-')} changes from {_shown(k, old)} to "
                     f"{_shown(k, now)}.")
    return new


def _shown(option, value):
    """An option's value in a message: a budget as the user writes it, None as its meaning."""
    if value is not None and option in BUDGETS:
        return _budget_value(option, value)
    return show_option(option, value)


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


def apply_size_rule(cfg, overrides, chars, group=None, engine="numpy", vocab_size=65,
                    device="cpu"):
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
            speed, measured = auto.reference_speed(cfg, vocab_size, engine, device)
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


@dataclass
class Plan:
    """What a session trains, decided from the options before the corpus is read: a resume
    (`ckpt`), possibly going on as a new run (`branch`), or a new run, possibly from a parent's
    weights (`parent`)."""

    cfg: TrainConfig
    run_dir: Path
    corpus: str | None  # a path, or None for the demo corpus
    encoding: str
    ckpt: checkpoint.Checkpoint | None = None  # the checkpoint resumed from
    ckpt_path: Path | None = None
    loaded_file: tuple | None = None  # `file_identity` of ckpt_path when it was read
    branch: dict | None = None  # the resumed checkpoint's run, id and step, for a new run
    parent: checkpoint.Checkpoint | None = None  # --init-from's checkpoint
    parent_path: Path | None = None
    default_limit: bool = False  # the time limit is the default, not the user's

    @property
    def in_place(self):
        """Training goes on in the resumed run's own directory."""
        return self.ckpt is not None and self.branch is None


def plan_resume(resume, corpus, overrides, out_dir, name, encoding, reporter):
    """The plan for --resume: the checkpoint's options with the user's changes (notes go to
    `reporter`), its corpus and encoding unless given, and where training goes on."""
    ckpt_path = runs.resolve_checkpoint(resume, out_dir, resume=True)
    loaded_file = file_identity(ckpt_path)
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
    return Plan(cfg, run_dir, corpus, encoding or state.encoding or "utf-8", ckpt, ckpt_path,
                 loaded_file, branch, default_limit=default_limit)


def plan_new(corpus, overrides, out_dir, name, encoding, init_from, default_time_limit, group):
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
    return Plan(cfg, runs.new_run_dir(out_dir, name, corpus), corpus, encoding or "utf-8",
                 parent=parent, parent_path=parent_path, default_limit=default_limit)


def session_vocabulary(plan, text, reporter):
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


def session_model(plan, cfg, vocab):
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


def parent_record(plan):
    """The log's record of the run a new run was started --init-from."""
    path, parent = plan.parent_path.resolve(), plan.parent
    return {"run": str(path.parent), "checkpoint": str(path),
            "step": parent.training.step if parent.training else None,
            "vocab_size": parent.vocab.size}
