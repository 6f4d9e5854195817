"""Run the command line inside a pseudo-terminal of a given size (80×24 by default), as a user
in a terminal sees it, and measure what it printed: the lines as they stay on the screen
(colour codes removed, each carriage-return redraw keeping only its last version) and their
widths in terminal columns.
"""

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).parents[2]
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f]")  # shown as nothing (a raw Ctrl-C echo)
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][0-9A-B]|\x1b[=>78M]")


def run_in_terminal(args, cwd=None, env=None, columns=80, rows=24, timeout=60.0,
                    interrupt_after=None):
    """Run `python -m charrnn *args` with its stdin, stdout and stderr on a pseudo-terminal of
    `columns`×`rows`; return (exit code, everything it wrote, as text).

    `interrupt_after`: a string; once the output holds it, Ctrl-C is typed (the terminal sends
    SIGINT to the process group and echoes ^C, as a real one does). Bounded by `timeout`."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    full_env = {**os.environ, "COLUMNS": str(columns), "LINES": str(rows), "TERM": "xterm",
                "PYTHONPATH": str(ROOT)}
    full_env.pop("NO_COLOR", None)
    full_env.update(env or {})
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", *args], cwd=cwd, env=full_env,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    interrupted = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end
                    chunk = b""
                if not chunk and proc.poll() is not None:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
            if interrupt_after and not interrupted and interrupt_after.encode() in out:
                os.write(master, b"\x03")  # the terminal turns it into SIGINT, echoing ^C
                interrupted = True
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            raise TimeoutError(f"charrnn {' '.join(args)} did not end in {timeout} s: "
                               f"{out.decode(errors='replace')[-2000:]}")
        code = proc.wait(timeout=10)
    finally:
        os.close(master)
    return code, out.decode("utf-8", errors="replace")


def screen_lines(output):
    """The lines of `output` as they stay on the screen: escape sequences removed, and for a
    line redrawn with carriage returns only what the last redraw left (a shorter redraw leaves
    the end of a longer one, as a terminal does)."""
    lines = []
    for raw in _ESCAPES.sub("", output).replace("\r\n", "\n").split("\n"):
        screen = ""
        for part in raw.split("\r"):
            screen = part + screen[len(part):]
        lines.append(_CONTROLS.sub("", screen).rstrip())
    return lines


def width(line):
    """`line`'s width in terminal columns (wide East Asian characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c)
               else 1 for c in line)


def too_wide(output, columns=80):
    """The screen lines of `output` wider than `columns`."""
    return [line for line in screen_lines(output) if width(line) > columns]
