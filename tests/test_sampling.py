"""Sampling: the fast stepper, the pick from logits, priming, streaming, determinism, scoring,
and the `charrnn.load` Python API.

`trained` / `save_checkpoint` are also used by the sample/eval/info CLI tests."""

import functools
import itertools
import time

import numpy as np
import pytest

import charrnn
from helpers import oracle
from charrnn import checkpoint
from charrnn.data import Vocab
from charrnn.errors import CorpusError
from charrnn.model import CharRNN, ModelConfig
from charrnn.stepper import Stepper
from charrnn.sampling import LoadedModel, Picker, generate, prime_ids, sample_text
from charrnn.scoring import score

HELLO = "hello world, "
CYRILLIC = "привет, мир! "


@functools.lru_cache(maxsize=None)
def trained(text=HELLO, cell="lstm", steps=250):
    """A 2x32 model overfit to `text` repeated, so that greedy sampling continues the cycle."""
    from charrnn.optim import Adam, clip_grad_norm

    vocab = Vocab(text)
    ids = vocab.encode(text * 20).astype(np.int64)
    model = CharRNN(ModelConfig(cell=cell, vocab_size=vocab.size, hidden_size=32, num_layers=2),
                    seed=0)
    opt = Adam(model.params)
    N, T = 4, 26
    x = np.stack([ids[n * 50 : n * 50 + T] for n in range(N)])
    y = np.stack([ids[n * 50 + 1 : n * 50 + T + 1] for n in range(N)])
    for _ in range(steps):
        _, grads, _ = model.loss_and_grads(x, y, model.init_state(N))
        clip_grad_norm(grads, 5.0)
        opt.step(model.params, grads, 1e-2)
    return model, vocab


def save_checkpoint(path, text=HELLO, cell="lstm", training=None):
    model, vocab = trained(text, cell)
    if training is None:
        training = checkpoint.TrainingState(step=250, epoch=3.5, best_val_loss=0.01, time=12.5)
    checkpoint.save(path, checkpoint.Checkpoint(model=model, vocab=vocab, training=training))
    return path


def cycle(text, start, n):
    """The n characters that follow text[:start] in `text` repeated forever."""
    return "".join(itertools.islice(itertools.cycle(text), start, start + n))


