"""`charrnn train`: its options (one per `TrainConfig` field), and the command."""

from dataclasses import fields

import click

from charrnn import sizing
from charrnn.cli.base import (_OUT_DIR, CellChoice, Duration, FiniteRange, SectionedCommand,
                              StrictIntRange, _complete_runs)
from charrnn.config import (DEFAULT_LR, DEFAULT_TIME_LIMIT, DTYPES, LR_SCHEDULES, OPTIMIZERS,
                            SIZES, TrainConfig)
from charrnn.engines import DEVICES, ENGINES
from charrnn.engines.distributed import is_secondary
from charrnn.units import DIGITS, fmt_loss


_TRAIN_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}
_SIZE_HELP = (
    f"The model's size: {sizing.describe()} The dropout grows with the passes the budget "
    f"makes over the text (none under one pass, at most {sizing.MAX_DROPOUT:g}, where a "
    f"weight decay of {sizing.WEIGHT_DECAY:g} takes over with {sizing.DECAY_OPTIMIZER}). "
    "--hidden-size, --num-layers, --dropout and --weight-decay override it; the choice and "
    "why are shown at the start and logged.")


def _train_option(name, *flags, **kwargs):
    """The `charrnn train` option of TrainConfig field `name` (--name-with-dashes, or `flags`),
    with the field's default."""
    return click.option(*(flags or ["--" + name.replace("_", "-")]), name,
                        default=_TRAIN_DEFAULTS[name], **kwargs)


