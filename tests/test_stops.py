"""Stop texts (`charrnn.stops`) and samples as records, through `sampling.generate`: alone, in
batches, in beam search; and the log-probabilities the records report, against `score`."""

import json
import math

import numpy as np
import pytest

from charrnn.data import Vocab
from charrnn.sampling import generate, sample_text
from charrnn.scoring import score
from charrnn.stops import Stops, unescape
from test_sampling import HELLO, cycle, random_model, trained


def records(model, vocab, length, **options):
    return list(generate(model, vocab, length, records=True, **options))


def first_stop(text, stops):
    """(text before the first stop, that stop) the way a sample stops: as soon as the text
    read so far ends with a stop text (the longest, if several); (text, None) if none does."""
    for end in range(1, len(text) + 1):
        ending = [s for s in stops if text[:end].endswith(s)]
        if ending:
            stop = max(ending, key=len)
            return text[: end - len(stop)], stop
    return text, None


def nats_given(model, vocab, before, text):
    """-log p(text | before) recomputed with `score` from the zero state."""
    total, _ = score(model, vocab.encode(before + text))
    return total - (score(model, vocab.encode(before))[0] if len(before) > 1 else 0.0)


# ----------------------------------------------------------------------------- parts


def test_unescape_reads_what_format_chars_writes():
    assert unescape(r"\n\n") == "\n\n"
    assert unescape(r"a\tb\r\\n") == "a\tb\r\\n"
    assert unescape(r"\x41\u00e9\U0001F600 é") == "Aé😀 é"
    assert unescape("plain") == "plain"
    for bad in [r"\q", r"\x4", r"\U00110000"]:
        with pytest.raises(ValueError, match="cannot read the escape"):
            unescape(bad)
    with pytest.raises(ValueError, match="a lone .* at the end"):
        unescape("end\\")


def test_stops_find_the_longest_text_a_character_would_complete():
    vocab = Vocab("abcd\n")
    stops = Stops(vocab, ["b", "ab", "\n\n", "é"])
    assert stops.texts == ("b", "\n\n", "ab") and stops.unmatchable == ("é",)
    tails = stops.tails(3)
    stops.push(tails, vocab.encode("aa\n").astype(np.intp))  # streams end with a, a, \n
    tails[1] = -1  # stream 1 has generated nothing: the prime never counts
    ends = stops.finishing(tails)
    b, nl = vocab.encode("b\n")
    assert ends[0, b] == 3 and ends[1, b] == 1 and ends[2, nl] == 2  # "ab", "b", "\n\n"
    assert np.count_nonzero(ends) == 4  # and "b" after "\n"
    assert stops.pending("xxa") == 1 and stops.pending("x\n") == 1 and stops.pending("ax") == 0
    assert not Stops(vocab, ["é"]) and not Stops(vocab)
    with pytest.raises(ValueError, match="non-empty"):
        Stops(vocab, [""])


# ----------------------------------------------------------------------------- one sample


def test_a_sample_stops_at_the_first_stop_text_which_is_not_printed():
    model, vocab = trained()
    assert sample_text(model, vocab, 40, temperature=0, prime="hel", stop=["or"]) == ["hello w"]
    (r,) = records(model, vocab, 40, temperature=0, prime="hel", stop=["or", "xyz"])
    assert (r["text"], r["stop"], r["chars"]) == ("lo w", "or", 6)
    assert r["stops"] == ["or", "xyz"] and r["length"] == 40


def test_a_stop_text_in_the_prime_or_across_its_end_does_not_stop_the_sample():
    """Only generated characters count: "ll" spans the prime "hel" and the generated "lo"."""
    model, vocab = trained()
    (r,) = records(model, vocab, 40, temperature=0, prime="hel", stop=["ll", "he"])
    assert (r["text"], r["stop"]) == ("lo world, ", "he")
    (r,) = records(model, vocab, 40, temperature=0, prime="hello", stop=["o"])
    assert (r["text"], r["stop"]) == (" w", "o")


def test_without_a_stop_the_length_runs_out():
    model, vocab = trained()
    (r,) = records(model, vocab, 12, temperature=0, prime="hel", stop=["zz"])
    assert (r["text"], r["stop"], r["chars"]) == (cycle(HELLO, 3, 12), None, 12)


