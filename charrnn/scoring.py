"""Reading a text through a model from the zero state: the full pass, `score` and
`score_text` (what `charrnn eval` reports, a `TextScore`: one stream, every character predicted
from all the text before it), with `read_stream`, the window loop that `charrnn.explain`
shares with them, so that the two read a text alike; and the transformer-style score,
`score_windows` and `score_text_windows` (`charrnn eval --windows`, a `WindowScore`: random
windows, each read from the zero state)."""

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from charrnn.blas import single_threaded_blas
from charrnn.data import REPLACEMENT
from charrnn.errors import CharRNNError, CorpusError
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
    return _drain(score_steps(model, ids, chunk), progress)


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
    total, scored = _drain(score_steps(model, ids), progress, keep_partial=True)
    return TextScore(total / scored, scored, ids.size - 1, len(text) - ids.size, replaced,
                     unknown)


WINDOW_CHUNK_CHARS = 8192  # characters read per forward pass by `window_steps`: memory bound


def score_windows(model, ids, T, count, rng, chunk_chars=WINDOW_CHUNK_CHARS, progress=None):
    """The transformer-style score: the mean cross-entropy (nats/char) over `count` random
    windows of the text, each read from the zero state.

    A window reads T characters ids[i : i + T] and predicts the T characters after each of
    them, ids[i + 1 : i + T + 1], with the start i drawn uniformly from 0 .. len(ids) - T - 1
    (with replacement) by `rng`, a numpy Generator. This is nanoGPT's evaluation (a
    block_size of T, eval_iters × batch_size windows): early positions in a window have
    little context, so the score is higher than `score`'s full pass, which gives every
    character all the text before it. With T = len(ids) - 1 every window is the whole text
    and the score equals the full pass's. `progress(n)`, if given, is called with the
    characters each chunk of windows scored.
    """
    total, scored = _drain(window_steps(model, ids, T, count, rng, chunk_chars), progress)
    return total / scored


def window_steps(model, ids, T, count, rng, chunk_chars=WINDOW_CHUNK_CHARS):
    """`score_windows`, one chunk of windows at a time: yields (summed nats, characters
    scored) so far after each chunk, so that an interrupted evaluation keeps what it scored.

    All starts are drawn first, so the windows depend on the seed alone, not on the chunking.
    A chunk is B = max(1, chunk_chars // T) windows read as B streams of one batch (no
    dropout), which bounds the forward pass's buffers to about chunk_chars positions.
    CorpusError if the text is too short for T, CharRNNError for T or count below 1.
    """
    ids = np.asarray(ids)
    check_windows(ids.size, T, count)
    starts = rng.integers(0, ids.size - T, size=count)  # (count,)
    offsets = np.arange(T + 1)  # (T + 1,)
    per_chunk = max(1, chunk_chars // T)
    total = 0.0
    with single_threaded_blas():
        for first in range(0, count, per_chunk):
            windows = ids[starts[first : first + per_chunk, None] + offsets]  # (B, T + 1)
            B = windows.shape[0]
            loss, _ = model.loss(windows[:, :-1], windows[:, 1:], model.init_state(B))
            total += float(loss) * B * T
            yield total, (first + B) * T


def check_windows(n_ids, T, count):
    """Raise a one-sentence error unless `count` windows of T characters fit a text of n_ids
    characters (a window reads T and predicts the next T, so it needs T + 1)."""
    if T < 1:
        raise CharRNNError(f"--windows must be at least 1 character, not {T}.")
    if count < 1:
        raise CharRNNError(f"--count must be at least 1 window, not {count}.")
    if n_ids < T + 1:
        raise CorpusError(f"windows of {T:,} characters need a text of at least {T + 1:,} "
                          f"characters the model knows; this one has {n_ids:,}: use a smaller "
                          "--windows.")


@dataclass
class WindowScore:
    """`charrnn eval --windows`: the mean score of `count` random windows of `length`
    characters, each read from the zero state (`score_windows`), their starts drawn from
    `seed`."""

    nats_per_char: float
    length: int  # T: characters each window reads (and predicts the next of)
    count: int
    seed: int
    chars_scored: int  # length × the windows scored: length × count unless interrupted

    @property
    def bits_per_char(self):
        return bits(self.nats_per_char)

    @property
    def partial(self):
        """Interrupted: the mean of the windows scored before Ctrl-C."""
        return self.chars_scored < self.length * self.count

    def to_json(self):
        return {"nats_per_char": self.nats_per_char, "bits_per_char": self.bits_per_char,
                "length": self.length, "count": self.count, "seed": self.seed,
                "chars_scored": self.chars_scored, "partial": self.partial}


def score_text_windows(model, ids, length, count, seed, progress=None):
    """The `WindowScore` of the ids (`encode_for_scoring`'s) for `charrnn eval --windows`.
    Ctrl-C (KeyboardInterrupt) once a chunk of windows is scored returns the mean so far
    (`partial`); before that, it propagates."""
    total, scored = _drain(window_steps(model, ids, length, count, np.random.default_rng(seed)),
                           progress, keep_partial=True)
    return WindowScore(total / scored, length, count, seed, scored)


def _drain(steps, progress=None, keep_partial=False):
    """Run a scoring generator of (summed nats, characters scored so far) to its end and
    return its last pair; `progress(n)` gets the characters each step scored. keep_partial:
    Ctrl-C (KeyboardInterrupt) once something is scored returns what was; else it propagates."""
    total = scored = 0
    try:
        for total, done in steps:
            new, scored = done - scored, done  # before progress: a Ctrl-C there keeps the pair
            if progress is not None:
                progress(new)
    except KeyboardInterrupt:
        if not (keep_partial and scored):
            raise
    return total, scored