def _train_options(f):
    """The TrainConfig options of `charrnn train`; defaults shown are TrainConfig's own."""
    pos_int, nonneg_int = click.IntRange(min=1), click.IntRange(min=0)
    default_lrs = ", ".join(f"{lr:g} for {name}" for name, lr in DEFAULT_LR.items())
    options = [
        _train_option("size", type=click.Choice(SIZES), help=_SIZE_HELP),
        _train_option("cell", type=CellChoice(), help="Recurrent cell."),
        _train_option("hidden_size", type=pos_int, help="Units per layer.",
                      show_default="by --size"),
        _train_option("num_layers", type=click.IntRange(1, 64), help="Stacked recurrent layers.",
                      show_default="by --size"),
        _train_option("dropout", type=FiniteRange(0, 1, max_open=True),
                      help="Dropout between layers and before the output.",
                      show_default="by --size"),
        _train_option("dtype", type=click.Choice(DTYPES), help="Floating-point precision."),
        _train_option("seq_length", type=pos_int, help="Characters per BPTT window."),
        _train_option("batch_size", type=pos_int, help="Parallel streams per step."),
        _train_option("val_fraction", type=FiniteRange(0, 1, max_open=True),
                      help="Last part of the text held out for validation (each evaluation "
                      f"scores at most its first {TrainConfig.val_max_chars:,} characters)."),
        _train_option("min_count", type=StrictIntRange(min=1),
                      help="Map characters that occur fewer than this many times to one "
                      "replacement character, U+FFFD (for texts with thousands of distinct "
                      "characters; the model never generates it)."),
        _train_option("max_vocab", type=StrictIntRange(min=2),
                      help="Keep at most this many characters, U+FFFD included: the most "
                      "frequent; the others map to U+FFFD."),
        _train_option("optimizer", type=click.Choice(OPTIMIZERS), help="Optimizer."),
        _train_option("learning_rate", "--learning-rate", "--lr",
                      type=FiniteRange(min=0, min_open=True),
                      help=f"Peak learning rate [default: {default_lrs}]."),
        _train_option("lr_schedule", type=click.Choice(LR_SCHEDULES),
                      help="After the linear warm-up: cosine decay to "
                      f"{TrainConfig.min_lr_ratio:g}x the rate over the budget (progress = the "
                      "largest used fraction of --max-steps, --epochs and --time-limit), or "
                      "constant. Recorded in the log's start event."),
        _train_option("warmup_steps", type=nonneg_int, help="Linear learning-rate warm-up."),
        _train_option("grad_clip", type=FiniteRange(min=0),
                      help="Clip the global gradient norm to this (0 = off)."),
        _train_option("weight_decay", type=FiniteRange(min=0),
                      help="Decoupled weight decay (as in AdamW, for every optimizer): each "
                      "step takes lr × this of their value off the weight matrices (the input "
                      "table included), not the biases; lr × this must be below 1 (0 = off).",
                      show_default="by --size"),
        _train_option("max_steps", type=pos_int, help="Stop after this many steps in all."),
        _train_option("epochs", type=FiniteRange(min=0, min_open=True),
                      help="Stop after this many passes over the text."),
        _train_option("time_limit", type=Duration(),
                      help="Stop after this much training time, e.g. 90s, 10m, 1h "
                      f"[default: {DEFAULT_TIME_LIMIT / 60:g}m when no other budget is given]."),
        _train_option("patience", type=pos_int,
                      help="Stop after this many evaluations without improvement."),
        _train_option("eval_every", type=pos_int, help="Steps between validations."),
        _train_option("checkpoint_every", type=pos_int, help="Steps between latest.npz saves."),
        _train_option("sample_every", type=nonneg_int,
                      help="Steps between printed samples (0 = never)."),
        _train_option("seed", type=click.IntRange(min=0),
                      help="Random seed [default: random, logged]."),
        _train_option("threads", type=click.IntRange(1, 256),
                      help="Cores per step: the batch is split into this many chunks "
                      "[default: one per core, if each chunk has enough work]."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


TRAIN_SECTIONS = [
    ("Model", ["size", "cell", "hidden_size", "num_layers", "dropout", "dtype"]),
    ("Data", ["seq_length", "batch_size", "val_fraction", "min_count", "max_vocab",
              "encoding"]),
    ("Optimization", ["optimizer", "learning_rate", "lr_schedule", "warmup_steps", "grad_clip",
                      "weight_decay"]),
    ("Budget (training stops at the first one reached)",
     ["max_steps", "epochs", "time_limit", "patience"]),
    ("Evaluation, checkpoints and output",
     ["eval_every", "checkpoint_every", "sample_every", "quiet"]),
    ("Run", ["out_dir", "name", "resume", "init_from", "seed", "threads"]),
    ("Engine", ["engine", "device", "processes"]),
]


@click.command("train", cls=SectionedCommand, option_sections=TRAIN_SECTIONS)
@click.argument("corpus", required=False, type=click.Path(dir_okay=True))
@_train_options
@_OUT_DIR
@click.option("--name", default=None,
              help="Run name [default: the corpus file's name, or demo; then -2, -3, ... if "
                   "taken]. With --resume: start a new run of this name from the checkpoint.")
@click.option("--resume", default=None, metavar="RUN|CKPT", shell_complete=_complete_runs,
              help="Continue a run (its name under --out-dir, its directory, or a checkpoint "
                   "file). Options given with it (a larger budget, say) replace the saved ones, "
                   "except the model's shape, --batch-size, --seq-length, --optimizer and "
                   "--seed. A checkpoint file outside its run's directory goes on as a new "
                   "run; one behind the run's latest.npz or from another run is refused.")
@click.option("--init-from", default=None, metavar="RUN|CKPT",
              help="Start a new run from the weights of another (a run: its best.npz): "
                   "fine-tuning. It keeps that model's shape (options that set it are refused) "
                   "and vocabulary, to which CORPUS's new characters are added; training "
                   "options apply as to any new run.")
@click.option("--encoding", default=None, show_default="utf-8, or the run's on --resume",
              help="Text encoding of CORPUS.")
@click.option("-q", "--quiet", is_flag=True, help="Show nothing but errors.")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="What does the arithmetic: numpy (always there), torch (PyTorch: GPUs, "
                   "and data-parallel under torchrun), or auto: numpy without PyTorch, torch "
                   "on a GPU or under torchrun, else whichever trains this model faster here "
                   "(measured in a second or two, remembered). Chosen per session: a run "
                   "resumes on either engine.")
@click.option("--device", default="auto", show_default=True, metavar=f"[{DEVICES}]",
              help="The torch engine's device; auto: cuda if there is a GPU, else mps, else "
                   "cpu. The numpy engine runs on the CPU.")
@click.option("--nproc-per-node", "processes", type=click.IntRange(1, 1024), default=None,
              metavar="K",
              help="Train data-parallel in K processes on this machine with the torch engine, "
                   "as torchrun --standalone --nproc-per-node K would, but Ctrl-C exits 130 "
                   "without the launcher's traceback.")
@click.pass_context
def train_command(ctx, corpus, out_dir, name, resume, init_from, encoding, quiet, engine, device,
                  processes, **options):
    """Train a model on a text file, or on the built-in demo corpus.

    CORPUS is a text file (UTF-8 unless --encoding). Without it, charrnn trains on a demo
    corpus of about 1 MB of the Python standard library's own source code, no download.
    Checkpoints (best.npz, latest.npz) and log.jsonl go to OUT_DIR/NAME/. Training stops at
    the first budget reached; with none given, after 10 minutes. Ctrl-C saves latest.npz and
    stops; --resume continues exactly where the run stopped.

    \b
    Examples:
      charrnn train                                   the demo corpus, 10 minutes
      charrnn train shakespeare.txt --time-limit 1h   your own text, for an hour
      charrnn train shakespeare.txt --size large      a named size instead of auto
      charrnn train shakespeare.txt --max-steps 300 --hidden-size 64
      charrnn train shakespeare.txt --cell gru --hidden-size 512 --num-layers 3
      charrnn train --resume checkpoints/shakespeare  continue a stopped run
      charrnn train --resume checkpoints/shakespeare --time-limit 2h
      charrnn train sonnets.txt --init-from shakespeare --time-limit 3m
      charrnn train shakespeare.txt --engine torch    on a GPU, if PyTorch sees one
      torchrun --nproc-per-node 4 -m charrnn train shakespeare.txt --engine torch
    """
    import signal

    from click.core import ParameterSource

    from charrnn.clock import CtrlCBeforeTraining
    from charrnn.jsonvalues import printable
    from charrnn.runs import CHECKPOINT_NAMES, LATEST_NAME
    from charrnn.terminal import fit, shown_path
    from charrnn.train import Reporter, train
    from charrnn.ui import TrainProgress, fmt_duration, plural

    explicit = {k: v for k, v in options.items()
                if ctx.get_parameter_source(k) not in (ParameterSource.DEFAULT, None)}
    if processes is not None:
        ctx.exit(_launch(ctx, processes, engine))
    secondary = is_secondary()  # a rank > 0 under torchrun: rank 0 shows the run
    quiet = quiet or secondary
    reporter = Reporter() if quiet else TrainProgress()
    try:
        with CtrlCBeforeTraining(reporter) as guard:
            result = guard.result = train(
                corpus, explicit, out_dir=out_dir, name=name, resume=resume, encoding=encoding,
                reporter=reporter, default_time_limit=DEFAULT_TIME_LIMIT, init_from=init_from,
                engine=engine, device=device)
    except KeyboardInterrupt:  # while reading the corpus: nothing to save yet
        click.echo("interrupted before training started.", err=True)
        ctx.exit(130)
    if result.reason == "diverged":
        raise click.ClickException(printable(result.message))
    run = result.run_dir
    shown = shown_path(run)  # escaped (CHARRNN_HOME may hold escape sequences), relative
    if result.reason == "interrupted":
        if secondary:
            ctx.exit(128 + (result.signal or signal.SIGINT))
        click.echo(fit(f"interrupted at step {result.step}; {LATEST_NAME} saved. Resume "
                       f"with: charrnn train --resume {shown}"), err=True)
        ctx.exit(128 + (result.signal or signal.SIGINT))  # the shell's convention: 130, 143
    if not quiet:
        best, last = result.best_val_loss, result.val_loss
        if best is None:  # no scheduled evaluation yet: the last step's measurement alone
            best = "no validation split" if last is None else f"validation loss {fmt_loss(last)}"
        else:
            best = f"best validation loss {fmt_loss(best)}" + (
                "" if last is None else ", at the last step" if last == best else
                f"; {last:.{DIGITS}f} nats/char at the last step")
        saved = " and ".join(f for f in CHECKPOINT_NAMES if (run / f).exists())
        click.echo(fit(
            f"done ({result.reason.replace('_', ' ')}) after {plural(result.step, 'step')}, "
            f"{result.epoch:.2f} epochs, {fmt_duration(result.elapsed)}: {best}.\n"
            f"checkpoints: {saved} in {shown}\n"
            f"next: charrnn sample {shown}"),
            err=True,
        )


def _launch(ctx, processes, engine):
    """`--nproc-per-node K`: this command's options, given again to K processes of the torch
    engine started by PyTorch's elastic launcher in this process; the exit code."""
    from click.core import ParameterSource

    from charrnn.engines.distributed import environment
    from charrnn.engines.launch import launch

    if environment() is not None:
        raise click.UsageError("--nproc-per-node starts the processes itself; under torchrun, "
                               "leave it out.")
    given = ctx.get_parameter_source("engine") not in (ParameterSource.DEFAULT, None)
    if given and engine not in ("torch", "auto"):
        raise click.UsageError(f"--nproc-per-node trains with the torch engine, not --engine "
                               f"{engine}; drop --engine or give --engine torch.")
    args, corpus = ["--engine", "torch"], []
    for param in ctx.command.params:
        if param.name in ("processes", "engine") or \
                ctx.get_parameter_source(param.name) in (ParameterSource.DEFAULT, None):
            continue
        value = ctx.params[param.name]
        if isinstance(param, click.Argument):
            corpus = ["--", str(value)]
        elif param.is_flag:
            args += [param.opts[0]] if value else []
        else:
            args += [param.opts[0], repr(value) if isinstance(value, float) else str(value)]
    return launch(processes, [*args, *corpus])
