"""`python -m charrnn` runs the command line.

Ctrl-C while the interpreter is still importing exits 130 in silence, as it does once a
command runs (see `charrnn.cli.CharRNNGroup`), instead of a KeyboardInterrupt traceback.
"""

import signal
import sys


def main():
    """The `charrnn` command."""
    signal.signal(signal.SIGINT, lambda signum, frame: sys.exit(130))
    from charrnn.cli import cli

    signal.signal(signal.SIGINT, signal.default_int_handler)
    cli(prog_name="charrnn")


if __name__ == "__main__":
    main()