def test_the_stream_holds_back_only_what_may_begin_a_stop_text():
    model, vocab = trained()
    pieces = [p for (p,) in generate(model, vocab, 40, temperature=0, prime="hel",
                                     stop=["world"])]
    # "lo w" is released at once except "w", held until "o", "r", "l", "d" complete the stop
    assert pieces == ["l", "o", " ", "", "", "", "", ""]
    pieces = [p for (p,) in generate(model, vocab, 9, temperature=0, prime="hel",
                                     stop=["wod"])]
    assert pieces == ["l", "o", " ", "", "", "wor", "l", "d", ","]  # "wo", then not "d"
    assert [p for (p,) in generate(model, vocab, 5, temperature=0, prime="hel",
                                   stop=["o w"])] == ["l", "", "", ""]


# ----------------------------------------------------------------------------- batches


@pytest.mark.parametrize("stops", [["a"], ["mq", "q"], ["\n", "ab", "mm"]])
def test_each_sample_of_a_batch_is_its_unstopped_self_cut_at_its_first_stop(stops):
    model, vocab = random_model()
    free = sample_text(model, vocab, 200, temperature=1.0, rng=4, num_samples=5)
    cut = records(model, vocab, 200, temperature=1.0, rng=4, num_samples=5, stop=stops)
    streamed = sample_text(model, vocab, 200, temperature=1.0, rng=4, num_samples=5, stop=stops)
    for text, r, s in zip(free, cut, streamed):
        assert (r["text"], r["stop"]) == first_stop(text, stops)
        assert s == r["text"]


# ----------------------------------------------------------------------------- beams


def test_beam_search_with_stop_texts_ranks_finished_beams_by_mean_log_probability():
    model, vocab = random_model(V=5, H=8, dtype=np.float64)
    stops = ["c", "bd"]
    found = records(model, vocab, 12, beam=6, num_samples=5, prime="a", stop=stops)
    finished = [r for r in found if r["stop"]]
    assert len(finished) == 3 and found[:3] == finished  # then two that ran out of length
    for r in found:
        generated = r["text"] + (r["stop"] or "")
        assert first_stop(generated, stops) == (r["text"], r["stop"])
        nats = nats_given(model, vocab, "a", generated)
        assert r["nats_per_char"] * r["chars"] == pytest.approx(nats, rel=1e-10)
        assert r["chars"] == len(generated) and (r["stop"] or len(generated) == 12)
    means = [r["nats_per_char"] for r in finished]
    assert means == sorted(means)
    assert len({r["text"] for r in found}) == 5


def test_beam_search_with_stop_texts_that_never_end_a_beam_finds_what_it_finds_without():
    model, vocab = random_model(V=5, H=8, dtype=np.float64)
    unstopped = records(model, vocab, 3, beam=3, num_samples=3, prime="a", stop=["dddd"])
    plain = records(model, vocab, 3, beam=3, num_samples=3, prime="a")
    assert [(r["text"], r["stop"], r["nats_per_char"]) for r in unstopped] == [
        (r["text"], None, r["nats_per_char"]) for r in plain]


# ----------------------------------------------------------------------------- records


@pytest.mark.parametrize("options", [dict(), dict(top_k=3, temperature=1.3),
                                     dict(stop=["\n"], num_samples=3), dict(temperature=0)])
def test_records_report_the_log_probability_score_computes(options):
    model, vocab = random_model(dtype=np.float64)
    found = records(model, vocab, 80, prime="ab", rng=9, **options)
    for r in found:
        json.loads(json.dumps(r))  # plain JSON values
        generated = r["text"] + (r["stop"] or "")
        assert r["chars"] == len(generated)
        nats = nats_given(model, vocab, "ab", generated)
        assert r["nats_per_char"] == pytest.approx(nats / r["chars"], rel=1e-10)
        assert r["bits_per_char"] == pytest.approx(r["nats_per_char"] / math.log(2))
        assert r["prime"] == "ab" and r["seed"] == 9


def test_records_texts_are_the_stream_texts_and_seeds_reproduce():
    model, vocab = random_model()
    fresh = records(model, vocab, 100, num_samples=2, temperature=1.0)
    seed = fresh[0]["seed"]
    assert isinstance(seed, int)
    assert records(model, vocab, 100, num_samples=2, temperature=1.0, rng=seed) == fresh
    assert [r["text"] for r in fresh] == [t for t in sample_text(
        model, vocab, 100, num_samples=2, temperature=1.0, rng=seed)]
    (empty,) = records(model, vocab, 0, rng=1)
    assert empty["text"] == "" and empty["nats_per_char"] is None and empty["chars"] == 0


def test_records_of_a_float32_model_agree_with_score_to_float32_precision():
    model, vocab = trained()
    (r,) = records(model, vocab, 60, prime="wor", rng=2, temperature=1.0)
    nats = nats_given(model, vocab, "wor", r["text"])
    assert r["nats_per_char"] == pytest.approx(nats / 60, rel=1e-4)
