"""The exception every user-facing failure of the library raises, and `refuse_oversized`,
the up-front memory check that training and sampling share.

Library code never prints and never exits: it raises a `CharRNNError` whose message is one
sentence written for the user, and `charrnn.cli` turns it into a clean error and exit code 1.
"""

import os


class CharRNNError(Exception):
    """A problem the user can fix (bad input, bad file, bad option); the message says how."""


class CorpusError(CharRNNError):
    """The training or evaluation text cannot be used."""


class CheckpointError(CharRNNError):
    """A checkpoint file is missing, corrupt, unsafe or of an unknown format."""


class RunError(CharRNNError):
    """A run directory is missing, locked, or would be overwritten."""


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n):
    gib = n / 2**30
    return f"{gib:,.1f} GiB" if gib < 1e6 else f"{gib:.1e} GiB"


def refuse_oversized(need, what, advice):
    """Raise CharRNNError, before allocating anything, if `need` bytes exceed 80% of this
    machine's memory: '{what} needs about N GiB of memory, more than this machine's M GiB;
    {advice}'."""
    have = _physical_memory()
    if have and need > 0.8 * have:
        raise CharRNNError(f"{what} needs about {_gib(need)} of memory, more than this "
                           f"machine's {_gib(have)}; {advice}")
