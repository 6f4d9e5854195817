"""The `charrnn` command line: parse options, call the library, turn errors into messages.

Library modules (and numpy with them) are imported inside the commands, so that
`charrnn --help` stays fast.
"""

import math

import click

from charrnn import __version__
from charrnn.errors import CharRNNError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}


class CharRNNGroup(click.Group):
    """A click group that shows a library `CharRNNError` as one line on stderr and exits 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CharRNNError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=CharRNNGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="charrnn")
def cli():
    """Train character-level RNN, LSTM and GRU language models on any text, and sample from them.

    \b
    charrnn train corpus.txt        train on your text (Ctrl-C saves and stops)
    charrnn sample --temp 0.8       generate text from the newest run
    charrnn logs                    list runs; `charrnn logs RUN` plots its curves
    """


# ----------------------------------------------------------------------------- charrnn logs


@cli.command("logs")
@click.argument("run_names", nargs=-1, metavar="[RUN]...")
@click.option("--out-dir", default="checkpoints", type=click.Path(file_okay=False),
              help="Directory holding the runs.")
@click.option("--x", "x_axis", type=click.Choice(["step", "time"]), default="step",
              help="What the charts' x axis shows: training steps or training time.")
@click.option("--lr", "show_lr", is_flag=True, help="Also chart the learning rate.")
@click.option("--grad-norm", "show_grad_norm", is_flag=True,
              help="Also chart the gradient norm (before clipping).")
@click.option("--height", type=click.IntRange(4, 200), default=14,
              help="Height of the loss chart in lines.")
@click.option("-f", "--follow", is_flag=True,
              help="Redraw every second as training appends to the log, until Ctrl-C.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              help="json/csv: the train and eval records of the RUNs (without RUN: the run "
                   "summaries) on stdout, for pandas and friends.")
@click.option("--plot", type=click.Path(dir_okay=False), metavar="FILE.png",
              help="Also write the charts to a PNG image (needs matplotlib).")
def logs(run_names, out_dir, x_axis, show_lr, show_grad_norm, height, follow, fmt, plot):
    """List runs; with RUNs, show their summary and loss curves in the terminal.

    A RUN is a name under --out-dir or a path to a run directory. Several RUNs are
    overlaid in one chart, each in its own colour.

    \b
    charrnn logs                          every run, newest first
    charrnn logs shakespeare              summary and train/val loss curves
    charrnn logs a b --x time             compare two runs against training time
    charrnn logs shakespeare -f --lr      follow a training run, with its learning rate
    charrnn logs a --format csv > a.csv   the train and eval records, as data
    charrnn logs a --plot a.png           the same charts as an image
    """
    import os
    import time

    from charrnn import runs, ui

    if follow and fmt != "table":
        raise click.UsageError("--follow works only with --format table.")
    if plot and not run_names:
        raise click.UsageError("--plot needs a RUN to draw.")
    if plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise click.ClickException(
                "--plot needs matplotlib; install it with: pip install 'charrnn[plot]'"
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
            click.echo(f"no runs in {out_dir}/ yet{missing}; start one with: "
                       "charrnn train corpus.txt", err=True)
            return

        def render(first=None):
            return ui.RunsTable(runs.list_runs(out_dir) if first is None else first)

        first = infos
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
                               f"{run_dir / runs.LOG_NAME}", err=True)
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
            ui.save_png(plot, ui.chart_specs(records, x_axis, show_lr, show_grad_norm, height),
                        x_axis)
            click.echo(f"wrote the charts to {plot}", err=True)

        def render(first=None):
            return ui.runs_view(*(first or load()), x=x_axis, lr=show_lr,
                                grad_norm=show_grad_norm, height=height)

        first = (infos, records)
    if not follow:
        out.print(render(first))
        return
    from rich.live import Live

    try:
        with Live(render(first), console=out, auto_refresh=False) as live:
            while True:
                time.sleep(1.0)
                live.update(render(), refresh=True)
    except KeyboardInterrupt:
        pass


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


DEFAULT_TIME_LIMIT = 600.0  # a new run with no budget trains for 10 minutes


def _train_options(f):
    """The TrainConfig options of `charrnn train`; defaults shown are TrainConfig's own."""
    pos_int, nonneg_int = click.IntRange(min=1), click.IntRange(min=0)
    options = [
        click.option("--cell", type=click.Choice(["lstm", "gru", "rnn"]), default="lstm", help="Recurrent cell."),
        click.option("--hidden-size", type=click.IntRange(1, 65536), default=256, help="Units per layer."),
        click.option("--num-layers", type=click.IntRange(1, 64), default=2, help="Stacked recurrent layers."),
        click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.1,
                     help="Dropout between layers and before the output."),
        click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32",
                     help="Floating-point precision."),
        click.option("--seq-length", type=pos_int, default=100, help="Characters per BPTT window."),
        click.option("--batch-size", type=pos_int, default=64, help="Parallel streams per step."),
        click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1,
                     help="Last part of the text held out for validation."),
        click.option("--optimizer", type=click.Choice(["adam", "rmsprop", "adagrad", "sgd"]),
                     default="adam", help="Optimizer."),
        click.option("--learning-rate", "--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True),
                     default=None, help="Peak learning rate [default: 2e-3 for adam and rmsprop]."),
        click.option("--lr-schedule", type=click.Choice(["cosine", "constant"]), default="cosine",
                     help="After warm-up: cosine decay over the budget, or constant."),
        click.option("--warmup-steps", type=nonneg_int, default=100, help="Linear learning-rate warm-up."),
        click.option("--grad-clip", type=click.FloatRange(min=0), default=5.0,
                     help="Clip the global gradient norm to this (0 = off)."),
        click.option("--max-steps", type=pos_int, default=None, help="Stop after this many steps in all."),
        click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Stop after this many passes over the text."),
        click.option("--time-limit", type=Duration(), default=None,
                     help="Stop after this much training time, e.g. 90s, 10m, 1h "
                     "[default: 10m when no other budget is given]."),
        click.option("--patience", type=pos_int, default=None,
                     help="Stop after this many evaluations without improvement."),
        click.option("--eval-every", type=pos_int, default=200, help="Steps between validations."),
        click.option("--checkpoint-every", type=pos_int, default=200, help="Steps between latest.npz saves."),
        click.option("--sample-every", type=nonneg_int, default=0, help="Steps between printed samples (0 = never)."),
        click.option("--seed", type=click.IntRange(min=0), default=None, help="Random seed [default: random, logged]."),
        click.option("--threads", type=click.IntRange(1, 256), default=None,
                     help="Worker threads per step [default: one per core]."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@cli.command("train")
@click.argument("corpus", required=False, type=click.Path(dir_okay=True))
@_train_options
@click.option("--out-dir", default="checkpoints", type=click.Path(file_okay=False),
              help="Directory holding the runs.")
@click.option("--name", default=None, help="Run name [default: from the corpus file name].")
@click.option("--resume", default=None, metavar="RUN|CKPT", help="Continue a run from its directory or a checkpoint.")
@click.option("--encoding", default="utf-8", help="Text encoding of CORPUS.")
@click.option("-q", "--quiet", is_flag=True, help="Show nothing but errors.")
@click.pass_context
def train_command(ctx, corpus, out_dir, name, resume, encoding, quiet, **options):
    """Train a model on a text file (without CORPUS: on a built-in demo corpus).

    Checkpoints and a log go to OUT_DIR/NAME/. Ctrl-C saves and stops; --resume continues
    exactly where the run stopped.

    \b
    Examples:
      charrnn train corpus.txt
      charrnn train corpus.txt --cell gru --hidden-size 512 --time-limit 1h
      charrnn train --resume checkpoints/corpus
    """
    from click.core import ParameterSource

    from charrnn.train import train
    from charrnn.ui import TrainProgress, fmt_duration
    from charrnn.train import Reporter

    explicit = {k: v for k, v in options.items()
                if ctx.get_parameter_source(k) not in (ParameterSource.DEFAULT, None)}
    reporter = Reporter() if quiet else TrainProgress()
    result = train(corpus, explicit, out_dir=out_dir, name=name, resume=resume, encoding=encoding,
                   reporter=reporter, default_time_limit=DEFAULT_TIME_LIMIT)
    if result.reason == "diverged":
        raise click.ClickException(result.message)
    run = result.run_dir
    if result.reason == "interrupted":
        click.echo(f"interrupted at step {result.step}; latest.npz saved. Resume with: "
                   f"charrnn train --resume {run}", err=True)
        ctx.exit(130)
    if not quiet:
        best = "no validation loss (--val-fraction 0)" if result.best_val_loss is None else (
            f"best validation loss {result.best_val_loss:.4f} nats/char "
            f"({result.best_val_loss / math.log(2):.3f} bits/char)")
        click.echo(
            f"done ({result.reason.replace('_', ' ')}) after {result.step} steps, "
            f"{result.epoch:.2f} epochs, {fmt_duration(result.elapsed)}: {best}.\n"
            f"checkpoints: {run}/best.npz, {run}/latest.npz\n"
            f"next: charrnn sample {run}",
            err=True,
        )
