"""The `charrnn` command line: parse options, call the library, turn errors into messages.

Library modules (and numpy with them) are imported inside the commands, so that
`charrnn --help` stays fast; the options' choices, defaults and help come from the numpy-free
`charrnn.config` and cell table (`charrnn.cells`).
"""

import contextlib
import errno
import io
import math
import os
import sys
from dataclasses import fields

import click

from charrnn import cells, sizing
from charrnn._version import __version__
from charrnn.config import (DEFAULT_LR, DEFAULT_TEMPERATURE, DEFAULT_TIME_LIMIT, DTYPES, SIZES,
                            LR_SCHEDULES, OPTIMIZERS, UNKNOWN_CHOICES, TrainConfig)
from charrnn.errors import CharRNNError
from charrnn.engines import DEVICES, ENGINES
from charrnn.engines.distributed import is_secondary
from charrnn.runs import DEFAULT_OUT_DIR, OUT_DIR_ENV
from charrnn.cli_serve import serve_command

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}


class CharRNNGroup(click.Group):
    """A click group that ends every command with one line of error and exit 1, never a
    traceback: a library `CharRNNError`, running out of memory, and output that cannot be
    written (stdout full, closed or not open for writing, or in an encoding that cannot show
    the text); Ctrl-C exits 130 without click's "Aborted!". A pipe closed by its reader
    (`charrnn logs | head`) stays quiet, as click makes it."""

    def invoke(self, ctx):
        _guard_closed_stdout()
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a full disk shows here, not in the interpreter's last flush
            return result
        except CharRNNError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            ctx.exit(130)  # 128 + SIGINT, as shells report it
        except MemoryError:
            raise click.ClickException(
                "charrnn ran out of memory (a limit such as ulimit -v, or the machine's "
                "memory); files already written are intact."
            ) from None
        except UnicodeEncodeError as exc:
            _drop_stdout()
            raise click.ClickException(
                f"stdout's encoding ({exc.encoding}) cannot show {exc.object[exc.start]!r}; "
                "set PYTHONIOENCODING=utf-8, or write to a file."
            ) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # click quiets a closed pipe
            _drop_stdout()
            raise click.ClickException(f"cannot write to stdout: {exc.strerror or exc}.") \
                from None


class _ClosedStdout(io.TextIOBase):
    """What sys.stdout becomes when charrnn was started with stdout closed: writing to it fails
    (EBADF), so a command that has output to show says it cannot, and one that has none
    (train) is not bothered."""

    encoding = "utf-8"

    def writable(self):
        return True

    def write(self, text):
        raise OSError(errno.EBADF, "stdout is closed")


def _guard_closed_stdout():
    """With stdout closed at start, Python's sys.stdout is None and file descriptor 1 is free:
    the next file opened (a run's lock or log) would get it. Park /dev/null on it, and make
    writes to sys.stdout fail instead of vanishing."""
    if sys.stdout is None:
        try:
            os.fstat(1)
        except OSError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        sys.stdout = _ClosedStdout()


