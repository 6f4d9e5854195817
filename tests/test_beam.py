"""Beam search (`charrnn.beam`) against exhaustive enumeration, greedy sampling and `score`."""

import itertools

import numpy as np
import pytest

from charrnn.beam import search_cost
from charrnn.errors import CharRNNError
from charrnn.model import CharRNN, ModelConfig, param_shapes
from charrnn.sampling import generate, sample_text
from charrnn.scoring import score
from test_sampling import random_model


def logp_given(model, vocab, prime, text):
    """log p(text | prime) recomputed with `score`, from the zero state (no context)."""
    total, _ = score(model, vocab.encode(prime + text))
    before = score(model, vocab.encode(prime))[0] if len(prime) > 1 else 0.0
    return before - total


def beams(model, vocab, length, beam, num_samples=1, **options):
    return list(generate(model, vocab, length, beam=beam, num_samples=num_samples, records=True,
                         **options))


@pytest.mark.parametrize("V, L", [(3, 5), (4, 4)])
def test_the_widest_beam_finds_every_sequence_and_the_best_one(V, L):
    model, vocab = random_model(V=V, H=8, layers=2, dtype=np.float64, seed=V)
    everything = ["".join(s) for s in itertools.product(vocab.chars, repeat=L)]
    exact = {text: logp_given(model, vocab, "a", text) for text in everything}
    found = beams(model, vocab, L, beam=V**L, num_samples=V**L, prime="a")
    assert sorted(r["text"] for r in found) == sorted(everything)  # all of them, distinct
    assert found[0]["text"] == max(exact, key=exact.get)
    for r in found:  # the reported score is the recomputed log-probability
        assert -r["nats_per_char"] * r["chars"] == pytest.approx(exact[r["text"]], abs=1e-9)
        assert r["chars"] == L and r["stop"] is None
    scores = [r["nats_per_char"] for r in found]
    assert scores == sorted(scores)  # best first


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_beam_of_one_is_greedy_sampling(cell):
    model, vocab = random_model(cell)
    greedy = sample_text(model, vocab, 120, temperature=0, prime="abc")
    (best,) = beams(model, vocab, 120, beam=1, prime="abc")
    assert "abc" + best["text"] == greedy[0]
    assert len(set(best["text"])) > 1  # not one character repeated


def test_beam_search_is_deterministic_and_a_wider_beam_scores_its_best_at_least_as_well():
    model, vocab = random_model(V=6, H=12, dtype=np.float64)
    wide = beams(model, vocab, 6, beam=6**3, num_samples=3, prime="ab")
    assert wide == beams(model, vocab, 6, beam=6**3, num_samples=3, prime="ab")
    narrow = beams(model, vocab, 6, beam=2, prime="ab")
    assert wide[0]["nats_per_char"] <= narrow[0]["nats_per_char"] + 1e-12
    assert len({r["text"] for r in wide}) == 3
    for r in wide:
        assert r["nats_per_char"] * 6 == pytest.approx(-logp_given(model, vocab, "ab", r["text"]))


def test_ties_go_to_the_better_ranked_parent_then_the_smaller_character_id():
    model, vocab = random_model(V=4, H=4)
    assert vocab.chars == "\nabc"  # ids 0..3
    for p in model.params.values():
        p[...] = 0.0  # every character equally likely: everything ties
    found = beams(model, vocab, 3, beam=5, num_samples=5, prime="a")
    assert [r["text"] for r in found] == ["\n\n\n", "\n\na", "\n\nb", "\n\nc", "\na\n"]


def test_a_beam_text_stream_holds_the_samples_best_first():
    model, vocab = random_model()
    records = beams(model, vocab, 30, beam=4, num_samples=3, prime="b")
    texts = sample_text(model, vocab, 30, beam=4, num_samples=3, prime="b")
    assert texts == ["b" + r["text"] for r in records]
    assert records[0]["seed"] is None and records[0]["temperature"] is None
    assert records[0]["beam"] == 4


@pytest.mark.parametrize("bad", [dict(beam=0), dict(beam=2, temperature=0.5), dict(beam=2, top_k=3),
                                 dict(beam=2, top_p=0.9), dict(beam=2, num_samples=3)])
def test_bad_beam_options_raise_value_error(bad):
    model, vocab = random_model()
    with pytest.raises(ValueError):
        generate(model, vocab, 10, **bad)


def test_absurd_beam_searches_are_refused_up_front():
    model, vocab = random_model()
    with pytest.raises(CharRNNError, match="beam search with --beam 100,000 over .* GiB"):
        generate(model, vocab, 10**9, beam=100_000)
    config = ModelConfig(vocab_size=vocab.size, hidden_size=1024, num_layers=2)
    zeros = {name: np.zeros(shape, np.float32) for name, shape in param_shapes(config).items()}
    big = CharRNN(config, params=zeros)
    memory, seconds = search_cost(big, 1000, 100_000)
    assert memory < 1 << 30 and seconds > 86400  # fits, but would take more than a day
    with pytest.raises(CharRNNError, match="would take about 3[0-9] hours"):
        generate(big, vocab, 100_000, beam=1000)
