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


MEMORY_SHARE = 0.8  # of the machine's memory, the most one estimate may need


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n):
    gib = n / 2**30
    return f"{gib:,.1f} GiB" if gib < 1e6 else f"{gib:.1e} GiB"


def fits_in_memory(need):
    """Whether `need` bytes are within MEMORY_SHARE of this machine's memory (True when the
    machine does not say how much it has)."""
    have = _physical_memory()
    return not have or need <= MEMORY_SHARE * have


def refuse_oversized(need, what, advice):
    """Raise CharRNNError, before allocating anything, if `need` bytes exceed MEMORY_SHARE of
    this machine's memory: '{what} needs about N GiB of memory, more than the L GiB limit (80%
    of this machine's M GiB); {advice}' (the limit is what applies, so it is named)."""
    have = _physical_memory()
    if not fits_in_memory(need):
        raise CharRNNError(f"{what} needs about {_gib(need)} of memory, more than the "
                           f"{_gib(MEMORY_SHARE * have)} limit ({MEMORY_SHARE:.0%} of this "
                           f"machine's {_gib(have)}); {advice}")
