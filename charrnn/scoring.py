"""Reading a text through a model, one stream from the zero state: `score` and `score_text`
(what `charrnn eval` reports, a `TextScore`) and `read_stream`, the window loop that
`charrnn.explain` shares with them, so that the two read a text alike."""

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from charrnn.blas import single_threaded_blas
from charrnn.data import REPLACEMENT
from charrnn.errors import CorpusError
from charrnn.units import bits

READ_CHUNK = 256  # characters a text is read in, one window at a time, by `score` and explain


def read_stream(model, n, read, chunk=READ_CHUNK):
    """Read n positions of one stream through `model` from the zero state, in windows of
    `chunk`: `read(start, stop, state)` runs positions start .. stop - 1 from `state` and
    returns the state after them. Yields `stop` after each window, so that a caller can stop
    early and keep what was read. BLAS runs single-threaded: one stream is products of
    matrices by single columns."""
    state = model.init_state(1)
    with single_threaded_blas():
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            state = read(start, stop, state)
            yield stop


def score(model, ids, chunk=READ_CHUNK, progress=None):
    """The summed cross-entropy (nats) of predicting ids[1:] from ids[:-1], and its count.

    One stream from the zero state, carried across windows of `chunk` characters: every
    character is predicted from all the text before it, exactly as sampling would.
    `progress(n)`, if given, is called with the number of characters each window scored.
    """
    total = scored = 0
    for total, done in score_steps(model, ids, chunk):
        if progress is not None:
            progress(done - scored)
        scored = done
    return total, scored


def score_steps(model, ids, chunk=READ_CHUNK):
    """`score`, one window at a time: yields (summed nats, characters scored) so far after
    each window, so that an interrupted evaluation still has what it scored."""
    ids = np.asarray(ids)
    n = ids.size - 1
    if n < 1:
        raise CorpusError("the text needs at least 2 characters the model knows to be scored.")
    total = 0.0

    def read(start, stop, state):
        nonlocal total
        loss, state = model.loss(ids[None, start:stop], ids[None, start + 1 : stop + 1], state)
        total += float(loss) * (stop - start)
        return state

    for stop in read_stream(model, n, read, chunk):
        yield total, stop


@dataclass
class TextScore:
    """A model's score on a text, as `charrnn eval` reports it: the text read as one stream
    (`score_steps`), the characters the model does not know skipped, or read as its U+FFFD
    when it has one (a model trained with --min-count or --max-vocab)."""

    nats_per_char: float  # mean -ln p of the characters scored
    chars_scored: int
    chars_to_score: int  # the known characters but the first: all of them unless interrupted
    chars_skipped: int  # characters of the text the model does not know, left out
    chars_replaced: int  # occurrences of unknown characters read as U+FFFD
    unknown_chars: str  # the distinct characters the model does not know, in order

    @property
    def bits_per_char(self):
        return bits(self.nats_per_char)

    @property
    def perplexity(self):
        return math.exp(self.nats_per_char)

    @property
    def partial(self):
        """Interrupted: the score of the first `chars_scored` characters only."""
        return self.chars_scored < self.chars_to_score

    def to_json(self):
        return {"nats_per_char": self.nats_per_char, "bits_per_char": self.bits_per_char,
                "perplexity": self.perplexity, "chars_scored": self.chars_scored,
                "chars_skipped": self.chars_skipped, "chars_replaced": self.chars_replaced,
                "unknown_chars": self.unknown_chars, "partial": self.partial}


class Encoded(NamedTuple):
    """A text as the ids a model reads (`encode_for_scoring`)."""

    ids: np.ndarray  # (n,) the known characters, or U+FFFD for the others
    replaced: int  # occurrences of unknown characters read as U+FFFD


def encode_for_scoring(vocab, text):
    """`text` as an `Encoded` the model can read: its unknown characters skipped, or read as
    U+FFFD when the vocabulary has it (`vocab.replacement`)."""
    if vocab.replacement is None:
        return Encoded(vocab.encode(text, unknown="skip"), 0)
    ids = vocab.encode(text, unknown="replace")
    return Encoded(ids, int(np.count_nonzero(ids == vocab.replacement)) - text.count(REPLACEMENT))


def score_text(model, vocab, text, encoded=None, progress=None):
    """The `TextScore` of `text` (`encoded`: its `encode_for_scoring`, if already made).
    `progress(n)` is called with the characters each window scored. Ctrl-C
    (KeyboardInterrupt) once some characters are scored returns the score so far (`partial`);
    before that, it propagates."""
    ids, replaced = encoded or encode_for_scoring(vocab, text)
    unknown = vocab.unknown_chars(text) if ids.size < len(text) or replaced else ""
    total = scored = 0
    try:
        for total, done in score_steps(model, ids):
            if progress is not None:
                progress(done - scored)
            scored = done
    except KeyboardInterrupt:
        if not scored:
            raise
    return TextScore(total / scored, scored, ids.size - 1, len(text) - ids.size, replaced,
                     unknown)
