"""Fitting what charrnn prints to the terminal it prints to: its width in columns (None when
the stream is not a terminal, where nothing is wrapped), lines wrapped at word boundaries,
paths shown relative to the current directory where that is shorter, and the terminal's echo
of Ctrl-C kept from breaking a progress bar.

Only the standard library: the command line imports it before any command runs.
"""

from __future__ import annotations

import os
import sys
import unicodedata

MIN_COLUMNS = 20  # narrower terminals are wrapped as if they had this many columns


def columns(stream=None) -> int | None:
    """The width of the terminal `stream` (default stderr) writes to, or None if it is not a
    terminal. $COLUMNS wins where set, as in `shutil.get_terminal_size`."""
    import shutil

    stream = sys.stderr if stream is None else stream
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError, OSError):
        return None
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return max(MIN_COLUMNS, int(env))
    try:
        return max(MIN_COLUMNS, os.get_terminal_size(stream.fileno()).columns)
    except (AttributeError, ValueError, OSError):
        return max(MIN_COLUMNS, shutil.get_terminal_size().columns)


def cell_width(text: str) -> int:
    """Terminal columns `text` takes: wide East Asian characters two, combining marks none."""
    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pieces(word: str, width: int) -> list[str]:
    """`word` cut into pieces of at most `width` columns, after a '/' where one is close
    enough (a long path breaks between its parts), else anywhere."""
    pieces = []
    while cell_width(word) > width:
        cut = width
        while cell_width(word[:cut]) > width:
            cut -= 1
        slash = word.rfind("/", 0, cut)
        if slash >= cut // 2:
            cut = slash + 1
        pieces.append(word[:cut])
        word = word[cut:]
    return pieces + [word]


def wrap(text: str, width: int | None, indent: str = "    ") -> str:
    """`text` with each of its lines wrapped at spaces to `width` columns (None: as it is);
    continuation lines start with `indent`, and a word wider than a line (a long path) is
    broken after a '/' where it can be. Leading spaces of a line are kept."""
    if width is None:
        return text
    out = []
    for line in text.split("\n"):
        if cell_width(line) <= width:
            out.append(line)
            continue
        lead = line[:len(line) - len(line.lstrip(" "))]
        current, empty = lead, True
        for word in line[len(lead):].split(" "):
            for i, piece in enumerate(_pieces(word, max(1, width - cell_width(indent)))):
                joined = current + ("" if empty or i else " ") + piece
                if not empty and cell_width(joined) > width:
                    out.append(current)
                    current, joined = indent, indent + piece
                current, empty = joined, False
        out.append(current)
    return "\n".join(out)


def fit(text: str, stream=None) -> str:
    """`text` wrapped to the width of the terminal `stream` (default stderr) writes to."""
    return wrap(text, columns(stream))


def shown_path(path) -> str:
    """`path` as a message shows it: relative to the current directory when that is shorter
    (and does not climb out of it), else as given; control characters escaped (`printable`),
    so that a path never sends escape sequences to the terminal."""
    from charrnn.jsonvalues import printable

    text = os.fspath(path)
    try:
        relative = os.path.relpath(text)
    except (ValueError, OSError):
        relative = text
    if relative.startswith(os.pardir) or len(relative) >= len(text):
        relative = text
    return printable(relative)


def quiet_control_echo(stream=None):
    """While a progress bar is drawn on the terminal: stop the terminal from echoing control
    keys as '^C' (the echo lands after the bar, spills onto the next line at full width, and
    the redraw then leaves a stray '^' and a second copy of the bar). Returns a function that
    restores the terminal's setting; a no-op where `stream` (default: stdin, else stderr,
    whichever is a terminal) is not the terminal of a foreground process."""
    try:
        import termios

        streams = [stream] if stream is not None else [sys.stdin, sys.stderr]
        fd = next((s.fileno() for s in streams if s is not None and s.isatty()), None)
        if fd is None or os.tcgetpgrp(fd) != os.getpgrp():
            return lambda: None
        old = termios.tcgetattr(fd)
        if not old[3] & termios.ECHOCTL:
            return lambda: None
        new = list(old)
        new[3] &= ~termios.ECHOCTL
        termios.tcsetattr(fd, termios.TCSANOW, new)
    except (ImportError, AttributeError, ValueError, OSError):
        return lambda: None

    def restore():
        try:
            termios.tcsetattr(fd, termios.TCSANOW, old)
        except (termios.error, OSError, ValueError):
            pass

    return restore
