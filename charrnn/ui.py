"""Presentation: rich tables and panels of runs, number formatting, and the live progress of
`charrnn train` (the charts of training curves are in `charrnn.charts`).

Everything here builds rich renderables or prints them to a `Console` the caller passes in;
rich turns colour off by itself for `NO_COLOR` and for output that is not a terminal.
"""

from __future__ import annotations

import math
from datetime import datetime

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from charrnn import terminal
from charrnn.jsonvalues import printable
from charrnn.units import DIGITS, bits

STATUS_STYLES = {
    "running": "bold green",
    "finished": "blue",
    "interrupted": "yellow",
    "diverged": "magenta",
    "crashed": "red",
}


def make_console(stderr: bool = False) -> Console:
    """A Console on stdout (or stderr) that honours NO_COLOR and plain, non-terminal output."""
    return Console(stderr=stderr, highlight=False)


def packed(items, width: int, lead: Text | None = None, gap: int = 3) -> list[Text]:
    """`items` (Texts that must not be broken, e.g. a legend's swatch and its label) laid out
    in lines of at most `width` cells, `gap` spaces apart, after `lead` (a title: alone on
    its line(s), which rich wraps at spaces, when no item fits beside it)."""
    lines, line = [], Text() if lead is None else lead.copy()
    for item in items:
        sep = " " * gap if line.plain.strip() else ""
        if line.plain.strip() and line.cell_len + len(sep) + item.cell_len > width:
            lines.append(line)
            line, sep = Text(), ""
        line.append(sep)
        line.append_text(item)
    lines.append(line)
    for text in lines:
        text.rstrip()
    return lines


# ----------------------------------------------------------------------------- numbers


def fmt_count(n) -> str:
    """805441 -> '805k', 1234567 -> '1.23M', 950 -> '950'."""
    if n is None:
        return "-"
    n = float(n)
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            value = n / size
            digits = 0 if value >= 100 else 1 if value >= 10 else 2
            return f"{value:.{digits}f}".rstrip("0").rstrip(".") + suffix
    return f"{n:.0f}"


def fmt_duration(seconds, compact: bool = False) -> str:
    """45 -> '45s', 724 -> '12m 04s', 11520 -> '3h 12m' ('3h12m' when compact)."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    sep = "" if compact else " "
    if s < 60:
        return f"{s}s"
    if s < 3600:
        m, s = divmod(s, 60)
        return f"{m}m" if compact and s == 0 else f"{m}m{sep}{s:02d}s"
    if s < 86400:
        h, rest = divmod(s, 3600)
        m = rest // 60
        return f"{h}h" if compact and m == 0 else f"{h}h{sep}{m:02d}m"
    d, rest = divmod(s, 86400)
    return f"{d}d{sep}{rest // 3600}h"


def fmt_float(value, digits: int = 3) -> str:
    """2.5 -> '2.500'; beyond a million in 3 significant digits ('1.23e+07'), so that no
    number is wider than a table's column."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.3g}"


def fmt_when(when: datetime | None, short: bool = False) -> str:
    """A start time in the local time zone, to the minute; `short`: 'MM-DD HH:MM' this year,
    just the date in other years."""
    if when is None:
        return "-"
    if when.tzinfo is not None:
        when = when.astimezone()
    if short:
        return when.strftime("%m-%d %H:%M" if when.year == datetime.now().year else "%Y-%m-%d")
    return when.strftime("%Y-%m-%d %H:%M")


def fmt_int(value) -> str:
    return "-" if value is None else f"{value:,}"


