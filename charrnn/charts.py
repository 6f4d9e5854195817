"""Charts of training curves: braille line charts in the terminal and the same charts as an
image file (PNG, SVG, PDF, ...).

What to draw (`ChartSpec`: a title and its `Series`) is computed once from the runs' log
records; `LineChart` renders it with rich, `save_image` with matplotlib (an optional extra).
`runs_view` is what `charrnn logs RUN...` shows: the runs' summary, then their charts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.text import Text

from charrnn import files
from charrnn.errors import CharRNNError
from charrnn.jsonvalues import is_finite_number, printable
from charrnn.ui import RunsTable, fmt_count, fmt_duration, run_panel

# Distinct colours that read on dark and light backgrounds (rich downgrades them as needed).
PALETTE = ("#4e9cff", "#ff9f3a", "#3fc95a", "#ff5c5c", "#b48cff", "#d4b000", "#ff6fcf", "#22c3d6")
SOLID_MARKERS = "●■▲◆★✚✖♦"  # validation points, one glyph per run
HOLLOW_MARKERS = "○□△◇☆+×◊"  # train curves without colour, one glyph per run


@dataclass
class Series:
    """One curve of a chart."""

    label: str
    xs: list[float]
    ys: list[float]
    color: str
    marker: str | None = None  # a glyph drawn at each point (thinned when crowded)
    plain_marker: str | None = None  # a glyph drawn now and then when there is no colour
    binned: bool = False  # average the points that fall in one dot column (noisy curves)


def nice_step(raw: float, time_axis: bool = False) -> float:
    """The smallest 'round' step >= raw: 1, 2, 2.5, 5 × 10^k (or whole seconds/minutes/hours)."""
    if raw <= 0:
        return 1.0
    if time_axis and raw >= 1:
        for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
                     21600, 43200, 86400):
            if step >= raw:
                return float(step)
        return 86400.0 * math.ceil(raw / 86400)
    exp = math.floor(math.log10(raw))
    for f in (1, 2, 2.5, 5, 10):
        if f * 10 ** exp >= raw * (1 - 1e-9):
            return f * 10 ** exp
    return 10.0 ** (exp + 1)  # pragma: no cover


def _ticks(lo: float, hi: float, count: int, time_axis: bool = False) -> list[float]:
    step = nice_step((hi - lo) / max(1, count), time_axis)
    first = math.ceil(lo / step - 1e-9) * step
    n = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [first + i * step for i in range(max(0, n))]


def _number_label(value: float, step: float) -> str:
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.2g}"
    digits = 0
    while digits < 6 and abs(round(step, digits) - step) > step * 1e-6:
        digits += 1
    return f"{value:.{digits}f}"


def _power_label(exponent: float) -> str:
    """The label of a log-scale tick at 10^exponent, m × 10^k with m = 1, 2 or 5: 0.01, 0.002,
    100, or 1e-5, 5e-4 further out."""
    k = math.floor(exponent + 1e-9)
    m = round(10.0 ** (exponent - k))
    return f"{m * 10.0 ** k:g}" if -3 <= k <= 4 else f"{m}e{k}"


def _log_ticks(lo: int, hi: int) -> list[float]:
    """log10 of the ticks of a log axis from 10^lo to 10^hi: the powers of 10, and 2 and 5
    times them when the axis spans at most two decades, so that a curve that falls from 0.004
    to 0.0003 is read against 0.005, 0.002, ..., 0.0002 rather than 0.001 alone."""
    marks = (1, 2, 5) if hi - lo <= 2 else (1,)
    return [k + math.log10(m) for k in range(lo, hi + 1) for m in marks
            if k + math.log10(m) <= hi + 1e-9]


def _log10_series(s: Series) -> Series:
    """`s` with log10 of its y values, leaving out the points that have none (y <= 0)."""
    points = [(x, math.log10(y)) for x, y in zip(s.xs, s.ys) if y > 0]
    return replace(s, xs=[x for x, _ in points], ys=[y for _, y in points])


def _step_label(value: float, step: float) -> str:
    return fmt_count(value) if abs(value) >= 1000 else f"{value:.0f}"


def _time_label(value: float, step: float) -> str:
    return "0" if value == 0 else fmt_duration(value, compact=True)


_BRAILLE_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [row % 4][col % 2]


class LineChart:
    """A line chart drawn with braille dots (2×4 per character), with labelled axes and legend.

    A rich renderable: it takes the width it is given. `x_kind` is "step" or "time" (seconds,
    labelled 5m, 1h30m, ...); several series get their own colours and, without colour, markers.
    `log_y` draws the y axis on a log scale (ticks at powers of 10; y <= 0 is left out);
    `x_name` names the x axis (default: step, or training time).
    """

    def __init__(self, series: list[Series], title: str = "", x_kind: str = "step",
                 height: int = 14, log_y: bool = False, x_name: str | None = None):
        self.log_y, self.x_name = log_y, x_name
        if log_y:
            series = [_log10_series(s) for s in series]
        self.series = [s for s in series if s.xs]
        self.title = title
        self.x_kind = x_kind
        self.height = max(4, height)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.title:
            yield Text(self.title, style="bold")
        if not self.series:
            yield Text("  no data logged yet", style="dim")
            return
        color = console.color_system is not None and not console.no_color
        yield from self._lines(options.max_width, color, options.ascii_only)

    def _lines(self, width: int, color: bool, ascii_only: bool):
        H = self.height
        xs = [x for s in self.series for x in s.xs]
        ys = [y for s in self.series for y in s.ys]
        xlo, xhi = min(xs), max(xs)
        if 0 < xlo <= 0.1 * xhi:  # start at 0 when the data nearly does
            xlo = 0.0
        if xhi == xlo:
            xhi = xlo + 1
        ylo, yhi = min(ys), max(ys)
        if yhi == ylo:
            pad = abs(ylo) * 0.05 or 1.0
            ylo, yhi = ylo - pad, yhi + pad
        ystep = nice_step((yhi - ylo) / max(2, H // 2))
        if self.log_y:  # whole powers of 10
            ystep = float(math.ceil(ystep))
        ylo = math.floor(ylo / ystep + 1e-9) * ystep
        yhi = math.ceil(yhi / ystep - 1e-9) * ystep
        if self.log_y and ystep == 1:
            yticks = _log_ticks(round(ylo), round(yhi))
        elif self.log_y:
            yticks = [ylo + i * ystep for i in range(round((yhi - ylo) / ystep) + 1)]
        else:
            yticks = _ticks(ylo, yhi, max(2, H // 2))
        ylabels = [_power_label(v) if self.log_y else _number_label(v, ystep) for v in yticks]
        lw = max(len(s) for s in ylabels)
        W = max(10, width - lw - 2)
        # a whole number of rows between ticks, so that each tick sits on its own row
        per_tick = max(1, round((H - 1) / max(1, len(yticks) - 1)))
        H = per_tick * max(1, len(yticks) - 1) + 1
        DW, DH = 2 * W, 4 * H

        def col(x):
            return round((x - xlo) / (xhi - xlo) * (DW - 1))

        def row(y):  # the dot row; ylo and yhi fall in the middle of the last and first rows
            return round((yhi - y) / (yhi - ylo) * (H - 1) * 4 + 1.5)

        bits = [[0] * W for _ in range(H)]
        owner = [[-1] * W for _ in range(H)]
        marks: dict[tuple[int, int], tuple[str, int]] = {}

        def dot(c, r, k):
            if 0 <= c < DW and 0 <= r < DH:
                bits[r // 4][c // 2] |= _BRAILLE_BITS[r % 4][c % 2]
                owner[r // 4][c // 2] = k

        for k, s in enumerate(self.series):
            points = [(col(x), y) for x, y in zip(s.xs, s.ys)]
            if s.binned:
                bins: dict[int, list[float]] = {}
                for c, y in points:
                    bins.setdefault(c, []).append(y)
                points = [(c, sum(v) / len(v)) for c, v in sorted(bins.items())]
            pts = [(c, row(y)) for c, y in points]
            for (c0, r0), (c1, r1) in zip(pts, pts[1:]):
                n = max(abs(c1 - c0), abs(r1 - r0), 1)
                for i in range(n + 1):
                    dot(round(c0 + (c1 - c0) * i / n), round(r0 + (r1 - r0) * i / n), k)
            if len(pts) == 1:
                dot(*pts[0], k)
            glyph, gap = s.marker, 2
            if glyph is None and not color and s.plain_marker:
                glyph, gap = s.plain_marker, max(4, W // 8)
            if glyph:
                last = -gap
                offset = (k * 3) % gap if s.marker is None else 0
                for c, r in pts:
                    cell = (r // 4, c // 2)
                    if cell[1] - last >= gap and (s.marker or cell[1] >= offset):
                        marks[cell] = (glyph, k)
                        last = cell[1]

        tick_rows = {}
        for value, label in zip(yticks, ylabels):
            tick_rows.setdefault(row(value) // 4, label)
        style_of = [s.color if color else "" for s in self.series]
        for r in range(H):
            line = Text(f"{tick_rows[r]:>{lw}} ┤" if r in tick_rows else " " * lw + " │",
                        style="dim")
            for c in range(W):
                if (r, c) in marks:
                    glyph, k = marks[(r, c)]
                    line.append(glyph, style=style_of[k])
                elif bits[r][c]:
                    ch = "•" if ascii_only else chr(0x2800 + bits[r][c])
                    line.append(ch, style=style_of[owner[r][c]])
                else:
                    line.append(" ")
            yield line

        # x axis: tick marks, labels under them, then the axis name
        xstep_count = max(2, W // 14)
        xticks = _ticks(xlo, xhi, xstep_count, self.x_kind == "time")
        xstep = xticks[1] - xticks[0] if len(xticks) > 1 else 1.0
        fmt = _time_label if self.x_kind == "time" else _step_label
        axis = ["─"] * W
        left = lw + 2  # the axis starts after the y labels and " └"
        labels = [" "] * (left + W + 2)  # a label centred under a tick, in line columns
        end = -1
        for value in xticks:
            c = col(value) // 2
            if not 0 <= c < W:
                continue
            axis[c] = "┬"
            label = fmt(value, xstep)
            start = min(max(0, left + c - len(label) // 2), len(labels) - len(label))
            if start > end:
                labels[start:start + len(label)] = label
                end = start + len(label)
        yield Text(" " * lw + " └" + "".join(axis), style="dim")
        name = self.x_name or ("time (training)" if self.x_kind == "time" else "step")
        yield Text("".join(labels).rstrip(), style="dim")
        yield Text(f"{name:^{W + lw + 2}}".rstrip(), style="dim")
        yield self._legend(color)

    def _legend(self, color: bool) -> Text:
        legend = Text(" ")
        for s in self.series:
            glyph = s.marker or (None if color else s.plain_marker)
            line = f"─{glyph}─" if glyph else "━━━"
            legend.append(line, style=s.color if color else "")
            legend.append(f" {s.label}   ")
        return legend


def run_series(runs: list[tuple[str, list[dict]]], key: str, x: str = "step",
               event: str = "train", label: str = "") -> list[Series]:
    """One series of `key` from the `event` records of each run, in that run's colour."""
    out = []
    for i, (name, records) in enumerate(runs):
        xs, ys = _xy(records, event, key, x)
        text = f"{printable(name)} {label}".strip() if len(runs) > 1 else (label or key)
        out.append(Series(text, xs, ys, PALETTE[i % len(PALETTE)], binned=True,
                          plain_marker=HOLLOW_MARKERS[i % len(HOLLOW_MARKERS)]
                          if len(runs) > 1 else None))
    return out


