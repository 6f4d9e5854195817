"""The exception every user-facing failure of the library raises.

Library code never prints and never exits: it raises a `CharRNNError` whose message is one
sentence written for the user, and `cli.py` turns it into a clean error and exit code 1.
"""


class CharRNNError(Exception):
    """A problem the user can fix (bad input, bad file, bad option); the message says how."""


class CorpusError(CharRNNError):
    """The training or evaluation text cannot be used."""


class CheckpointError(CharRNNError):
    """A checkpoint file is missing, corrupt, unsafe or of an unknown format."""


class RunError(CharRNNError):
    """A run directory is missing, locked, or would be overwritten."""
