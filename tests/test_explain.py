"""`charrnn.explain`: reading a text as eval does, top-k, activations, the unit finder, gate
saturation and gradient flow through time (against finite differences, for every cell)."""

import math

import numpy as np
import pytest

import charrnn
from helpers import oracle
from helpers import toy_cell
from charrnn import layers
from charrnn.data import Vocab
from charrnn.errors import CharRNNError
from charrnn.explain import (ExplainError, Unit, explain, flow_starts, make_unit,
                             state_gradients)
from charrnn.explain.features import FEATURES, text_features
from charrnn.model import CharRNN, ModelConfig
from charrnn.scoring import score
from helpers.gradcheck import rel_error
from test_sampling import HELLO, save_checkpoint, trained

ALL = ["lstm", "gru", "rnn", toy_cell.TOY.name]
CHARS = "abcdefgh (\".)\n"


def random_text(n, chars=CHARS, seed=0):
    rng = np.random.default_rng(seed)
    return "".join(rng.choice(list(chars), n))


def random_model(cell, H=6, num_layers=2, chars=CHARS, scale=0.7, seed=1):
    """A float64 model far from its initial point: varied states, saturating gates."""
    vocab = Vocab(chars)
    model = CharRNN(ModelConfig(cell, vocab.size, H, num_layers), seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p[...] = rng.standard_normal(p.shape) * scale
    return model, vocab


# ----------------------------------------------------------------------------- reading


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_per_character_losses_average_to_the_eval_figure(cell):
    model, vocab = trained(HELLO, cell)
    text = (HELLO * 50)[:600] + "Z" + HELLO * 3  # three windows of 256, an unknown character
    e = explain(model, vocab, text)
    total, n = score(model, vocab.encode(text, unknown="skip"))
    assert e.ids.size == n + 1 == len(text) - 1 and e.skipped == 1 and e.unknown_chars == "Z"
    assert math.isnan(e.nats[0]) and np.isfinite(e.nats[1:]).all()
    assert e.nats_per_char == pytest.approx(total / n, rel=1e-5, abs=1e-6)  # float32 model
    assert e.bits_per_char == pytest.approx(total / n / math.log(2), rel=1e-5, abs=1e-6)


def test_top_k_is_sorted_and_is_the_softmax_of_the_logits():
    model, vocab = random_model("lstm")
    text = random_text(300)
    e = explain(model, vocab, text, top_k=4)
    state = model.init_state(1)
    for i, ch in enumerate(text):
        logits, state = oracle.step(model, vocab.encode(ch), state)
        p = np.exp(logits[0] - logits[0].max())
        p /= p.sum()
        order = np.argsort(-p, kind="stable")[:4]
        np.testing.assert_array_equal(e.top_ids[i], order)
        np.testing.assert_allclose(e.top_probs[i], p[order], rtol=1e-10)
        if i + 1 < len(text):  # row i predicts text[i + 1], and nats[i + 1] is its surprise
            assert e.nats[i + 1] == pytest.approx(-np.log(p[vocab.encode(text[i + 1])[0]]))
    assert (np.diff(e.top_probs, axis=1) <= 0).all()


@pytest.mark.parametrize("cell", ALL)
def test_activations_are_the_engines_states_and_gates(cell):
    model, vocab = random_model(cell)
    text = random_text(300)
    e = explain(model, vocab, text, arrays="all", units=[make_unit(model.config, 1, 2)])
    ids = vocab.encode(text)
    state = model.init_state(1)
    for i in range(len(text)):  # the states, one character at a time through the engine
        _, state = oracle.step(model, ids[i : i + 1], state)
        for layer in range(2):
            for k, s in enumerate(model.cell.states):
                np.testing.assert_allclose(e.activations[layer, s][i], state[layer][k][:, 0],
                                           rtol=1e-9, atol=1e-12)
    _, caches, _ = model.forward_layers(ids[None, :].astype(np.int64), model.init_state(1))
    for layer, (_, cache) in enumerate(caches):  # the gates, from one forward over all of it
        for g in model.cell.gates:
            np.testing.assert_allclose(e.activations[layer, g],
                                       model.cell.internals(cache)[g][:, :, 0], atol=1e-10)
    np.testing.assert_array_equal(e.unit(Unit(1, 2)), e.activations[1, "h"][:, 2])


def test_the_python_api_returns_arrays(tmp_path):
    save_checkpoint(tmp_path / "m.npz", HELLO)
    e = charrnn.load(tmp_path / "m.npz").explain(HELLO * 4, top_k=3, arrays="states",
                                                 saturation=True)
    assert e.nats.shape == (52,) and e.top_ids.shape == (52, 3)
    assert e.activations[1, "c"].shape == (52, 32) and e.activations[0, "h"].dtype == np.float32
    assert {(s.layer, s.gate) for s in e.saturation} == {(l, g) for l in (0, 1) for g in "ifog"}
    assert all(0 <= s.left <= 1 and 0 <= s.right <= 1 - s.left for s in e.saturation)


def test_surprising_spans_are_the_highest_means_without_overlap():
    model, vocab = random_model("gru")
    e = explain(model, vocab, random_text(200))
    spans = e.surprising_spans(count=3, length=5)
    nats = np.nan_to_num(e.nats)
    means = np.convolve(nats, np.ones(5) / 5, mode="valid")
    assert spans[0][2] == pytest.approx(means.max())
    assert [m for _, _, m in spans] == sorted((m for _, _, m in spans), reverse=True)
    for a, b in zip(spans, spans[1:]):
        assert a[1] <= b[0] or b[1] <= a[0]


# ----------------------------------------------------------------------------- the finder


def test_features_describe_the_text_up_to_each_character():
    text = 'Say "Hi (x)!" 12.\n  ab\nc'
    f = text_features(text)
    assert list(f) == list(FEATURES)
    on = {name: "".join(c for c, v in zip(text, f[name]) if v) for name in f}
    assert on["quotes"] == '"Hi (x)!'  # the opening quote is inside, the closing one not
    assert on["brackets"] == "(x"
    assert on["uppercase"] == "SH" and on["digit"] == "12"
    assert on["word_start"] == "SHx1ac"
    assert on["sentence_end"] == "!.\n  "  # from the punctuation to the next visible character
    assert f["line_position"].tolist()[17:] == [0, 1, 2, 3, 4, 0, 1]
    assert f["indent"].tolist()[17:] == [0, 1, 2, 2, 2, 0, 0]


def planted_lstm(chars="ABCDabcd .\n", H=6, seed=0):
    """An LSTM whose layer-0 unit 0 computes h = tanh(+-0.995) = +-0.76: i and o open (bias +8),
    f shut (-8), g = tanh(+-3) by whether the character read is upper case; the others are
    random."""
    vocab = Vocab(chars)
    model = CharRNN(ModelConfig("lstm", vocab.size, H, 2), seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p[...] = rng.standard_normal(p.shape)
    Wx, Wh, b = (model.params[f"layers.0.{k}"] for k in ("Wx", "Wh", "b"))
    i, f, o, g = (k * H for k in range(4))  # unit 0's column in each gate block
    Wh[:, [i, f, o, g]] = Wx[:, [i, f, o]] = 0.0
    b[[i, f, o, g]] = 8.0, -8.0, 8.0, 0.0
    Wx[:, g] = [3.0 if c.isupper() else -3.0 for c in vocab.chars]
    return model, vocab


def test_the_finder_ranks_a_planted_unit_first():
    model, vocab = planted_lstm()
    text = random_text(2000, chars="ABCDabcdabcd  .\n", seed=4)
    e = explain(model, vocab, text, find=True, arrays="states")
    h = e.activations[0, "h"][:, 0]
    upper = np.array([c.isupper() for c in text])
    assert np.allclose(h[upper], np.tanh(np.tanh(3)), atol=1e-3)
    assert np.allclose(h[~upper], -np.tanh(np.tanh(3)), atol=1e-3)
    match = {m.feature: m for m in e.finder}["uppercase"]
    (unit, r), *_ = match.units
    assert (unit.layer, unit.index) == (0, 0) and r > 0.95
    assert unit.option in (f"--unit 0:0 --state {s}" for s in ("h", "c"))
    assert {m.feature for m in e.finder if not m.units} == {"quotes", "brackets", "digit"}


def test_the_finders_r_is_pearsons_over_the_whole_text():
    model, vocab = random_model("lstm")
    text = random_text(700)  # three windows, merged by the pairwise update
    e = explain(model, vocab, text, find=True, find_top=2, arrays="states")
    features = text_features(text)
    for match in e.finder:
        for unit, r in match.units:
            expect = np.corrcoef(e.unit(unit), features[match.feature])[0, 1]
            assert r == pytest.approx(expect, abs=1e-9)


# ----------------------------------------------------------------------------- gradient flow


def loss_after_nudging(model, x, y, state, layer, name, t, j, n, eps):
    """sum_n -ln p(y_n | x_n) with state `name` of `layer` after step t moved by eps at unit j
    of stream n: that layer runs to step t, its state is nudged (for the LSTM's c, h_t = o_t
    tanh(c_t) moves with it) and it goes on from there; the layers above read its outputs."""
    cell = model.cell
    N, T = x.shape
    inp = np.eye(model.config.vocab_size)[x]  # (N, T, V)
    for l in range(model.config.num_layers):
        params, s0 = model.layer_params(l), tuple(a.T for a in state[l])
        if l != layer:
            inp = layers.cell_forward(cell, inp, s0, params)[0]
            continue
        head, after, cache = layers.cell_forward(cell, inp[:, : t + 1], s0, params)
        after = [a.copy() for a in after]
        after[cell.states.index(name)][n, j] += eps
        if name == "c":
            o = cell.internals(cache[3])["o"][t]  # (H, N)
            after[0][n] = o[:, n] * np.tanh(after[1][n])
        head[:, t] = after[0]
        tail = [layers.cell_forward(cell, inp[:, t + 1 :], tuple(after), params)[0]] \
            if t + 1 < T else []
        inp = np.concatenate([head, *tail], axis=1)
    z = inp[:, -1] @ model.params["head.W"] + model.params["head.b"]
    lse = z.max(axis=1) + np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1))
    return float(np.sum(lse - z[np.arange(N), y]))


