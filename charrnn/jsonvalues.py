"""Checks of values read back from JSON that anyone may have edited: a run's log, a
checkpoint's metadata. JSON has no NaN or infinity of its own, but Python's `json` reads and
writes them, a bool is an int to `isinstance`, an int may have thousands of digits, and a
string may hold terminal escape sequences; code that trusts such a value fails (or rewrites
the user's terminal) far from the file that held it.
"""

import math
import re

# control characters (C0 but tab and newline, DEL, C1) and the bidirectional overrides, which
# make a terminal move the cursor, change colours or reorder text
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def is_finite_number(value):
    """Whether `value` is an int or a float (not a bool) other than NaN and +-infinity, and
    within float's range (an int of 400 digits is not)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def printable(text):
    """`text` with every control character but tab and newline written as an escape (\\x1b),
    for a terminal: a log read back never prints raw escape sequences."""
    return _CONTROLS.sub(lambda m: repr(m.group())[1:-1], text)


def json_printable(text):
    """JSON text with the control characters that `json.dumps(ensure_ascii=False)` leaves raw
    (DEL, C1, bidirectional overrides) written as \\u escapes; still the same JSON."""
    return _CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
