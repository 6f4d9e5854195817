"""`python -m charrnn` runs the command line.

Ctrl-C while the interpreter is still importing exits 130 in silence, as it does once a
command runs (see `charrnn.cli.base.CharRNNGroup`), instead of a KeyboardInterrupt traceback.
"""

import os
import signal
import sys


def main():
    """The `charrnn` command.

    An exit on Ctrl-C (130) ends with `os._exit` once the output is flushed: CPython remembers
    a KeyboardInterrupt that went through some of its own machinery even after charrnn caught
    it, and would otherwise end the process by re-sending itself SIGINT after a clean exit
    (status -2 to a parent process instead of 130).

    Ctrl-C during the imports is also remembered: Python 3.11 can lose the exception a signal
    handler raises while it compiles a module (no up-to-date .pyc), and the import goes on.
    """
    interrupted = []

    def exit_130(signum, frame):
        interrupted.append(signum)
        sys.exit(130)

    signal.signal(signal.SIGINT, exit_130)
    from charrnn.cli import cli

    signal.signal(signal.SIGINT, signal.default_int_handler)
    if interrupted:  # the SystemExit was lost while compiling a module
        sys.exit(130)
    try:
        cli(prog_name="charrnn")
    except SystemExit as exc:
        if exc.code != 130:
            raise
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(130)


if __name__ == "__main__":
    main()
