"""The `charrnn` command line: parse options, call the library, turn errors into messages."""

import click

from charrnn import __version__

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="charrnn")
def cli():
    """Train character-level RNN, LSTM and GRU language models on any text, and sample from them.

    \b
    charrnn train corpus.txt        train on your text (Ctrl-C saves and stops)
    charrnn sample --temp 0.8       generate text from the newest run
    charrnn logs                    list runs; `charrnn logs RUN` plots its curves
    """