def plural(n, word: str) -> str:
    """'1 step', '2,805 steps'."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


# ----------------------------------------------------------------------------- runs


# (header, justify, value of a RunInfo), in display order; the table drops columns in
# DROP_ORDER, one at a time, until it fits the width it is given.
RUN_COLUMNS = (
    ("run", "left", lambda r: Text(printable(r.name), style="bold")),
    ("status", "left", lambda r: Text(r.status, style=STATUS_STYLES.get(r.status, "dim"))),
    ("model", "left", lambda r: Text(printable(r.size or "-"))),
    ("params", "right", lambda r: fmt_count(r.num_params)),
    ("steps", "right", lambda r: fmt_int(r.steps)),
    ("epochs", "right", lambda r: fmt_float(r.epochs, 1)),
    ("val\nnats", "right", lambda r: Text(fmt_float(r.best_val_loss), style="bold")),
    ("val\nbpc", "right", lambda r: fmt_float(r.best_val_bpc)),
    ("train\nloss", "right", lambda r: fmt_float(r.last_train_loss)),
    ("chars/s", "right", lambda r: fmt_count(r.chars_per_sec)),
    ("time", "right", lambda r: fmt_duration(r.train_time, compact=True)),
    ("started", "right", lambda r: fmt_when(r.started_at, short=True)),
)
DROP_ORDER = ("started", "params", "chars/s", "epochs", "val\nbpc", "time", "model")


class RunsTable:
    """A table of `RunInfo`s, one row each in the order given, as wide as the terminal allows:
    best validation loss in nats/char and bits/char, last train loss, median recent chars/s."""

    def __init__(self, runs, title: str | None = None):
        self.runs = list(runs)
        self.title = title

    def table(self, dropped=()) -> Table:
        table = Table(title=self.title, title_justify="left", header_style="bold", box=None,
                      pad_edge=False, padding=(0, 1))
        columns = [c for c in RUN_COLUMNS if c[0] not in dropped]
        names = max((len(r.name) for r in self.runs), default=3)
        for header, justify, _ in columns:
            table.add_column(header, justify=justify, no_wrap=header != "run",
                             overflow="fold", min_width=min(names, 14) if header == "run" else None)
        for run in self.runs:
            table.add_row(*(value(run) for _, _, value in columns))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        wide = options.update_width(10_000)
        for n in range(len(DROP_ORDER) + 1):
            table = self.table(DROP_ORDER[:n])
            if Measurement.get(console, wide, table).maximum <= options.max_width:
                break
        yield table
        if n:
            left_out = ", ".join(name.replace("\n", " ") for name in DROP_ORDER[:n])
            yield Text(f"left out for want of width: {left_out} (see them in a wider "
                       "terminal, or with --format json)", style="dim")


def run_panel(run) -> Panel:
    """A panel summarising one `RunInfo`: model, data, progress, best validation loss."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()

    def add(key: str, value) -> None:  # values come from the log: no markup, no escapes
        grid.add_row(key, value if isinstance(value, Text) else Text(printable(str(value))))

    config = run.config
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    if run.size:
        params = f", {fmt_int(run.num_params)} parameters" if run.num_params else ""
        dropout = f", dropout {model['dropout']}" if model.get("dropout") else ""
        vocab = f", vocabulary {model['vocab_size']}" if model.get("vocab_size") else ""
        add("model", f"{run.size}{params}{vocab}{dropout}")
    if run.sized:
        add("size", run.sized)
    if run.corpus:
        add("corpus", terminal.shown_path(run.corpus))  # relative where shorter
    if train:
        parts = [str(train["optimizer"])] if train.get("optimizer") else []
        if train.get("learning_rate") is not None:
            parts.append(f"lr {train['learning_rate']}")
        if train.get("weight_decay"):
            parts.append(f"weight decay {train['weight_decay']}")
        if train.get("batch_size") and train.get("seq_length"):
            parts.append(f"batch {train['batch_size']} × seq {train['seq_length']}")
        if parts:
            add("training", ", ".join(parts))
    if run.steps is not None:
        progress = [plural(run.steps, "step")]
        if run.epochs is not None:
            progress.append(f"{run.epochs:.2f} epochs")
        if run.train_time is not None:
            progress.append(fmt_duration(run.train_time))
        if run.chars_per_sec is not None:
            progress.append(f"{fmt_count(run.chars_per_sec)} chars/s")
        add("progress", ", ".join(progress) + " (the run's end, latest.npz)")
    if run.best_val_loss is not None:
        at = f" at step {fmt_int(run.best_val_step)}" if run.best_val_step is not None else ""
        add("best val", Text.assemble(
            (fmt_float(run.best_val_loss), "bold"), " nats/char  ",
            (fmt_float(run.best_val_bpc), "bold"), f" bits/char{at} (best.npz)"))
    else:
        add("best val", Text("no evaluation yet", style="dim"))
    if run.last_val_loss is not None and run.last_val_step != run.best_val_step:
        at = f" at step {fmt_int(run.last_val_step)}" if run.last_val_step is not None else ""
        add("last val", f"{run.last_val_loss:.3f} nats/char  "
                        f"{bits(run.last_val_loss):.3f} bits/char{at}")
    if run.last_train_loss is not None:
        add("last train", f"{fmt_float(run.last_train_loss)} nats/char")
    started = fmt_when(run.started_at)
    if run.resumes:
        started += f" (resumed {run.resumes}×)"
    add("started", started)
    if run.engine:
        add("engine", run.engine)
    if run.end_reason:
        add("ended", run.end_reason.replace("_", " "))
    if run.last_sample:
        first = next((ln for ln in run.last_sample.splitlines() if ln.strip()), "")
        add("sample", Text(printable(first[:200]), style="italic"))
    status = Text(run.status, style=STATUS_STYLES.get(run.status, "dim"))
    if run.status == "running" and run.pid:
        status.append(f" (pid {run.pid})")
    title = Text.assemble((printable(run.name), "bold"), " · ", status)
    return Panel(grid, title=title, title_align="left", expand=False)


# ----------------------------------------------------------------------------- training progress


