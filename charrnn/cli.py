"""The `charrnn` command line: parse options, call the library, turn errors into messages.

Library modules (and numpy with them) are imported inside the commands, so that
`charrnn --help` stays fast.
"""

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
