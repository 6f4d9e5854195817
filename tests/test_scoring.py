"""`scoring.score_windows`, the transformer-style score (random windows, each read from the
zero state): it equals a plain loop over the windows, one window of the whole text equals the
full pass, the seed alone fixes the windows, and bad sizes are one-sentence errors."""

import numpy as np
import pytest

from charrnn.errors import CharRNNError, CorpusError
from charrnn.model import CharRNN, ModelConfig
from charrnn.scoring import (WINDOW_CHUNK_CHARS, score, score_text_windows, score_windows,
                             window_steps)


def _model(cell="lstm", vocab=7, seed=3):
    """A tiny random float64 model: batched and one-stream reads agree to rounding."""
    config = ModelConfig(cell=cell, vocab_size=vocab, hidden_size=8, num_layers=2, dropout=0.3)
    return CharRNN(config, seed=seed, dtype=np.float64)


def _ids(n=120, vocab=7, seed=5):
    return np.random.default_rng(seed).integers(0, vocab, size=n)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_equals_a_loop_over_the_windows(cell):
    model, ids = _model(cell), _ids()
    T, count = 9, 11
    # chunk_chars 27: chunks of 3 windows, the last one of 2
    got = score_windows(model, ids, T, count, np.random.default_rng(4), chunk_chars=27)
    starts = np.random.default_rng(4).integers(0, ids.size - T, size=count)
    losses = []
    for i in starts:  # one stream at a time, from the zero state, through the full pass
        total, scored = score(model, ids[i : i + T + 1])
        assert scored == T
        losses.append(total / T)
    assert got == pytest.approx(np.mean(losses), rel=1e-12)


def test_one_window_of_the_whole_text_is_the_full_pass():
    model, ids = _model(), _ids(300)
    total, scored = score(model, ids)  # carried across score's 256-character windows
    got = score_windows(model, ids, ids.size - 1, 3, np.random.default_rng(0))
    assert got == pytest.approx(total / scored, rel=1e-12)


def test_the_seed_fixes_the_windows_whatever_the_chunking():
    model, ids = _model(), _ids()
    a = score_windows(model, ids, 16, 20, np.random.default_rng(7))
    b = score_windows(model, ids, 16, 20, np.random.default_rng(7), chunk_chars=40)
    c = score_windows(model, ids, 16, 20, np.random.default_rng(8))
    assert a == pytest.approx(b, rel=1e-12)
    assert a != pytest.approx(c, rel=1e-6)


def test_windows_without_context_score_worse_than_the_full_pass():
    """In 0 1 0 2 0 1 0 2 ... the character after a 0 depends on the one before it: a model
    that has learnt the text predicts it from context in the full pass, but a window of one
    character, read from the zero state, cannot tell which follows its 0 (about ln 2 there)."""
    from charrnn.optim import Adam

    ids = np.tile([0, 1, 0, 2], 30)
    model = CharRNN(ModelConfig(vocab_size=3, hidden_size=8, num_layers=1), seed=1,
                    dtype=np.float64)
    opt = Adam(model.params)
    for _ in range(40):
        _, grads, _ = model.loss_and_grads(ids[None, :-1], ids[None, 1:], model.init_state(1))
        opt.step(model.params, grads, 0.03)
    total, scored = score(model, ids)
    assert total / scored < 0.05
    assert score_windows(model, ids, 1, 50, np.random.default_rng(0)) > 0.3


def test_progress_counts_every_scored_character():
    model, ids = _model(), _ids()
    seen = []
    score_windows(model, ids, 10, 7, np.random.default_rng(1), chunk_chars=30,
                  progress=seen.append)
    assert seen == [30, 30, 10]


def test_an_interrupted_read_keeps_the_chunks_it_scored():
    model, ids = _model(), _ids()
    steps = window_steps(model, ids, 10, 7, np.random.default_rng(1), chunk_chars=30)
    total, scored = next(steps)
    assert scored == 30 and total > 0


@pytest.mark.parametrize("T, count, n, error, words", [
    (0, 5, 50, CharRNNError, "--windows must be at least 1"),
    (-3, 5, 50, CharRNNError, "--windows must be at least 1"),
    (4, 0, 50, CharRNNError, "--count must be at least 1"),
    (50, 5, 50, CorpusError, "at least 51 characters"),
    (400, 5, 50, CorpusError, "at least 401 characters"),
])
def test_bad_sizes_are_one_sentence_errors(T, count, n, error, words):
    with pytest.raises(error) as raised:
        score_windows(_model(), _ids(n), T, count, np.random.default_rng(0))
    message = str(raised.value)
    assert words in message and "\n" not in message and message.endswith(".")


def test_ctrl_c_keeps_the_windows_scored_before_it():
    """`score_text_windows` (eval --windows): a KeyboardInterrupt while the second chunk is
    reported returns the mean of the two chunks scored (their sum over their count), marked
    partial."""
    model, ids = _model(), _ids()
    calls = []

    def progress(chars):
        calls.append(chars)
        if len(calls) == 2:
            raise KeyboardInterrupt

    cut = score_text_windows(model, ids, 10, 7000, seed=1, progress=progress)
    whole = score_text_windows(model, ids, 10, 7000, seed=1)
    per_chunk = WINDOW_CHUNK_CHARS // 10  # whole windows in a chunk
    assert cut.partial and not whole.partial
    assert cut.chars_scored == 2 * per_chunk * 10 < whole.chars_scored == 70_000
    # the first 2 chunks' windows are the first starts of the same draw
    first = score_windows(model, ids, 10, 2 * per_chunk, np.random.default_rng(1))
    assert cut.nats_per_char == pytest.approx(first, rel=1e-12)
    assert whole.to_json() == {"nats_per_char": whole.nats_per_char,
                               "bits_per_char": whole.nats_per_char / np.log(2), "length": 10,
                               "count": 7000, "seed": 1, "chars_scored": 70_000,
                               "partial": False}