class TrainProgress:
    """The live view of `charrnn train` on stderr: a header, one tqdm bar and lines written
    above it, all fitting an 80-column terminal.

    The header is a few short lines, wrapped at word boundaries to the terminal's width. The
    bar counts steps when the run has a step or epoch budget (its count is the step), and
    seconds when it only has a time limit (then the step is in the postfix); the postfix shows
    the smoothed loss and chars/s. Each evaluation prints its line above the bar (the same
    line as without a terminal), and the bar says "evaluating…" while it runs. When stderr is
    not a terminal the bar is off.
    Implements the trainer's reporter interface (`charrnn.train.Reporter`).
    """

    def __init__(self, file=None):
        import sys

        self.file = file or sys.stderr
        self.bar = None
        self.loss = None  # exponential moving average of the training loss
        self.speed = None
        self.by_time = False
        self._restore_echo = None

    def start(self, info):
        from tqdm import tqdm

        cfg = info["config"]
        verb = "resuming" if info["resumed"] else "training"
        step_budgets = [b for b in (info["max_steps"], info["epochs"] and math.ceil(
            info["epochs"] * info["steps_per_epoch"])) if b]
        budget = [plural(info["max_steps"], "step") if info["max_steps"] else "",
                  f"{info['epochs']:g} epochs" if info["epochs"] else "",
                  fmt_duration(info["time_limit"]) if info["time_limit"] else ""]
        self.header([
            f"{verb} run '{info['name']}' in {terminal.shown_path(info['run_dir'])}",
            f"model   {cfg.cell} {cfg.num_layers}×{cfg.hidden_size}, "
            f"{fmt_count(info['num_params'])} parameters, batch {cfg.batch_size} × "
            f"{cfg.seq_length} characters",
            *([f"size    {info['sizing']}"] if info.get("sizing") else []),
            *([f"engine  {info['engine']}"] if info.get("engine") else []),
            f"budget  {' or '.join(b for b in budget if b)}"
            + (f", from step {info['step']:,}" if info["step"] else ""),
            f"data    {info['description']}",
        ])
        total, initial = None, info["step"]
        if step_budgets:
            total = min(step_budgets)
        elif info["time_limit"]:
            self.by_time = True
            total, initial = math.ceil(info["time_limit"]), int(info["elapsed"])
        fmt = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {elapsed}<{remaining}{postfix}"
        if self.by_time:
            fmt = "{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"
        self.bar = tqdm(total=total, initial=min(initial, total or initial), file=self.file,
                        dynamic_ncols=True, disable=None, unit="step", desc="train",
                        bar_format=fmt, mininterval=0.5, leave=True)
        self.step = info["step"]
        if not self.bar.disable:
            self._restore_echo = terminal.quiet_control_echo()

    def header(self, lines):
        """Print `lines`, each wrapped at word boundaries to the terminal's width."""
        for line in lines:
            self.message(terminal.wrap(line, terminal.columns(self.file), indent="        "))

    def update(self, step, loss, chars_per_sec, lr, elapsed):
        self.loss = loss if self.loss is None or step < 2 else 0.95 * self.loss + 0.05 * loss
        self.speed = chars_per_sec if self.speed is None else 0.9 * self.speed + 0.1 * chars_per_sec
        self.step = step
        if self.bar is None or self.bar.disable:
            return
        self.bar.set_postfix_str(self._postfix(), refresh=False)
        if self.by_time:
            self.bar.update(max(0, min(int(elapsed), self.bar.total) - self.bar.n))
        else:
            self.bar.update(max(0, step - self.bar.n))

    def _postfix(self):
        parts = [f"step {self.step:,}"] if self.by_time else []
        parts += [f"loss {self.loss:.3f}", f"{fmt_count(self.speed)} chars/s"]
        return " ".join(parts)

    def evaluating(self, step):
        if self.bar is not None and not self.bar.disable:
            self.bar.set_postfix_str("evaluating…", refresh=True)

    def evaluated(self, step, val_loss, best):
        loss = f"{self.loss:.3f}" if self.loss is not None else "-"
        speed = fmt_count(self.speed) if self.speed is not None else "-"
        self.message(f"step {step:,}: train loss {loss}, val loss {val_loss:.{DIGITS}f} "
                     f"({bits(val_loss):.{DIGITS}f} bits/char), {speed} chars/s")
        if self.bar is not None and not self.bar.disable and self.loss is not None:
            self.bar.set_postfix_str(self._postfix(), refresh=True)

    def message(self, text):
        """A line for the terminal, its control characters escaped (a path from CHARRNN_HOME
        or a corpus name may hold escape sequences), wrapped at spaces to its width."""
        from tqdm import tqdm

        tqdm.write(terminal.wrap(printable(text), terminal.columns(self.file), indent="        "),
                   file=self.file)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        if self._restore_echo is not None:
            self._restore_echo()
            self._restore_echo = None
