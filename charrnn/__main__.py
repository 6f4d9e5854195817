"""`python -m charrnn` runs the command line."""

from charrnn.cli import cli

cli(prog_name="charrnn")