def random_model(cell="lstm", V=20, H=16, layers=2, dtype=np.float32, seed=3):
    model = CharRNN(ModelConfig(cell=cell, vocab_size=V, hidden_size=H, num_layers=layers),
                    seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    for p in model.params.values():  # far from the initial point: peaked, varied predictions
        p[...] = rng.standard_normal(p.shape) * 0.8
    return model, Vocab("".join(chr(ord("a") + i) for i in range(V - 1)) + "\n")


# ----------------------------------------------------------------------------- the stepper


@pytest.mark.parametrize("N", [1, 3])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_stepper_equals_the_training_forward(cell, num_layers, N):
    model, _ = random_model(cell, V=7, H=6, layers=num_layers, dtype=np.float64)
    stepper, state = Stepper(model, N), model.init_state(N)
    rng = np.random.default_rng(1)
    for _ in range(6):
        ids = rng.integers(0, 7, N)
        fast = stepper.step(ids).copy()
        slow, state = oracle.step(model, ids, state)
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    for fast_layer, slow_layer in zip(stepper.state, state):
        for a, b in zip(fast_layer, slow_layer):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_select_continues_each_stream_from_the_chosen_one(cell):
    model, _ = random_model(cell, V=7, H=6, layers=2, dtype=np.float64)
    stepper, rng = Stepper(model, 3), np.random.default_rng(2)
    for _ in range(4):
        stepper.step(rng.integers(0, 7, 3))
    rows = np.array([2, 0, 2])
    chosen = tuple(tuple(a[:, rows] for a in layer) for layer in stepper.state)
    stepper.select(rows)
    for layer, expected in zip(stepper.state, chosen):
        for a, b in zip(layer, expected):
            np.testing.assert_array_equal(a, b)
    ids = np.array([1, 5, 3])
    slow, _ = oracle.step(model, ids, chosen)
    np.testing.assert_allclose(stepper.step(ids), slow, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- picking


def picker_ids(temperature=1.0, top_k=None, top_p=None, us=(0.0,)):
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    logits = np.log(probs).astype(np.float32)[None, :] + 7.0  # a shift changes nothing
    picker = Picker(1, 4, temperature, top_k, top_p)
    return [int(picker.pick(logits, np.array([u]))[0]) for u in us]


def test_pick_follows_the_cumulative_distribution():
    assert picker_ids(us=[0.0, 0.49, 0.51, 0.79, 0.81, 0.94, 0.96, 0.999999]) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_top_k_keeps_the_k_most_probable_and_renormalises():
    # top 2 renormalised: [0.625, 0.375]
    assert picker_ids(top_k=2, us=[0.6, 0.63, 0.99, 0.9999999]) == [0, 1, 1, 1]


def test_top_p_keeps_the_smallest_set_reaching_p():
    assert picker_ids(top_p=0.75, us=[0.6, 0.63, 0.9999999]) == [0, 1, 1]  # {0.5, 0.3}
    assert picker_ids(top_p=0.4, us=[0.0, 0.9999999]) == [0, 0]  # 0.5 alone reaches 0.4
    assert picker_ids(top_p=0.9, us=[0.9999999]) == [2]  # 0.5 + 0.3 + 0.15 = 0.95 >= 0.9


def test_temperature_reshapes_the_distribution():
    # temperature 2: p ~ sqrt(p) = [.707, .548, .387, .224] / 1.866 -> cumulative .379, .672, .880
    assert picker_ids(temperature=2.0, us=[0.37, 0.39, 0.66, 0.68, 0.87, 0.89]) == [0, 1, 1, 2, 2, 3]
    assert picker_ids(temperature=1e-300, us=[0.999]) == [0]  # a tiny temperature is greedy


def test_sampling_frequencies_match_the_probabilities():
    us = np.random.default_rng(0).random(20000)
    counts = np.bincount(picker_ids(us=us), minlength=4) / us.size
    np.testing.assert_allclose(counts, [0.5, 0.3, 0.15, 0.05], atol=0.015)


# ----------------------------------------------------------------------------- generating


def test_greedy_sampling_continues_the_learned_text():
    model, vocab = trained()
    out = sample_text(model, vocab, 40, temperature=0, prime="hello w")
    assert out == ["hello w" + cycle(HELLO, 7, 40)]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_top_k_1_equals_greedy(cell):
    model, vocab = random_model(cell)
    greedy = sample_text(model, vocab, 200, temperature=0, prime="abc", rng=1)
    for temperature, seed in [(0.8, 1), (1.5, 7)]:
        assert sample_text(model, vocab, 200, temperature=temperature, top_k=1, prime="abc",
                           rng=seed) == greedy
    assert len(set(greedy[0])) > 2  # the model says more than one thing


def test_same_seed_same_text_and_other_seeds_differ():
    model, vocab = random_model()
    options = dict(temperature=1.0, top_k=10, top_p=0.95, prime="ab")
    a = sample_text(model, vocab, 300, rng=np.random.default_rng(5), **options)
    b = sample_text(model, vocab, 300, rng=5, **options)
    c = sample_text(model, vocab, 300, rng=6, **options)
    assert a == b
    assert a != c


def test_fresh_entropy_without_a_seed():
    model, vocab = random_model()
    assert sample_text(model, vocab, 200, temperature=1.5) != sample_text(model, vocab, 200,
                                                                           temperature=1.5)


def test_output_is_the_prime_then_exactly_length_characters():
    model, vocab = random_model()
    for length in (0, 1, 57):
        (text,) = sample_text(model, vocab, length, prime="abc", rng=0)
        assert text.startswith("abc") and len(text) == 3 + length


def test_several_samples_run_as_one_batch():
    model, vocab = random_model()
    texts = sample_text(model, vocab, 100, temperature=1.0, prime="s", rng=0, num_samples=4)
    assert len(texts) == 4 and all(len(t) == 101 and t[0] == "s" for t in texts)
    assert len(set(texts)) == 4
    greedy = sample_text(model, vocab, 50, temperature=0, prime="s", num_samples=3)
    assert greedy == sample_text(model, vocab, 50, temperature=0, prime="s") * 3


def test_generate_streams_lazily():
    model, vocab = random_model()
    started = time.perf_counter()
    stream = generate(model, vocab, 10**12, rng=0)  # would take days to finish
    first = list(itertools.islice(stream, 5))
    assert time.perf_counter() - started < 5.0
    assert len(first) == 5 and all(len(chars) == 1 for chars in first)
    assert "".join(c for (c,) in first) == sample_text(model, vocab, 5, rng=0)[0]


def test_empty_prime_starts_from_a_newline():
    model, vocab = random_model()
    assert "\n" in vocab.chars
    assert sample_text(model, vocab, 80, rng=3) == [s[1:] for s in
                                                     sample_text(model, vocab, 80, prime="\n", rng=3)]
    no_newline = Vocab(vocab.chars.replace("\n", "{"))  # '{' sorts last: id 0 is still 'a'
    assert sample_text(model, no_newline, 80, rng=3) == [s[1:] for s in
                                                         sample_text(model, no_newline, 80, prime="a", rng=3)]
    np.testing.assert_array_equal(prime_ids(no_newline, ""), [0])


def test_unknown_prime_characters_are_an_error_naming_them():
    model, vocab = random_model()
    with pytest.raises(CorpusError, match=r"2 character\(s\).*'Z', 'é'.*--unknown skip"):
        generate(model, vocab, 10, prime="abZcé")  # raised at the call, before any output


def test_unknown_prime_characters_can_be_skipped():
    model, vocab = random_model()
    skipped = sample_text(model, vocab, 60, prime="abZc", unknown="skip", rng=2)
    assert skipped == ["abZc" + sample_text(model, vocab, 60, prime="abc", rng=2)[0][3:]]
    only_unknown = sample_text(model, vocab, 60, prime="ZZ", unknown="skip", rng=2)
    assert only_unknown == ["ZZ" + sample_text(model, vocab, 60, rng=2)[0]]


@pytest.mark.parametrize("bad", [dict(length=-1), dict(temperature=-0.1), dict(top_k=0),
                                 dict(top_p=0.0), dict(top_p=1.01), dict(num_samples=0),
                                 dict(unknown="ignore"), dict(temperature=float("nan"))])
def test_bad_options_raise_value_error(bad):
    model, vocab = random_model()
    options = {"length": 10, **bad}
    with pytest.raises(ValueError):
        generate(model, vocab, **options)


def test_cyrillic_model_continues_a_cyrillic_prime():
    model, vocab = trained(CYRILLIC)
    (text,) = sample_text(model, vocab, 30, temperature=0, prime="прив")
    assert text == "прив" + cycle(CYRILLIC, 4, 30)


# ----------------------------------------------------------------------------- scoring


def test_score_equals_the_loss_of_one_carried_stream():
    model, vocab = random_model(dtype=np.float64)
    ids = np.random.default_rng(0).integers(0, vocab.size, 50)
    total, n = score(model, ids, chunk=7)  # 7 windows, the state carried across them
    whole, _ = model.loss(ids[None, :-1], ids[None, 1:], model.init_state(1))
    assert n == 49
    assert total / n == pytest.approx(whole, rel=1e-12)


def test_score_needs_two_characters():
    model, _ = random_model()
    with pytest.raises(CorpusError, match="at least 2 characters"):
        score(model, np.array([1]))


# ----------------------------------------------------------------------------- Python API


def test_load_and_sample_from_a_run_dir_or_a_file(tmp_path):
    run = tmp_path / "hello"
    run.mkdir()
    path = save_checkpoint(run / "best.npz")
    model = charrnn.load(run)
    assert isinstance(model, LoadedModel) and model.path == path
    assert model.vocab == Vocab(HELLO) and model.config.num_layers == 2
    assert model.training.step == 250
    text = model.sample(26, temperature=0, prime="hello")
    assert text == "hello" + cycle(HELLO, 5, 26)
    assert charrnn.load(path).sample(26, temperature=0, prime="hello") == text
    assert charrnn.load("hello", out_dir=tmp_path).sample(100, seed=4) == model.sample(100, seed=4)
    chars = list(model.generate(10, temperature=0, prime="hel"))
    assert chars == list(cycle(HELLO, 3, 10))
    assert "2x32 lstm" in repr(model)


def test_the_python_api_takes_stop_texts_beams_and_records(tmp_path):
    model = charrnn.load(save_checkpoint(tmp_path / "m.npz"))
    assert model.sample(40, temperature=0, prime="hel", stop=["or"]) == "hello w"
    assert list(model.generate(40, temperature=0, prime="hel", stop=["or"])) == list("lo w")
    assert model.sample(12, beam=3, prime="hel") == "hel" + cycle(HELLO, 3, 12)
    records = list(model.generate(30, prime="he", seed=4, records=True, num_samples=2,
                                  stop=["l"]))
    assert [r["sample"] for r in records] == [0, 1] and records[0]["seed"] == 4
    assert all("l" not in r["text"] and r["stops"] == ["l"] for r in records)
    with pytest.raises(ValueError, match="needs records=True"):
        model.generate(10, num_samples=2)


def test_load_picks_the_newest_run_without_a_path(tmp_path):
    run = tmp_path / "only"
    run.mkdir()
    save_checkpoint(run / "latest.npz")
    assert charrnn.load(out_dir=tmp_path).path == run / "latest.npz"



def test_sample_context_ends_at_the_last_paragraph_break():
    from charrnn.sampling import sample_context

    text = "one line\nanother\n\nnew paragraph\nlast line without end"
    no_paragraph = "first\nsecond\nthird"
    vocab = Vocab(text + no_paragraph)
    assert sample_context(vocab, vocab.encode(text), length=12) == "ne\nanother\n\n"
    assert sample_context(vocab, vocab.encode(no_paragraph), length=100) == "first\nsecond\n"
    flat = Vocab("abc")
    assert sample_context(flat, flat.encode("abcabc"), length=4) == "cabc"


def test_context_is_read_first_and_not_printed():
    """Greedy sampling after the context "hello wor" continues it; the context is not output."""
    model, vocab = trained()
    assert sample_text(model, vocab, 5, temperature=0, context="hello wor") == ["ld, h"]
    assert sample_text(model, vocab, 3, temperature=0, prime="wo", context="hello ") == ["world"]
