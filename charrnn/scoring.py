"""Reading a text through a model, one stream from the zero state: `score` (what `charrnn eval`
reports) and `read_stream`, the window loop that `charrnn.explain` shares with it, so that the
two read a text alike."""

import numpy as np

from charrnn.blas import single_threaded_blas
from charrnn.data import REPLACEMENT
from charrnn.errors import CorpusError

READ_CHUNK = 256  # characters a text is read in, one window at a time, by `score` and explain


def encode(vocab, text):
    """The ids a text is read as, by eval and explain alike, and how many of its characters
    were read as U+FFFD: a vocabulary with U+FFFD (`--min-count`, `--max-vocab`) reads every
    character it lacks as U+FFFD, as it was trained; one without skips them. (ids, replaced)."""
    if vocab.replacement is None:
        return vocab.encode(text, unknown="skip"), 0
    ids = vocab.encode(text, unknown="replace")
    return ids, int(np.count_nonzero(ids == vocab.replacement)) - text.count(REPLACEMENT)


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