def _drop_stdout():
    """After a failed write to stdout, send what is still buffered to /dev/null, so that the
    interpreter's final flush does not fail again (with a traceback-like message)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


class SectionedCommand(click.Command):
    """A command whose --help lists its options under headings: `option_sections` is a list
    of (heading, [parameter names]); options in no section are listed last, under "Other"."""

    def __init__(self, *args, option_sections=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.option_sections = list(option_sections)

    def format_options(self, ctx, formatter):
        records = {p.name: p.get_help_record(ctx) for p in self.get_params(ctx)}
        placed = {name for _, names in self.option_sections for name in names}
        rest = [name for name in records if name not in placed]
        for heading, names in [*self.option_sections, ("Other", rest)]:
            rows = [records[name] for name in names if records.get(name)]
            if rows:
                with formatter.section(heading):
                    formatter.write_dl(rows)


def _complete_runs(ctx, param, incomplete):
    """Shell completion of a RUN|CKPT: the run names under --out-dir that start with
    `incomplete`, after a "file" item, so that the shell completes paths when no name matches
    (and always for a word that looks like a path)."""
    from click.shell_completion import CompletionItem

    from charrnn import runs

    items = [CompletionItem(incomplete, type="file")]
    if os.sep in incomplete or incomplete.startswith((".", "~")):
        return items
    try:
        names = runs.run_names(ctx.params.get("out_dir") or runs.default_out_dir())
    except CharRNNError:
        names = []
    return items + [CompletionItem(n) for n in names if n.startswith(incomplete)]


_OUT_DIR = click.option("--out-dir", default=DEFAULT_OUT_DIR, envvar=OUT_DIR_ENV,
                        show_envvar=True, type=click.Path(file_okay=False),
                        help="Directory holding the runs.")


@click.group(cls=CharRNNGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="charrnn")
def cli():
    """Train character-level RNN, LSTM and GRU language models on text, and sample from them.

    Runs are kept under --out-dir (default: $CHARRNN_HOME, else ./checkpoints). A RUN is a
    run's name there or its directory; a CKPT is a checkpoint file (.npz). `charrnn COMMAND
    --help` tells more.

    \b
    Examples:
      charrnn train                      10 minutes on the built-in demo corpus
      charrnn train shakespeare.txt      train on your own text; Ctrl-C saves
      charrnn sample --prime "ROMEO:"    generate text from the newest run
      charrnn logs                       list runs; `charrnn logs RUN` charts one
      charrnn eval RUN test.txt          a run's loss on a text, in bits/char
      charrnn info RUN                   model, vocabulary and training state
      charrnn explain RUN test.txt       what surprised it; its units, gates, gradients

    \b
    Shell completion, for bash (zsh, fish: zsh_source, fish_source):
      eval "$(_CHARRNN_COMPLETE=bash_source charrnn)"
    """
    import warnings

    # a warning (e.g. a worker process that failed, replaced by threads) is one line for users
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"


# ----------------------------------------------------------------------------- charrnn logs


@cli.command("logs")
@click.argument("run_names", nargs=-1, metavar="[RUN]...", shell_complete=_complete_runs)
@_OUT_DIR
@click.option("--x", "x_axis", type=click.Choice(["step", "time"]), default="step",
              help="What the charts' x axis shows: training steps or training time.")
@click.option("--lr", "show_lr", is_flag=True, help="Also chart the learning rate.")
@click.option("--grad-norm", "show_grad_norm", is_flag=True,
              help="Also chart the gradient norm (before clipping).")
@click.option("--height", type=click.IntRange(4, 200), default=14,
              help="Height of the loss chart in lines.")
@click.option("-f", "--follow", is_flag=True,
              help="Redraw every second as training appends to the log, until the run ends.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              help="json/csv: the train and eval records of the RUNs (without RUN: the run "
                   "summaries) on stdout, for pandas and friends.")
@click.option("--plot", type=click.Path(dir_okay=False), metavar="FILE.png",
              help="Also write the charts to an image: .png, .svg, .pdf, ... (needs "
                   "matplotlib: pip install matplotlib).")
def logs(run_names, out_dir, x_axis, show_lr, show_grad_norm, height, follow, fmt, plot):
    """List runs; with RUN, show its summary and loss curves.

    Without RUN: a table of every run under --out-dir, newest first, with its status, model,
    progress and best validation loss. With RUNs (names under --out-dir or run directories):
    each run's summary, then its train and validation loss charted in the terminal, several
    RUNs overlaid in one chart, each in its own colour.

    With --follow, RUNs are redrawn every second until they stop training (the list: until
    Ctrl-C).

    \b
    Examples:
      charrnn logs                          every run, newest first
      charrnn logs shakespeare              summary and train/val loss curves
      charrnn logs a b --x time             two runs against training time
      charrnn logs shakespeare -f --lr      follow a training run, and its LR
      charrnn logs a --format csv > a.csv   the train and eval records, as data
      charrnn logs a --plot a.png           the same charts as an image
    """
    import time

    from charrnn import charts, runs, ui
    from charrnn.jsonvalues import printable

    if follow and fmt != "table":
        raise click.UsageError("--follow works only with --format table.")
    if plot and not run_names:
        raise click.UsageError("--plot needs a RUN to draw.")
    if plot:
        charts.check_image_path(plot)
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise click.ClickException(
                "--plot needs matplotlib; install it with: pip install matplotlib"
            ) from None
    out = ui.make_console()

    def emit(rows):  # the records as data on stdout, nothing else
        text = runs.records_json(rows) if fmt == "json" else runs.records_csv(rows)
        click.echo(text, nl=fmt == "json")

    if not run_names:
        infos = runs.list_runs(out_dir)
        if fmt != "table":
            rows = [info.to_json() for info in infos]
            if fmt == "csv":
                rows = [{k: v for k, v in row.items() if k != "config"} for row in rows]
            emit(rows)
            return
        if not infos and not follow:
            missing = "" if os.path.isdir(out_dir) else " (it does not exist)"
            click.echo(f"no runs in {out_dir}/ yet{missing}; point --out-dir or "
                       f"{OUT_DIR_ENV} at the directory that holds your runs, or start one "
                       "with: charrnn train corpus.txt", err=True)
            return

        def load():
            return runs.list_runs(out_dir)

        def render(infos):
            return ui.RunsTable(infos)

        shown = infos  # what load() returns: what is on screen
    else:
        dirs = list(dict.fromkeys(runs.resolve_run(name, out_dir) for name in run_names))
        warned = set()

        def load():
            infos, records = [], []
            for run_dir in dirs:
                contents = runs.read_log_with_problems(run_dir / runs.LOG_NAME)
                if contents.bad_lines and run_dir not in warned:
                    warned.add(run_dir)
                    click.echo(f"warning: skipped {contents.bad_lines} unreadable line(s) in "
                               f"{printable(str(run_dir / runs.LOG_NAME))}", err=True)
                infos.append(runs.summarize(run_dir, contents))
                records.append((run_dir.name, contents.records))
            return infos, records

        infos, records = load()
        if fmt != "table":
            rows = [
                {"run": name, **r} if len(records) > 1 else r
                for name, recs in records for r in runs.metric_records(recs)
            ]
            emit(rows)
            return
        if plot:
            specs = charts.chart_specs(records, x_axis, show_lr, show_grad_norm, height)
            charts.save_png(plot, specs, x_axis, title=", ".join(n for n, _ in records))
            click.echo(f"wrote the charts to {plot}", err=True)

        def render(loaded):
            return charts.runs_view(*loaded, x=x_axis, lr=show_lr, grad_norm=show_grad_norm,
                                    height=height)

        shown = (infos, records)
    if not follow:
        out.print(render(shown))
        return
    from rich.live import Live

    def training(loaded):  # whether a run on screen is still training
        return any(info.status == "running" for info in loaded[0])

    with Live(render(shown), console=out, auto_refresh=False) as live:
        while not run_names or training(shown):  # the list follows until Ctrl-C
            time.sleep(1.0)
            shown = load()
            live.update(render(shown), refresh=True)


# ---------------------------------------------------------------------------------------- train


class Duration(click.ParamType):
    """A time span such as 90s, 10m, 1h30m (plain numbers are seconds) -> seconds."""

    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        from charrnn.train import parse_duration

        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class FiniteRange(click.FloatRange):
    """A click.FloatRange that also refuses nan and inf (nan passes every bound check)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class ExitOne:
    """Mixin for a click parameter type: a bad value is a one-line error with exit code 1 (a
    ClickException, like a library error), not a usage error with exit code 2."""

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as exc:
            raise click.ClickException(f"{param.opts[0]}: {exc.message}") from None


class StrictIntRange(ExitOne, click.IntRange):
    """A click.IntRange whose bad values exit 1."""


class StrictChoice(ExitOne, click.Choice):
    """A click.Choice whose bad values exit 1."""


class StopText(click.ParamType):
    """A --stop text, its escapes (\\n, \\t, \\uHHHH, ...) read by `charrnn.stops.unescape`;
    empty or badly escaped, an error with exit code 1 (as with `ExitOne`)."""

    name = "text"

    def convert(self, value, param, ctx):
        from charrnn.stops import unescape

        try:
            text = unescape(value)
        except ValueError as exc:
            raise click.ClickException(f"{param.opts[0]}: {exc}.") from None
        if not text:
            raise click.ClickException(f"{param.opts[0]}: a stop text cannot be empty.")
        return text


class CellChoice(click.Choice):
    """--cell: a name in the cell table (`charrnn.cells.CELLS`), read whenever the choices are
    needed (validation, --help, completion), so that a cell registered at run time counts."""

    def __init__(self):  # no fixed choices to store
        self.case_sensitive = True

    @property
    def choices(self):
        return tuple(cells.CELLS)


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
    ("Engine", ["engine", "device"]),
]


@cli.command("train", cls=SectionedCommand, option_sections=TRAIN_SECTIONS)
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
@click.option("--engine", type=click.Choice(ENGINES), default="numpy", show_default=True,
              help="What does the arithmetic: numpy (always there), or torch (PyTorch: GPUs, "
                   "and data-parallel under torchrun). Chosen per session: a run resumes on "
                   "either engine.")
@click.option("--device", default="auto", show_default=True, metavar=f"[{DEVICES}]",
              help="The torch engine's device; auto: cuda if there is a GPU, else mps, else "
                   "cpu. The numpy engine runs on the CPU.")
@click.pass_context
def train_command(ctx, corpus, out_dir, name, resume, init_from, encoding, quiet, engine, device,
                  **options):
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

    from charrnn.runs import CHECKPOINT_NAMES, LATEST_NAME
    from charrnn.train import Reporter, train
    from charrnn.ui import TrainProgress, fmt_duration, plural

    explicit = {k: v for k, v in options.items()
                if ctx.get_parameter_source(k) not in (ParameterSource.DEFAULT, None)}
    secondary = is_secondary()  # a rank > 0 under torchrun: rank 0 shows the run
    quiet = quiet or secondary
    reporter = Reporter() if quiet else TrainProgress()
    # Ctrl-C before training starts (e.g. while reading the corpus) stops at once; during
    # training, the loop saves and stops; after that, when train() has restored this handler,
    # a second Ctrl-C is ignored, so that it cannot turn a clean stop into "Aborted!" or a
    # death by SIGINT while the command reports and exits. A KeyboardInterrupt that lands in
    # code that swallows exceptions (a finalizer) is not lost: the signal is sent again once
    # the training loop's own handler is in place, and the run stops at its first step.
    report_start, started, requested = reporter.start, [], []

    def start(info):
        started.append(True)
        if requested:
            os.kill(os.getpid(), signal.SIGINT)
        report_start(info)

    def on_sigint(signum, frame):
        if not started:
            requested.append(signum)
            raise KeyboardInterrupt

    reporter.start = start
    previous = signal.signal(signal.SIGINT, on_sigint)
    result = None
    try:
        result = train(corpus, explicit, out_dir=out_dir, name=name, resume=resume,
                       encoding=encoding, reporter=reporter, default_time_limit=DEFAULT_TIME_LIMIT,
                       init_from=init_from, engine=engine, device=device)
    except KeyboardInterrupt:  # while reading the corpus: nothing to save yet
        click.echo("interrupted before training started.", err=True)
        ctx.exit(130)
    finally:  # after an interruption, ignore Ctrl-C until the exit, interpreter shutdown included
        interrupted = result is not None and result.reason == "interrupted"
        signal.signal(signal.SIGINT, signal.SIG_IGN if interrupted else previous)
    if result.reason == "diverged":
        raise click.ClickException(result.message)
    run = result.run_dir
    if result.reason == "interrupted":
        if secondary:
            ctx.exit(128 + (result.signal or signal.SIGINT))
        click.echo(f"interrupted at step {result.step}; {LATEST_NAME} saved. Resume with: "
                   f"charrnn train --resume {run}", err=True)
        ctx.exit(128 + (result.signal or signal.SIGINT))  # the shell's convention: 130, 143
    if not quiet:
        best = "no validation loss yet" if result.best_val_loss is None else (
            f"best validation loss {result.best_val_loss:.4f} nats/char "
            f"({result.best_val_loss / math.log(2):.3f} bits/char)")
        saved = ", ".join(str(run / f) for f in CHECKPOINT_NAMES if (run / f).exists())
        click.echo(
            f"done ({result.reason.replace('_', ' ')}) after {plural(result.step, 'step')}, "
            f"{result.epoch:.2f} epochs, {fmt_duration(result.elapsed)}: {best}.\n"
            f"checkpoints: {saved}\n"
            f"next: charrnn sample {run}",
            err=True,
        )


# ----------------------------------------------------------------------- sample, eval, info


def _load_checkpoint(target, out_dir, note=""):
    """(path, Checkpoint) for a RUN|CKPT argument; says on stderr which file is used."""
    from charrnn import checkpoint, runs

    path = runs.resolve_checkpoint(target, out_dir)
    ckpt = checkpoint.load(path)
    click.echo(f"using {path}{note}", err=True)
    return path, ckpt


def _print_fields(fields):
    """A two-column table of (name, value) on stdout; values are never read as markup."""
    from rich.table import Table
    from rich.text import Text

    from charrnn import ui

    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in fields:
        table.add_row(name, Text(str(value)))
    ui.make_console().print(table)


def _echo_json(obj):
    import json

    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


_CKPT_ARG = click.argument("target", required=False, metavar="[RUN|CKPT]",
                           shell_complete=_complete_runs)
_FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                       help="json: one JSON object on stdout.")


SAMPLE_SECTIONS = [
    ("Sampling", ["length", "temperature", "top_k", "top_p", "seed", "stop", "beam"]),
    ("Prime", ["prime", "prime_file", "encoding", "unknown"]),
    ("Output", ["num_samples", "fmt", "separator", "out_dir"]),
]


@cli.command("sample", cls=SectionedCommand, option_sections=SAMPLE_SECTIONS)
@_CKPT_ARG
@click.option("--temp", "--temperature", "temperature", type=FiniteRange(min=0), default=None,
              show_default=False,
              help="Randomness: lower is safer, higher is wilder; 0 = always the most probable "
                   f"character (greedy) [default: {DEFAULT_TEMPERATURE:g}].")
@click.option("-n", "--length", type=click.IntRange(min=0), default=500,
              help="Characters to generate after the prime (with --stop: at most).")
@click.option("--prime", default=None, help="Text to start from; it is printed, then continued.")
@click.option("--prime-file", type=click.Path(dir_okay=False), default=None,
              help="Read the prime from a file.")
@click.option("--encoding", default="utf-8", help="Text encoding of --prime-file.")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Random seed: the same checkpoint, seed and options give the same text "
                   "[default: fresh randomness; the seed used is shown on stderr].")
@click.option("--top-k", type=click.IntRange(min=1), default=None,
              help="Sample only among the K most probable characters (1 = greedy).")
@click.option("--top-p", type=FiniteRange(0, 1, min_open=True), default=None,
              help="Sample only among the most probable characters whose probabilities add up "
                   "to P.")
@click.option("--stop", multiple=True, type=StopText(),
              help="End a sample as soon as its generated text ends with TEXT, which is not "
                   "printed; repeatable. Escapes: \\n, \\t, \\r, \\\\, \\xHH, \\uHHHH.")
@click.option("--beam", type=StrictIntRange(min=1), default=None, metavar="B",
              help="Beam search: print the most probable continuation found keeping the B best "
                   "(with --num-samples K <= B, the K best); deterministic. Not with --temp, "
                   "--top-k, --top-p.")
@click.option("--num-samples", type=click.IntRange(min=1), default=1,
              help="How many samples, generated together as one batch.")
@click.option("--format", "fmt", type=StrictChoice(["text", "jsonl"]), default="text",
              help="jsonl: one JSON object per sample (prime, text, stop, nats_per_char, "
                   "bits_per_char, seed, options).")
@click.option("--separator", default="---", help="The line printed between samples.")
@click.option("--unknown", type=click.Choice(UNKNOWN_CHOICES), default="error",
              help="Prime characters the model never saw: stop with an error, skip them, or "
                   "read them as U+FFFD (a model trained with --min-count or --max-vocab).")
@_OUT_DIR
@click.pass_context
def sample_command(ctx, target, temperature, length, prime, prime_file, encoding, seed, top_k,
                   top_p, stop, beam, num_samples, fmt, separator, unknown, out_dir):
    """Generate text from a checkpoint, streaming it to stdout.

    RUN|CKPT is a run (a name under --out-dir or a directory: its best.npz, else latest.npz)
    or a .npz file; without it, the newest run under --out-dir.

    stdout gets the prime, then exactly --length generated characters (with --stop, fewer
    when a stop text ends the sample), then a newline, and nothing else. Several samples
    follow one another, each after a line holding --separator. The first sample appears as
    it is generated; the others, generated in the same batch, appear when it is done. Before
    the prime, the model reads the end of a paragraph of its training text, kept in the
    checkpoint and not printed.

    --stop ends a sample early: as soon as the generated text (not the prime) ends with a
    stop text; the stop text is not printed. --beam prints its samples when the search ends.
    --format jsonl prints one JSON object per sample instead, each when it is done.

    \b
    Examples:
      charrnn sample                          500 characters from the newest run
      charrnn sample shakespeare --prime "ROMEO:" --temp 0.5 --seed 1
      charrnn sample shakespeare -n 2000 --top-p 0.9 > out.txt
      charrnn sample checkpoints/shakespeare/latest.npz --num-samples 3 -n 200
      charrnn sample shakespeare --prime "ROMEO:" --stop "\\n\\n" --beam 8
      charrnn sample shakespeare --num-samples 5 --format jsonl > samples.jsonl
    """
    import secrets
    from contextlib import nullcontext

    from tqdm import tqdm

    from charrnn.data import format_chars, read_text
    from charrnn.sampling import generate
    from charrnn.stops import Stops

    if prime is not None and prime_file is not None:
        raise click.UsageError("give --prime or --prime-file, not both.")
    if beam is not None and (temperature, top_k, top_p) != (None, None, None):
        raise click.ClickException("--beam keeps the most probable continuations; it does not "
                                   "combine with --temp, --top-k or --top-p.")
    if beam is not None and num_samples > beam:
        raise click.ClickException(f"--num-samples {num_samples} is more than --beam {beam} "
                                   "keeps; ask for at most that many.")
    if prime_file is not None:
        prime = read_text(prime_file, encoding)
    prime = prime or ""
    if seed is None and beam is None:
        seed = secrets.randbits(32)
    _, ckpt = _load_checkpoint(target, out_dir, f" (beam {beam})" if beam else f" (seed {seed})")
    for text in Stops(ckpt.vocab, stop).unmatchable:
        click.echo(f"warning: --stop {format_chars([text])} can never occur: the model does not "
                   f"know {format_chars(ckpt.vocab.unknown_chars(text), 20)}.", err=True)
    missing = ckpt.vocab.unknown_chars(prime) if unknown != "error" else ""
    if missing and (unknown == "skip" or ckpt.vocab.replacement is not None):
        click.echo(f"{'skipping' if unknown == 'skip' else 'reading as U+FFFD'} "
                   f"{len(missing)} prime character(s) the model does not know: "
                   f"{format_chars(missing, 20)}", err=True)
    searching = tqdm(total=length, unit="step", leave=False, dynamic_ncols=True,
                     file=sys.stderr, disable=None) if beam else nullcontext()
    with searching:
        stream = generate(ckpt.model, ckpt.vocab, length, temperature=temperature, top_k=top_k,
                          top_p=top_p, prime=prime, rng=seed, num_samples=num_samples,
                          unknown=unknown,
                          context=ckpt.training.sample_context if ckpt.training else "",
                          stop=stop, beam=beam, records=fmt == "jsonl",
                          progress=searching.update if beam else None)
    if fmt == "jsonl":
        _write_records(stream)
    else:
        _write_samples(stream, prime, num_samples, separator)


STREAM_FLUSH_SECONDS = 0.02  # how often a streaming sample reaches stdout


@contextlib.contextmanager
def _stdout():
    """stdout, for generated text: an encoding that cannot write it is one line of error, and
    a reader that closed the pipe (`charrnn sample | head`) ends the command quietly."""
    out = sys.stdout
    try:
        yield out
    except UnicodeEncodeError:
        raise click.ClickException(
            f"stdout's encoding ({out.encoding}) cannot write the generated characters; "
            "set PYTHONIOENCODING=utf-8 or write to a file."
        ) from None
    except BrokenPipeError:  # the reader has all it wanted
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        except (OSError, ValueError):
            pass


def _write_samples(stream, prime, num_samples, separator):
    """Write sample 1 as it is generated (flushed every STREAM_FLUSH_SECONDS), then the rest.
    `stream` yields what each sample adds at each position (see `sampling.generate`)."""
    import time

    rest = [[] for _ in range(num_samples - 1)]
    with _stdout() as out:
        pending = [prime]
        last = time.monotonic()
        columns = 1
        try:
            for pieces in stream:
                columns = len(pieces)  # beam search may find fewer samples than asked for
                pending.append(pieces[0])
                for column, piece in zip(rest, pieces[1:]):
                    column.append(piece)
                now = time.monotonic()
                if now - last >= STREAM_FLUSH_SECONDS:
                    out.write("".join(pending))
                    out.flush()
                    pending.clear()
                    last = now
        except KeyboardInterrupt:  # Ctrl-C: what was generated is shown, then exit 130
            out.write("".join(pending) + "\n")
            raise
        out.write("".join(pending) + "\n")
        for column in rest[:columns - 1]:
            out.write(f"{separator}\n{prime}{''.join(column)}\n")
        out.flush()


def _write_records(records):
    """Write each sample's record (see `sampling.generate`) as one line of JSON when it is done."""
    import json

    with _stdout() as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()


@cli.command("eval")
@click.argument("paths", nargs=-1, metavar="[RUN|CKPT] FILE", shell_complete=_complete_runs)
@click.option("--encoding", default="utf-8", help="Text encoding of FILE.")
@_FORMAT
@_OUT_DIR
def eval_command(paths, encoding, fmt, out_dir):
    """Score a checkpoint on a text file, in nats and bits per character.

    The perplexity and the number of characters scored are shown too. RUN|CKPT as for
    `charrnn sample` (default: the newest run). The whole file is one stream: each character
    is predicted from all the text before it, the state carried through.
    Characters the model does not know are skipped, counted and reported; a model trained with
    --min-count or --max-vocab reads them as its U+FFFD instead. Ctrl-C stops early and shows
    the score of the text read so far, marked partial (exit 130).

    \b
    Examples:
      charrnn eval test.txt                           the newest run
      charrnn eval shakespeare test.txt --format json
      charrnn eval checkpoints/shakespeare/latest.npz test.txt
    """
    if len(paths) not in (1, 2):
        raise click.UsageError("give FILE, or RUN|CKPT and FILE.")
    if len(paths) == 1 and _names_a_checkpoint(paths[0], out_dir):
        raise click.UsageError(f"{paths[0]} is a run or checkpoint: give the text file to score "
                               f"after it, e.g. charrnn eval {paths[0]} test.txt.")
    import math

    import numpy as np
    from tqdm import tqdm

    from charrnn.data import REPLACEMENT, format_chars, read_text
    from charrnn.scoring import score_steps

    target, file = (None, *paths) if len(paths) == 1 else paths
    path, ckpt = _load_checkpoint(target, out_dir)
    text = read_text(file, encoding)
    vocab = ckpt.vocab
    replace = vocab.replacement is not None  # U+FFFD stands for the characters it lacks
    ids = vocab.encode(text, unknown="replace" if replace else "skip")
    replaced = 0  # occurrences of unknown characters read as U+FFFD
    if replace:
        replaced = int(np.count_nonzero(ids == vocab.replacement)) - text.count(REPLACEMENT)
    unknown = vocab.unknown_chars(text) if ids.size < len(text) or replaced else ""
    total = scored = 0
    try:
        with tqdm(total=max(ids.size - 1, 0), unit="char", unit_scale=True, leave=False,
                  dynamic_ncols=True, file=sys.stderr, disable=None) as bar:
            for total, done in score_steps(ckpt.model, ids):
                bar.update(done - scored)
                scored = done
    except KeyboardInterrupt:
        if not scored:
            raise
    partial = scored < ids.size - 1
    nats = total / scored
    result = {
        "checkpoint": str(path),
        "file": str(file),
        "nats_per_char": nats,
        "bits_per_char": nats / math.log(2),
        "perplexity": math.exp(nats),
        "chars_scored": scored,
        "chars_skipped": len(text) - ids.size,
        "chars_replaced": replaced,
        "unknown_chars": unknown,
        "partial": partial,  # interrupted: the scores of the first chars_scored characters
    }
    if fmt == "json":
        _echo_json(result)
        _exit_if_interrupted(partial)
        return
    left_out = f"{replaced if replace else result['chars_skipped']:,}"
    if unknown:
        left_out += f" (unknown to the model: {format_chars(unknown, 40, quoted=False)})"
    _print_fields([
        ("checkpoint", path), ("file", file),
        ("nats/char", f"{nats:.4f}"), ("bits/char", f"{result['bits_per_char']:.4f}"),
        ("perplexity", f"{result['perplexity']:.3f}"),
        ("scored", f"{scored:,} characters"
                   + (f" of {ids.size - 1:,}: partial, interrupted" if partial else "")),
        ("read as U+FFFD" if replace else "skipped", left_out),
    ])
    _exit_if_interrupted(partial)


def _names_a_checkpoint(arg, out_dir):
    """Whether `arg` (eval's only argument) means a checkpoint rather than a text file: a .npz,
    a directory, or the name of a run under --out-dir."""
    from charrnn import runs

    return (arg.endswith(".npz") or os.path.isdir(arg)
            or (not os.path.exists(arg) and runs.is_run_dir(os.path.join(out_dir, arg))))


def _exit_if_interrupted(partial):
    """Exit 130 (Ctrl-C) after an interrupted evaluation has shown its partial result."""
    if partial:
        click.get_current_context().exit(130)


class ExplainCommand(SectionedCommand):
    """`charrnn explain`: its --help ends with the features that --find correlates units with
    (read from `charrnn.features` only when the help is shown)."""

    def format_epilog(self, ctx, formatter):
        from charrnn.features import FEATURES

        with formatter.section("Features of --find (each describes the text up to a character)"):
            formatter.write_dl(list(FEATURES.items()))


def _pair(value, option, metavar):
    """'A:B' -> (A, B), two integers; a usage error naming `option` otherwise."""
    try:
        a, b = value.split(":")
        return int(a), int(b)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not {metavar} (two integers).",
                                 param_hint=option) from None


def _arrays_by_cell(kind):
    """'h, c (lstm); h (gru); ...': the states or gates of each cell of the table, for --help."""
    return "; ".join(f"{', '.join(getattr(c, kind))} ({c.name})" for c in cells.CELLS.values())


EXPLAIN_SECTIONS = [
    ("Text", ["text_arg", "encoding"]),
    ("Surprise view (the default)", ["top_k", "span"]),
    ("Neuron view", ["unit", "state", "gate"]),
    ("Analyses", ["find", "find_top", "saturation", "gradient_flow", "window", "windows"]),
    ("Output", ["html", "fmt", "out_dir"]),
]


@cli.command("explain", cls=ExplainCommand, option_sections=EXPLAIN_SECTIONS)
@click.argument("paths", nargs=-1, metavar="[RUN|CKPT] (FILE | --text TEXT)")
@click.option("--text", "text_arg", default=None, help="The text to explain, instead of FILE.")
@click.option("--encoding", default="utf-8", help="Text encoding of FILE.")
@click.option("--top-k", type=click.IntRange(min=1), default=None,
              help="Also list, at each position of --span, the K most probable next characters.")
@click.option("--span", default=None, metavar="START:END",
              help="The positions --top-k lists, counted from 0 [default: the first 40].")
@click.option("--unit", default=None, metavar="LAYER:INDEX",
              help="Colour the text by this unit's activation instead (both count from 0).")
@click.option("--state", default=None, help=f"The unit's state array: {_arrays_by_cell('states')} "
              "[default: h].")
@click.option("--gate", default=None,
              help=f"The unit's gate instead: {_arrays_by_cell('gates')}.")
@click.option("--find", is_flag=True,
              help="Rank the units of every state array of every layer by how well they follow "
                   "each feature of the text listed below (Pearson r).")
@click.option("--find-top", type=click.IntRange(1, 100), default=3,
              help="Units --find lists per feature.")
@click.option("--saturation", is_flag=True,
              help="How often each gate is below 0.1 or above 0.9 (tanh gates mapped to [0, 1]).")
@click.option("--gradient-flow", is_flag=True,
              help="How far back the gradient reaches: ||dL_T / dh_(T-k)|| per layer for the "
                   "loss of a window's last position, charted, and where it falls below 1/100.")
@click.option("--window", type=click.IntRange(min=1), default=100,
              help="Characters per gradient-flow window.")
@click.option("--windows", type=click.IntRange(min=1), default=64,
              help="Gradient-flow windows at most (averaged), spread over the text.")
@click.option("--html", type=click.Path(), default=None, metavar="OUT.html",
              help="Write all of it as one self-contained page: hover a character for its top "
                   "5, pick any unit, the finder's units, saturation and gradient flow.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              help="json: the numbers as one JSON object on stdout (with --html: also).")
@_OUT_DIR
def explain_command(paths, text_arg, encoding, top_k, span, unit, state, gate, find, find_top,
                    saturation, gradient_flow, window, windows, html, fmt, out_dir):
    """Look inside a model: what surprised it, what its units do, how far back it learns.

    The model reads the text as `charrnn eval` does (one stream from the zero state), and the
    text is shown with each character's background coloured by its surprise in nats, -ln p
    (the first character is not predicted); then nats/char, bits/char and the most
    surprising spans. With --unit, the text is coloured by that unit's activation instead.
    RUN|CKPT as for `charrnn sample` (default: the newest run). Characters the model does not
    know are skipped, with a note.

    \b
    Examples:
      charrnn explain test.txt                         surprise, newest run
      charrnn explain shakespeare --text "ROMEO: Art thou" --top-k 5
      charrnn explain shakespeare test.txt --find      units that track quotes, lines, ...
      charrnn explain shakespeare test.txt --unit 1:17 --gate f
      charrnn explain shakespeare test.txt --gradient-flow --window 200
      charrnn explain shakespeare test.txt --html page.html     everything, in a browser
    """
    import sys

    from tqdm import tqdm

    from charrnn import explain, explain_html, explain_view, ui
    from charrnn.data import format_chars, read_text

    if text_arg is not None and len(paths) > 1:
        raise click.UsageError("with --text, give at most RUN|CKPT.")
    if text_arg is None and len(paths) not in (1, 2):
        raise click.UsageError("give FILE, or RUN|CKPT and FILE, or --text TEXT.")
    if (state or gate) and not unit:
        raise click.UsageError("--state and --gate choose the array of a --unit.")
    span = _pair(span, "--span", "START:END") if span else None
    unit = _pair(unit, "--unit", "LAYER:INDEX") if unit else None
    if html:
        explain_html.check_writable(html)
    if text_arg is None:
        target, file = (None, *paths) if len(paths) == 1 else paths
        text = read_text(file, encoding)
    else:
        target, text = (paths or (None,))[0], text_arg
    path, ckpt = _load_checkpoint(target, out_dir)
    model, vocab = ckpt.model, ckpt.vocab
    options = {"top_k": top_k or 0, "span": span, "find": find, "find_top": find_top,
               "saturation": saturation, "gradient_flow": gradient_flow, "window": window,
               "max_windows": windows,
               "units": [explain.make_unit(model.config, *unit, state, gate)] if unit else []}
    known = vocab.encode(text, unknown="skip").size
    if html:
        options.update(explain_html.page_options(model.config, known),
                       top_k=max(options["top_k"], explain_html.TOP_K))
    with tqdm(total=known, unit="char", unit_scale=True, leave=False, dynamic_ncols=True,
              file=sys.stderr, disable=None) as bar:
        result = explain.explain(model, vocab, text, progress=bar.update, **options)
    if result.skipped:
        click.echo(f"skipped {result.skipped:,} character(s) the model does not know: "
                   f"{format_chars(result.unknown_chars, 20)}", err=True)
    if html:
        c = model.config
        explain_html.write(html, explain_html.render(
            result, f"charrnn explain: {path}",
            f"{c.cell}, {c.num_layers} layer(s) × {c.hidden_size} units, {vocab.size} characters"))
        click.echo(f"wrote {html}", err=True)
    if fmt == "json":
        _echo_json({"checkpoint": str(path), **result.to_json()})
    elif not html:
        ui.make_console().print(explain_view.terminal_view(result))


def _training_summary(state):
    """What `info` shows of a checkpoint's TrainingState (None: a bare model): the numbers it
    holds and the run's options. The epoch is fractional, as the log and the table give it,
    and `learning_rate` is the peak rate in force (the optimizer's default when none was set)."""
    if state is None:
        return {}
    from dataclasses import asdict

    config = state.train_config
    summary = {"step": state.step,
               "epoch": state.epoch_float if state.epoch_float is not None else state.epoch,
               "best_val_loss": state.best_val_loss, "time": state.time,
               "learning_rate": config.base_lr if config else None,
               "train_config": asdict(config) if config else None}
    return {k: v for k, v in summary.items() if v is not None}


@cli.command("info")
@_CKPT_ARG
@_FORMAT
@_OUT_DIR
def info_command(target, fmt, out_dir):
    """Show a checkpoint's model, vocabulary and training state.

    The model's config and parameter count, the file's format, the characters it knows,
    and the steps, epochs, time, best validation loss and training options of its run.
    RUN|CKPT as for `charrnn sample` (default: the newest run).

    \b
    Examples:
      charrnn info                                    the newest run
      charrnn info shakespeare --format json
      charrnn info checkpoints/shakespeare/latest.npz
    """
    import math

    from charrnn import checkpoint, ui
    from charrnn.data import format_chars

    path, ckpt = _load_checkpoint(target, out_dir)
    meta = checkpoint.read_meta(path)
    training, state = _training_summary(ckpt.training), ckpt.training
    info = {
        "checkpoint": str(path),
        "file_size": path.stat().st_size,
        "format_version": meta.get("format_version"),
        "charrnn_version": meta.get("charrnn_version"),
        "config": ckpt.config.to_json(),
        "dtype": ckpt.model.dtype.name,
        "num_params": int(ckpt.model.num_params),
        "vocab_size": ckpt.vocab.size,
        "chars": ckpt.vocab.chars,
        "training": training,
    }
    if fmt == "json":
        _echo_json(info)
        return
    c, best = ckpt.config, training.get("best_val_loss")
    fields = [
        ("checkpoint", path),
        ("file", f"{ui.fmt_count(info['file_size'])}B, format {info['format_version']}, "
                 f"written by charrnn {info['charrnn_version']}"),
        ("model", f"{c.cell}, {c.num_layers} layer(s) x {c.hidden_size} units, "
                  f"dropout {c.dropout:g}, {info['dtype']}"),
        ("parameters", f"{info['num_params']:,}"),
        ("vocabulary", f"{ckpt.vocab.size} characters"),
        ("characters", format_chars(ckpt.vocab.chars, quoted=False)),
        ("steps", ui.fmt_int(training.get("step"))),
        ("epochs", ui.fmt_float(training.get("epoch"), 2)),
        ("best val loss", "-" if best is None else
            f"{best:.4f} nats/char ({best / math.log(2):.4f} bits/char)"),
        ("training time", ui.fmt_duration(training.get("time"))),
    ]
    if "train_config" in training:
        options = {**training["train_config"], "learning_rate": training["learning_rate"]}
        fields.append(("train config", ", ".join(f"{k}={v}" for k, v in options.items())))
    _print_fields(fields)


cli.add_command(serve_command(_OUT_DIR, _complete_runs))  # charrnn/cli_serve.py
