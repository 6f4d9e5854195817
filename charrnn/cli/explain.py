"""`charrnn explain`: look inside a model (see `charrnn.explain`)."""

import click

from charrnn import cells
from charrnn.cli.base import (_OUT_DIR, SectionedCommand, _echo_json, _load_checkpoint,
                              note_line)
from charrnn.errors import CharRNNError
from charrnn.jsonvalues import printable
from charrnn.terminal import shown_path


class ExplainCommand(SectionedCommand):
    """`charrnn explain`: its --help ends with the features that --find correlates units with
    (read from `charrnn.explain.features` only when the help is shown)."""

    def format_epilog(self, ctx, formatter):
        from charrnn.explain.features import FEATURES

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


def _refuse_a_run_as_file(path, out_dir):
    """A single argument that is no file but names a run: the text is what is missing."""
    import os

    from charrnn import runs

    if os.path.lexists(path) and not os.path.isdir(path):
        return
    try:
        runs.resolve_run(path, out_dir)
    except CharRNNError:
        return  # not a run either: reading it as FILE says it does not exist
    raise click.ClickException(
        f"'{printable(path)}' is a run: give the text to explain after it (charrnn explain "
        f"{printable(path)} FILE) or with --text TEXT.")


def _arrays_by_cell(kind):
    """'h, c (lstm); h (gru); ...': the states or gates of each cell of the table, for --help."""
    return "; ".join(f"{', '.join(getattr(c, kind))} ({c.name})" for c in cells.CELLS.values())


EXPLAIN_SECTIONS = [
    ("Text", ["text_arg", "encoding", "all_text"]),
    ("Surprise view (the default)", ["top_k", "span"]),
    ("Neuron view", ["unit", "state", "gate"]),
    ("Analyses", ["find", "find_top", "saturation", "gradient_flow", "with_text", "window",
                  "windows"]),
    ("Output", ["html", "fmt", "out_dir"]),
]


@click.command("explain", cls=ExplainCommand, option_sections=EXPLAIN_SECTIONS)
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
@click.option("--with-text", is_flag=True,
              help="With --find, --saturation or --gradient-flow: show the coloured text and "
                   "its summary too (by default they show only their own tables).")
@click.option("--all-text", is_flag=True,
              help="Show the whole text; by default a text longer than 2,000 characters "
                   "shows its first 2,000 and its most surprising spans.")
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
                    saturation, gradient_flow, with_text, all_text, window, windows, html, fmt,
                    out_dir):
    """Look inside a model: what surprised it, what its units do, how far back it learns.

    The model reads the text as `charrnn eval` does (one stream from the zero state), and the
    text is shown with each character's background coloured by its surprise in nats, -ln p
    (the first character is not predicted); then nats/char, bits/char and the most
    surprising spans. With --unit, the text is coloured by that unit's activation instead.
    --find, --saturation and --gradient-flow show only their tables (--with-text: the text
    too).
    RUN|CKPT as for `charrnn sample` (default: the newest run). Characters the model does not
    know are skipped, with a note.

    \b
    Examples:
      charrnn explain test.txt                         surprise, newest run
      charrnn explain shakespeare --text "ROMEO: Art thou" --top-k 5
      charrnn explain shakespeare test.txt --find      units that track quotes, lines, ...
      charrnn explain shakespeare test.txt --find --with-text    and the coloured text
      charrnn explain shakespeare test.txt --unit 1:17 --gate f
      charrnn explain shakespeare test.txt --gradient-flow --window 200
      charrnn explain shakespeare test.txt --html page.html     everything, in a browser
    """
    import sys

    from tqdm import tqdm

    from charrnn import explain, ui
    from charrnn.explain import html as explain_html
    from charrnn.explain import view as explain_view
    from charrnn.data import format_chars, read_text
    from charrnn.scoring import encode_for_scoring

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
        if len(paths) == 1:
            _refuse_a_run_as_file(file, out_dir)
        text = read_text(file, encoding, empty="there is nothing to explain")
    else:
        target, text = (paths or (None,))[0], text_arg
    path, ckpt = _load_checkpoint(target, out_dir)
    model, vocab = ckpt.model, ckpt.vocab
    options = {"top_k": top_k or 0, "span": span, "find": find, "find_top": find_top,
               "saturation": saturation, "gradient_flow": gradient_flow, "window": window,
               "max_windows": windows,
               "units": [explain.make_unit(model.config, *unit, state, gate)] if unit else []}
    known = encode_for_scoring(vocab, text)[0].size  # what the model reads, as eval does
    if html:
        options.update(explain_html.page_options(model.config, known, window),
                       top_k=max(options["top_k"], explain_html.TOP_K))
        options["gradient_flow"] |= gradient_flow  # asked for: a short text is an error
    with tqdm(total=known, unit="char", unit_scale=True, leave=False, dynamic_ncols=True,
              file=sys.stderr, disable=None) as bar:
        result = explain.explain(model, vocab, text, progress=bar.update, **options)
    if result.skipped:
        note_line(f"skipped {result.skipped:,} character(s) the model does not know: "
                  f"{format_chars(result.unknown_chars, 20)}")
    if html:
        c = model.config
        explain_html.write(html, explain_html.render(
            result, f"charrnn explain: {path}",
            f"{c.cell}, {c.num_layers} layer(s) × {c.hidden_size} units, {vocab.size} characters"))
        note_line(f"wrote {shown_path(html)}")
    if fmt == "json":
        _echo_json({"checkpoint": str(path), **result.to_json()})
    elif not html:
        text_view = with_text or not (find or saturation or gradient_flow)
        ui.make_console().print(explain_view.terminal_view(
            result, head=None if all_text else explain_view.HEAD_CHARS,
            hint="--all-text shows all of it.", text=text_view))
