"""Checks of values read back from JSON that anyone may have edited: a run's log, a
checkpoint's metadata. JSON has no NaN or infinity of its own, but Python's `json` reads and
writes them, and a bool is an int to `isinstance`; code that trusts such a value fails far
from the file that held it.
"""

import math


def is_finite_number(value):
    """Whether `value` is an int or a float (not a bool) other than NaN and +-infinity."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
