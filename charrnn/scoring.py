"""Reading a text through a model from the zero state: `score` (the full pass that `charrnn
eval` reports: one stream, every character predicted from all the text before it),
`read_stream`, the window loop that `charrnn.explain` shares with it, so that the two read a
text alike, and `score_windows` (`charrnn eval --windows`: random windows each read from the
zero state, the transformer-style score)."""

import numpy as np

from charrnn.blas import single_threaded_blas
from charrnn.errors import CharRNNError, CorpusError

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
    total = scored = 0
    for total, done in window_steps(model, ids, T, count, rng, chunk_chars):
        if progress is not None:
            progress(done - scored)
        scored = done
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
