"""The terminal rendering of an `Explanation`: the text with each character's background coloured
by a number (its surprise, or one unit's activation), the top-k table, the finder's units, the
gate-saturation table and the gradient-flow chart, as rich renderables.

Without colour (NO_COLOR, or output that is not a terminal) every line of text is followed by
a line of bars, ▁ to █ (digits 1-8 where the output cannot show them), one under each
character: the same scale, still readable in a file or a pipe.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

import numpy as np
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.style import Style
from rich.table import Table
from rich.text import Text

from charrnn.charts import HOLLOW_MARKERS, PALETTE, LineChart, Series
from charrnn.data import format_chars
from charrnn.explain.core import HORIZON_RATIO, SATURATION, unit_centre
from charrnn.units import DIGITS

BARS = "▁▂▃▄▅▆▇█"
ASCII_BARS = "12345678"
SHOWN = {"\n": "↵", "\t": "→", "\r": "␍", " ": " "}  # how invisible characters are drawn


@dataclass(frozen=True)
class Scale:
    """Eight buckets between edges: bucket k holds edges[k-1] <= v < edges[k] (the first and
    last are open-ended); each has a background colour (None: none) and a bar glyph."""

    edges: tuple[float, ...]  # 7 inner edges, increasing
    colors: tuple[str | None, ...]  # 8
    labels: tuple[str, ...]  # 8, what the legend says under each bucket
    title: str

    def buckets(self, values):
        """(n,) bucket indices 0..7 of `values`; NaN goes to bucket 0."""
        return np.searchsorted(np.asarray(self.edges), np.nan_to_num(values, nan=-np.inf),
                               side="right")


# YlOrRd: nothing under half a nat, dark red past 6 nats (p < 0.25%)
SURPRISE = Scale(
    edges=(0.5, 1, 1.5, 2, 3, 4, 6),
    colors=(None, "#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#b10026"),
    labels=("<0.5", "0.5", "1", "1.5", "2", "3", "4", "6+"),
    title="surprise, nats (-ln p of the character)",
)
DIVERGING = ("#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#fddbc7", "#f4a582", "#d6604d",
             "#b2182b")  # RdBu: blue below the centre, red above


def unit_scale(values, centre, title):
    """A diverging scale centred on `centre`, as wide as the farthest value from it."""
    half = float(np.max(np.abs(values - centre))) or 1.0
    edges = tuple(centre + half * k / 4 for k in range(-3, 4))
    labels = tuple(f"{centre + half * k / 4:+.2g}" for k in range(-4, 4))
    return Scale(edges, DIVERGING, labels, title)


def _foreground(color):
    """Black or white, whichever reads better on the background `color` (#rrggbb)."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "white"


def shown(ch):
    """How character `ch` is drawn in the text: invisible ones get a visible sign."""
    if ch in SHOWN:
        return SHOWN[ch]
    if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
        return "·"
    return ch


def label(ch):
    """A character as the top-k table names it: ␣ for a space, ↵ for a newline, escapes for
    other invisible ones."""
    return {" ": "␣", "\n": "↵", "\t": "→"}.get(ch) or format_chars(ch, quoted=False)


class HeatText:
    """`text` with each character's background coloured by the bucket of values[i] on `scale`,
    wrapped at the width given, newlines shown as ↵ (and kept as line breaks)."""

    def __init__(self, text, values, scale):
        self.text, self.scale = text, scale
        self.buckets = scale.buckets(values)

    def _lines(self, width):
        """Lists of (position, drawn string, cells) per displayed line."""
        line, used = [], 0
        for i, ch in enumerate(self.text):
            s = shown(ch)
            w = cell_len(s)
            if used + w > width and line:
                cut = max((k for k, (_, c, _) in enumerate(line) if c == " "), default=-1) + 1
                if cut < len(line) // 2:  # no space in the second half: a hard break
                    cut = len(line)
                yield line[:cut]
                line = line[cut:]
                used = sum(c for _, _, c in line)
            line.append((i, s, w))
            used += w
            if ch == "\n":
                yield line
                line, used = [], 0
        if line:
            yield line

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        color = console.color_system is not None and not console.no_color
        bars = ASCII_BARS if options.ascii_only else BARS
        styles = [None if c is None else Style(bgcolor=c, color=_foreground(c))
                  for c in self.scale.colors]
        for line in self._lines(max(8, options.max_width)):
            text = Text(no_wrap=True, overflow="crop")
            for i, s, _ in line:
                text.append(s, style=styles[self.buckets[i]] if color else None)
            yield text
            if not color:
                yield Text("".join(bars[self.buckets[i]] * w for i, _, w in line),
                           no_wrap=True, overflow="crop", style="dim")


class Legend:
    """The scale of a HeatText: each bucket's colour (or bar) and the value where it starts."""

    def __init__(self, scale):
        self.scale = scale

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        color = console.color_system is not None and not console.no_color
        bars = ASCII_BARS if options.ascii_only else BARS
        line = Text(f"{self.scale.title}: ", style="dim")
        for k, (c, name) in enumerate(zip(self.scale.colors, self.scale.labels)):
            if color:
                line.append("  " if c else "··", style=Style(bgcolor=c) if c else "dim")
            else:
                line.append(bars[k])
            line.append(f" {name}  ")
        yield line


HEAD_CHARS = 2000  # characters a bounded view shows from the start: about two 80×24 screens
SPAN_CONTEXT = 40  # characters shown on each side of a most surprising span


def terminal_view(e, head=HEAD_CHARS, hint="") -> Group:
    """What `charrnn explain` prints: the text coloured by surprise (or by each unit kept in
    e.units), the summary, then each analysis the Explanation holds.

    Bounded by default, so that a long text does not flood the terminal: a text longer than
    `head` characters shows its first `head` and, after them, each of the most surprising
    spans with SPAN_CONTEXT characters around it, and says how much was left out (and `hint`:
    how to see all of it); head=None shows all of it."""
    parts = [unit_view(e, u, head, hint) for u in e.units] or [surprise_view(e, head, hint)]
    parts.append(summary(e))
    if e.top_ids.shape[1]:
        parts += [Text(""), top_k_table(e)]
    if e.finder is not None:
        parts += [Text(""), finder_table(e)]
    if e.saturation is not None:
        parts += [Text(""), saturation_table(e)]
    if e.gradient_flow is not None:
        parts += [Text(""), gradient_flow_view(e)]
    return Group(*parts)


def surprise_view(e, head=None, hint="") -> Group:
    """The text coloured by surprise (bounded by `head`, see `terminal_view`) and the legend."""
    return Group(*heat_parts(e, e.nats, SURPRISE, head, hint), Text(""), Legend(SURPRISE))


def heat_parts(e, values, scale, head=None, hint="") -> list:
    """The text coloured by `values`: all of it, or (longer than `head`) its first `head`
    characters, a line saying what was left out, and each most surprising span beyond them
    in its context."""
    n = len(e.text)
    if head is None or n <= head:
        return [HeatText(e.text, values, scale)]
    parts = [HeatText(e.text[:head], values[:head], scale),
             Text(f"… the first {head:,} of {n:,} characters; the rest is left out but for the "
                  f"most surprising spans.{' ' + hint if hint else ''}", style="dim")]
    for start, end, nats in e.surprising_spans():
        if end <= head:
            continue
        a, b = max(head, start - SPAN_CONTEXT), min(n, end + SPAN_CONTEXT)
        parts += [Text(""), Text(f"at {start:,} ({nats:.1f} nats/char), characters {a:,}:{b:,}",
                                 style="dim"),
                  HeatText(e.text[a:b], values[a:b], scale)]
    return parts


def summary(e) -> Text:
    """nats/char, bits/char, how many characters, the most surprising spans."""
    line = Text()
    line.append(f"{e.nats_per_char:.{DIGITS}f}", "bold")
    line.append(" nats/char, ")
    line.append(f"{e.bits_per_char:.{DIGITS}f}", "bold")
    line.append(f" bits/char over {e.ids.size - 1:,} predicted characters")
    if e.skipped:
        line.append(f" ({e.skipped:,} unknown skipped)")
    if e.replaced:
        line.append(f" ({e.replaced:,} unknown read as U+FFFD)")
    spans = e.surprising_spans()
    if spans:
        line.append("; most surprising: ")
        for k, (start, end, nats) in enumerate(spans):
            line.append(("" if k == 0 else ", ") + "«")
            line.append("".join(shown(c) for c in e.text[start:end]), "bold")
            line.append(f"» at {start} ({nats:.1f})")
    return line


def _titled(title, table) -> Group:
    """A table under a bold title line (a table's own title wraps to the table's width)."""
    return Group(Text(title, style="bold"), table)


def top_k_table(e) -> Group:
    """Positions of e.span: the character, its surprise, and the K most probable characters to
    follow it, the one that did follow in [brackets]."""
    start, end = e.span
    K = e.top_ids.shape[1]
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("pos", justify="right")
    table.add_column("char")
    table.add_column("nats", justify="right")
    table.add_column("next: probability")
    for i in range(start, end):
        actual = e.text[i + 1] if i + 1 < len(e.text) else None
        guesses = Text()
        for j in range(K):
            ch, p = e.vocab_chars[e.top_ids[i, j]], e.top_probs[i, j]
            name = f"[{label(ch)}]" if ch == actual else label(ch)
            guesses.append(name, "bold underline" if ch == actual else "")
            guesses.append(f" {p:.0%}  " if p >= 0.01 else f" {p:.1%}  ", "dim")
        nats = "" if math.isnan(e.nats[i]) else f"{e.nats[i]:.2f}"
        table.add_row(str(i), Text(label(e.text[i])), nats, guesses)
    return _titled(f"the {K} most probable next characters, positions {start}:{end}", table)


def unit_view(e, unit, head=None, hint="") -> Group:
    """The text coloured by one unit's activation on a diverging scale, with its range (the
    text bounded by `head`, see `terminal_view`)."""
    values = e.unit(unit)
    centre = unit_centre(e.config, unit.array)
    scale = unit_scale(values, centre, f"{unit} ({unit.kind})")
    title = Text()
    title.append(f"{unit}", "bold")
    title.append(f" ({unit.kind}): from {values.min():.3g} to {values.max():.3g}, mean "
                f"{values.mean():.3g}; colours centred on {centre:g} (blue below, red above)")
    return Group(title, Text(""), *heat_parts(e, values, scale, head, hint), Text(""),
                 Legend(scale))


def finder_table(e) -> Group:
    """For each feature, the units that follow it best: Pearson r and the option to see one."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("feature")
    table.add_column("r", justify="right")
    table.add_column("unit")
    table.add_column("to see it")
    for match in e.finder:
        if not match.units:
            table.add_row(match.feature, "", Text("does not vary in this text", style="dim"), "")
        for k, (unit, r) in enumerate(match.units):
            table.add_row(match.feature if k == 0 else "", f"{r:+.3f}", str(unit),
                          Text(unit.option, style="dim"))
    return _titled("units that track a feature of the text (Pearson r over every character)",
                   table)


def saturation_table(e) -> Group:
    """Per layer and gate, the fractions of activations near each end."""
    lo, hi = SATURATION
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name, justify in (("layer", "right"), ("gate", "left"), (f"< {lo:g}", "right"),
                          (f"> {hi:g}", "right"), ("between", "right")):
        table.add_column(name, justify=justify)
    for s in e.saturation:
        table.add_row(str(s.layer), s.gate, f"{s.left:.1%}", f"{s.right:.1%}",
                      f"{1 - s.left - s.right:.1%}")
    return _titled("gate saturation (fraction of all activations over the text; tanh gates "
                   "mapped to [0, 1])", table)


def gradient_flow_view(e, height=14) -> Group:
    """The log-scale chart of g_k per layer and state, and each one's horizon."""
    flow = e.gradient_flow
    T = flow.window
    series = [Series(f"layer {layer} {s}", list(range(T)), list(g), PALETTE[k % len(PALETTE)],
                     plain_marker=HOLLOW_MARKERS[k % len(HOLLOW_MARKERS)])
              for k, ((layer, s), g) in enumerate(flow.norms.items())]
    title = (f"gradient flow: ||dL_T / ds_(T-k)||, mean over {flow.starts.size} windows of "
             f"{T} characters (log scale)")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("layer", "state", "k = 0", f"k = {T - 1}", f"k where < 1/{1 / HORIZON_RATIO:g}"):
        table.add_column(name, justify="left" if name == "state" else "right")
    for (layer, s), g in flow.norms.items():
        k = flow.horizon((layer, s))
        table.add_row(str(layer), s, f"{g[0]:.3g}", f"{g[-1]:.3g}",
                      str(k) if k is not None else f"> {T - 1}")
    return Group(LineChart(series, title, height=height, log_y=True,
                           x_name="k (steps back from the last position)"), Text(""), table)