def _xy(records, event, key, x):
    xs, ys = [], []
    for r in records:
        if r.get("event") != event:
            continue
        xv, yv = r.get(x), r.get(key)
        if is_finite_number(xv) and is_finite_number(yv):
            xs.append(float(xv))
            ys.append(float(yv))
    return xs, ys


def loss_series(runs: list[tuple[str, list[dict]]], x: str = "step") -> list[Series]:
    """Train loss (averaged per dot column) and validation loss (with markers) of each run.

    One run: train and val in two colours. Several: each run in its own colour, its val
    curve marked with that run's glyph.
    """
    out = []
    trains = run_series(runs, "loss", x, label="train")
    for i, ((name, records), train) in enumerate(zip(runs, trains)):
        several = len(runs) > 1
        xs, ys = _xy(records, "eval", "val_loss", x)
        out.append(train)
        out.append(Series(f"{printable(name)} val" if several else "val", xs, ys,
                          train.color if several else PALETTE[1],
                          marker=SOLID_MARKERS[i % len(SOLID_MARKERS)]))
    return out


@dataclass
class ChartSpec:
    """What to draw, independent of where: the terminal (`LineChart`) or an image file (`save_image`)."""

    title: str
    series: list[Series]
    height: int = 14
    log_y: bool = False  # a log-scale y axis (the learning rate, which decays by decades)