@pytest.mark.parametrize("cell", ALL)
def test_state_gradients_equal_central_differences(cell):
    model, _ = random_model(cell, H=4, chars="abcdef")
    rng = np.random.default_rng(2)
    N, T, eps = 2, 5, 1e-5
    x, y = rng.integers(0, 6, (N, T)), rng.integers(0, 6, N)
    state = tuple(tuple(rng.standard_normal(a.shape) * 0.5 for a in layer)
                  for layer in model.init_state(N))
    grads = state_gradients(model, x, y, state)
    assert set(grads) == {(l, s) for l in (0, 1) for s in model.cell.states}
    for (layer, name), g in grads.items():
        numeric = np.zeros_like(g)
        for t, j, n in np.ndindex(*g.shape):
            numeric[t, j, n] = (loss_after_nudging(model, x, y, state, layer, name, t, j, n, eps)
                                - loss_after_nudging(model, x, y, state, layer, name, t, j, n,
                                                     -eps)) / (2 * eps)
        assert rel_error(g, numeric) < 1e-6, (layer, name)
        assert np.abs(g).max() > 1e-6  # a gradient that could be wrong


def test_gradient_flow_averages_each_windows_norms_from_its_carried_state():
    model, vocab = random_model("lstm", scale=0.5)
    text = random_text(157)
    e = explain(model, vocab, text, gradient_flow=True, window=20, arrays="states")
    flow = e.gradient_flow
    np.testing.assert_array_equal(flow.starts, np.arange(7) * 20)
    ids = e.ids
    expect = {key: np.zeros(20) for key in flow.norms}
    for s in flow.starts:  # each window alone, from the state after the character before it
        state = tuple(tuple(e.activations[l, a][s - 1][:, None] if s else np.zeros((6, 1))
                            for a in ("h", "c")) for l in (0, 1))
        for key, g in state_gradients(model, ids[None, s : s + 20], ids[[s + 20]], state).items():
            expect[key] += np.linalg.norm(g[::-1, :, 0], axis=1) / 7
    for key, g in flow.norms.items():
        np.testing.assert_allclose(g, expect[key], rtol=1e-9)
        k = flow.horizon(key)
        assert k is None or (g[k] < g[0] / 100 and (g[:k] >= g[0] / 100).all())


