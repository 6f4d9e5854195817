"""`charrnn logs`: the runs under --out-dir, or one run's summary and loss curves."""

import os

import click

from charrnn.cli.base import _OUT_DIR, _complete_runs
from charrnn.runs import OUT_DIR_ENV


@click.command("logs")
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
def logs_command(run_names, out_dir, x_axis, show_lr, show_grad_norm, height, follow, fmt, plot):
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

    from charrnn import charts, runlog, runs, ui
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
        text = runlog.records_json(rows) if fmt == "json" else runlog.records_csv(rows)
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
                contents = runlog.read_log_with_problems(run_dir / runlog.LOG_NAME)
                if contents.bad_lines and run_dir not in warned:
                    warned.add(run_dir)
                    click.echo(f"warning: skipped {contents.bad_lines} unreadable line(s) in "
                               f"{printable(str(run_dir / runlog.LOG_NAME))}", err=True)
                infos.append(runs.summarize(run_dir, contents))
                records.append((run_dir.name, contents.records))
            return infos, records

        infos, records = load()
        if fmt != "table":
            rows = [
                {"run": name, **r} if len(records) > 1 else r
                for name, recs in records for r in runlog.metric_records(recs)
            ]
            emit(rows)
            return
        if plot:
            specs = charts.chart_specs(records, x_axis, show_lr, show_grad_norm, height)
            charts.save_image(plot, specs, x_axis, title=", ".join(n for n, _ in records))
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