def chart_specs(runs: list[tuple[str, list[dict]]], x: str = "step", lr: bool = False,
                grad_norm: bool = False, height: int = 14) -> list[ChartSpec]:
    """The loss chart of the runs, then the learning rate and gradient norm if asked for."""
    specs = [ChartSpec("loss (nats/char)", loss_series(runs, x), height)]
    if lr:
        specs.append(ChartSpec("learning rate (log scale)",
                               run_series(runs, "lr", x, label="lr"), max(4, height // 2),
                               log_y=True))
    if grad_norm:
        specs.append(ChartSpec("gradient norm (before clipping)",
                               run_series(runs, "grad_norm", x, label="grad norm"),
                               max(4, height // 2)))
    return specs


def runs_view(infos, runs: list[tuple[str, list[dict]]], x: str = "step", lr: bool = False,
              grad_norm: bool = False, height: int = 14) -> Group:
    """What `charrnn logs RUN...` shows: the summary (a panel, or a table for several runs)
    and the charts."""
    parts = [run_panel(infos[0]) if len(infos) == 1 else RunsTable(infos)]
    for spec in chart_specs(runs, x, lr, grad_norm, height):
        parts.append(Text(""))
        parts.append(LineChart(spec.series, spec.title, x, spec.height, log_y=spec.log_y))
    return Group(*parts)


IMAGE_FORMATS = ("png", "svg", "svgz", "pdf", "eps", "ps", "jpg", "jpeg", "tif", "tiff",
                 "webp", "pgf")  # what matplotlib writes, by file extension


def check_image_path(path) -> None:
    """Raise CharRNNError, before anything is drawn, unless an image can be written at `path`:
    an extension matplotlib knows, in an existing, writable folder."""
    import os

    path = Path(path)
    if path.suffix.lower().lstrip(".") not in IMAGE_FORMATS:
        raise CharRNNError(f"cannot write the charts to {path}: use one of the extensions "
                           f"{', '.join('.' + f for f in IMAGE_FORMATS[:4])}, ...")
    folder = path.parent
    if not folder.is_dir():
        raise CharRNNError(f"cannot write the charts to {path}: the folder {folder} does not "
                           "exist.")
    if not os.access(folder, os.W_OK):
        raise CharRNNError(f"cannot write the charts to {path}: the folder {folder} is not "
                           "writable.")
    files.check_target(path, "chart image")


def save_image(path, specs: list[ChartSpec], x: str = "step", title: str = "") -> None:
    """Draw the charts as one image with matplotlib (imported here: it is an optional extra),
    titled `title` (the runs' names); its format follows the extension (`check_image_path`).
    CharRNNError, in one sentence, if the file cannot be written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(specs), 1, figsize=(9, 3.2 + 2.2 * len(specs)), squeeze=False,
                             sharex=True, gridspec_kw={"height_ratios": [s.height for s in specs]})
    for ax, spec in zip(axes[:, 0], specs):
        for s in spec.series:
            if not s.xs:
                continue
            if s.marker:
                ax.plot(s.xs, s.ys, color=s.color, marker="o", markersize=3, label=s.label)
            else:
                ax.plot(s.xs, s.ys, color=s.color, linewidth=1, alpha=0.85, label=s.label)
        ax.set_title(spec.title, loc="left", fontsize=10)
        if spec.log_y:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel("training time (s)" if x == "time" else "step")
    if title:
        fig.suptitle(printable(title), fontsize=11)
    fig.tight_layout()
    try:
        with files.atomic_writer(path, "chart image") as f:
            fig.savefig(f, dpi=120, format=Path(path).suffix.lower().lstrip("."))
    except ValueError as exc:
        raise CharRNNError(f"cannot write the charts to {path}: "
                           f"{getattr(exc, 'strerror', None) or exc}.") from None
    finally:
        plt.close(fig)
