"""The `charrnn` command line: the group (`base.cli`) and one module per command, each a thin
layer that parses options, calls the library and renders what it returns.

A new command is a module here defining its click command, and one `cli.add_command` line.
"""

from charrnn.cli.base import cli
from charrnn.cli.eval import eval_command
from charrnn.cli.explain import explain_command
from charrnn.cli.export import export_command
from charrnn.cli.info import info_command
from charrnn.cli.logs import logs_command
from charrnn.cli.sample import sample_command
from charrnn.cli.serve import serve_command
from charrnn.cli.train import train_command

cli.add_command(train_command)
cli.add_command(sample_command)
cli.add_command(eval_command)
cli.add_command(info_command)
cli.add_command(logs_command)
cli.add_command(explain_command)
cli.add_command(export_command)
cli.add_command(serve_command)

__all__ = ["cli"]