def test_windows_are_spread_over_a_long_text_without_overlap():
    assert flow_starts(1000, 100, 64).tolist() == list(range(0, 900, 100))
    starts = flow_starts(100_000, 100, 64)
    assert starts.size == 64 and starts[0] == 0 and starts[-1] == 100_000 - 101
    assert (np.diff(starts) >= 100).all()


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, message", [
    ({"layer": 2, "index": 0}, "layer 2 does not exist: this model's layers are 0 to 1."),
    ({"layer": 0, "index": 6}, "unit 6 does not exist: each layer has 6 units, 0 to 5."),
    ({"layer": 0, "index": 0, "gate": "f"}, "the gru cell has no gate 'f'; its gates are r, z, n."),
    ({"layer": 0, "index": 0, "state": "c"}, "the gru cell has no state 'c'; its states are h."),
])
def test_a_unit_the_model_lacks_is_named_with_the_valid_range(kwargs, message):
    model, _ = random_model("gru")
    with pytest.raises(ExplainError) as err:
        make_unit(model.config, **kwargs)
    assert str(err.value) == message and isinstance(err.value, CharRNNError)


@pytest.mark.parametrize("text, kwargs, message", [
    ("", {}, "the text is empty"),
    ("Z", {}, "the text has 0 character(s) the model knows; it needs at least 2."),
    ("abcdef", {"span": (3, 9)}, "the span 3:9 is outside the text, which has 6 characters"),
    ("abcdef", {"span": (4, 4)}, "the span 4:4 is outside"),
    ("abcdef", {"gradient_flow": True, "window": 6}, "needs a text of at least 7"),
    ("abcdef", {"arrays": "gates"}, "arrays must be 'all', 'states' or (layer, name) pairs"),
])
def test_bad_options_are_one_sentence_errors(text, kwargs, message):
    model, vocab = random_model("lstm")
    with pytest.raises(ExplainError, match=None) as err:
        explain(model, vocab, text, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_memory_is_checked_before_reading(monkeypatch):
    from charrnn import errors

    model, vocab = random_model("lstm")
    monkeypatch.setattr(errors, "_physical_memory", lambda: 10_000)
    with pytest.raises(CharRNNError, match=r"explaining 2,000 characters needs about"):
        explain(model, vocab, random_text(2000), arrays="all")
    monkeypatch.setattr(errors, "_physical_memory", lambda: 10_000_000)
    text = random_text(20_000)  # 32 windows of 100 steps fit, one of 10,000 does not
    assert explain(model, vocab, text, gradient_flow=True).gradient_flow.starts.size == 64
    with pytest.raises(CharRNNError, match=r"or use a shorter gradient-flow window"):
        explain(model, vocab, text, gradient_flow=True, window=10_000)
