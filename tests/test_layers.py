"""Gradient checks of every layer function against central finite differences, in float64."""

import numpy as np
import pytest

from charrnn import layers
from gradcheck import numerical_grad, rel_error

N, T, D, H = 2, 3, 4, 5
TOL = 1e-6


def _inputs(gates, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, D))
    h0 = rng.standard_normal((N, H))
    c0 = rng.standard_normal((N, H))
    Wx = rng.standard_normal((D, gates * H)) * 0.5
    Wh = rng.standard_normal((H, gates * H)) * 0.5
    b = rng.standard_normal(gates * H) * 0.5
    b2 = rng.standard_normal(gates * H) * 0.5
    dout = rng.standard_normal((N, T, H))
    return x, h0, c0, Wx, Wh, b, b2, dout


def _check(run, backward_grads, arrays):
    """Compare analytic gradients with numerical ones of loss = sum(out * dout)."""
    worst = 0.0
    for name, arr in arrays.items():
        num = numerical_grad(run, arr)
        err = rel_error(backward_grads[name], num)
        assert err < TOL, f"{name}: relative error {err:.2e}"
        worst = max(worst, err)
    return worst


def test_rnn_gradients():
    x, h0, _, Wx, Wh, b, _, dout = _inputs(1)
    h, cache = layers.rnn_forward(x, h0, Wx, Wh, b)
    dx, dh0, dWx, dWh, db = layers.rnn_backward(dout, cache)
    run = lambda: float(np.sum(layers.rnn_forward(x, h0, Wx, Wh, b)[0] * dout))
    grads = {"x": dx, "h0": dh0, "Wx": dWx, "Wh": dWh, "b": db}
    _check(run, grads, {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "b": b})


def test_lstm_gradients():
    x, h0, c0, Wx, Wh, b, _, dout = _inputs(4)
    rng = np.random.default_rng(1)
    dcT = rng.standard_normal((N, H))

    def run():
        h, cT, _ = layers.lstm_forward(x, h0, c0, Wx, Wh, b)
        return float(np.sum(h * dout))

    h, cT, cache = layers.lstm_forward(x, h0, c0, Wx, Wh, b)
    dx, dh0, dc0, dWx, dWh, db = layers.lstm_backward(dout, cache)
    grads = {"x": dx, "h0": dh0, "c0": dc0, "Wx": dWx, "Wh": dWh, "b": db}
    _check(run, grads, {"x": x, "h0": h0, "c0": c0, "Wx": Wx, "Wh": Wh, "b": b})


def test_lstm_final_cell_gradient():
    """The internal backward also takes a gradient on the final cell state cT."""
    x, h0, c0, Wx, Wh, b, _, dout = _inputs(4, seed=3)
    dcT = np.random.default_rng(2).standard_normal((H, N))
    XP = layers.project(np.ascontiguousarray(x.transpose(2, 1, 0)), Wx, b)
    h0f, c0f = h0.T.copy(), c0.T.copy()

    def run():
        _, cT, _ = layers.lstm_sequence_forward(XP, h0f, c0f, Wh)
        return float(np.sum(cT * dcT))

    _, _, cache = layers.lstm_sequence_forward(XP, h0f, c0f, Wh)
    dXP, dh0, dc0, dWh = layers.lstm_sequence_backward(np.zeros((H, T, N)), cache, dcT)
    _check(run, {"XP": dXP, "c0": dc0, "Wh": dWh}, {"XP": XP, "c0": c0f, "Wh": Wh})


def test_gru_gradients():
    x, h0, _, Wx, Wh, bx, bh, dout = _inputs(3)
    h, cache = layers.gru_forward(x, h0, Wx, Wh, bx, bh)
    dx, dh0, dWx, dWh, dbx, dbh = layers.gru_backward(dout, cache)
    run = lambda: float(np.sum(layers.gru_forward(x, h0, Wx, Wh, bx, bh)[0] * dout))
    grads = {"x": dx, "h0": dh0, "Wx": dWx, "Wh": dWh, "bx": dbx, "bh": dbh}
    _check(run, grads, {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "bx": bx, "bh": bh})


def test_embed_gradients():
    rng = np.random.default_rng(4)
    V, G = 6, 8
    ids = rng.integers(0, V, size=(N, T))
    ids[0, 0] = ids[1, 2]  # a repeated id must accumulate
    Wx = rng.standard_normal((V, G))
    b = rng.standard_normal(G)
    dXP = rng.standard_normal((G, T, N))
    XP = layers.embed(ids, Wx, b)
    whole = np.asarray(XP)
    assert whole.shape == XP.shape == (G, T, N)
    for t in range(T):
        np.testing.assert_array_equal(XP[:, t], whole[:, t])  # read one step at a time
        for n in range(N):
            np.testing.assert_allclose(whole[:, t, n], Wx[ids[n, t]] + b)
    dWx, db = layers.embed_backward(np.ascontiguousarray(dXP.transpose(1, 2, 0)), ids, V)
    run = lambda: float(np.sum(layers.embed(ids, Wx, b) * dXP))
    _check(run, {"Wx": dWx, "b": db}, {"Wx": Wx, "b": b})


def test_softmax_cross_entropy_gradients():
    rng = np.random.default_rng(5)
    V = 7
    X = rng.standard_normal((H, T, N))
    W = rng.standard_normal((H, V))
    b = rng.standard_normal(V)
    y = rng.integers(0, V, size=(N, T))
    loss, cache = layers.softmax_cross_entropy(X, W, b, y)
    dX, dW, db = layers.softmax_cross_entropy_backward(cache)
    run = lambda: layers.softmax_cross_entropy(X, W, b, y)[0]
    _check(run, {"X": dX, "W": dW, "b": db}, {"X": X, "W": W, "b": b})
    # the loss equals the plain definition
    logits = np.einsum("htn,hv->ntv", X, W) + b
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.mean(np.take_along_axis(logp, y[..., None], -1))
    assert abs(loss - expected) < 1e-12


def test_softmax_is_stable_for_huge_logits():
    X = np.full((H, 1, 1), 1e4)
    W = np.ones((H, 3))
    W[:, 1] = -1
    W[:, 2] = 0
    loss, _ = layers.softmax_cross_entropy(X, W, np.zeros(3), np.array([[0]]))
    assert np.isfinite(loss) and loss < 1e-6


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_float32_in_float32_out(cell):
    x, h0, c0, Wx, Wh, b, b2, dout = (
        a.astype(np.float32) for a in _inputs({"rnn": 1, "lstm": 4, "gru": 3}[cell])
    )
    if cell == "rnn":
        h, cache = layers.rnn_forward(x, h0, Wx, Wh, b)
        grads = layers.rnn_backward(dout, cache)
    elif cell == "lstm":
        h, cT, cache = layers.lstm_forward(x, h0, c0, Wx, Wh, b)
        assert cT.dtype == np.float32 and cT.shape == (N, H)
        grads = layers.lstm_backward(dout, cache)
    else:
        h, cache = layers.gru_forward(x, h0, Wx, Wh, b, b2)
        grads = layers.gru_backward(dout, cache)
    assert h.dtype == np.float32 and h.shape == (N, T, H)
    assert all(g.dtype == np.float32 for g in grads)
    assert grads[0].shape == x.shape


def test_dropout_mask_is_inverted():
    rng = np.random.default_rng(0)
    mask = layers.dropout_mask((200, 50, 10), 0.3, rng, np.dtype(np.float32))
    assert mask.dtype == np.float32
    assert set(np.unique(mask)) == {0.0, np.float32(1 / 0.7)}
    assert abs(mask.mean() - 1.0) < 0.02


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_rows_layout_equals_features_layout(cell):
    """Layer 0's backward writes dXP one row per position, for the segment sum of `embed_backward`."""
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell] * H
    rng = np.random.default_rng(8)
    XP = rng.standard_normal((G, T, N))
    h0 = rng.standard_normal((H, N))
    Wh = rng.standard_normal((H, G)) * 0.5
    dHs = rng.standard_normal((H, T, N))
    results = {}
    for layout in ("features", "rows"):
        if cell == "lstm":
            _, _, cache = layers.lstm_sequence_forward(XP, h0, h0.copy(), Wh)
            out = layers.lstm_sequence_backward(dHs, cache, layout=layout)
        elif cell == "gru":
            _, cache = layers.gru_sequence_forward(XP, h0, Wh, np.zeros(G))
            out = layers.gru_sequence_backward(dHs, cache, layout=layout)
        else:
            _, cache = layers.rnn_sequence_forward(XP, h0, Wh)
            out = layers.rnn_sequence_backward(dHs, cache, layout=layout)
        results[layout] = [o.copy() for o in out]
    feats, rows = results["features"], results["rows"]
    np.testing.assert_allclose(rows[0], feats[0].transpose(1, 2, 0), rtol=0, atol=1e-12)
    for a, b in zip(feats[1:], rows[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_embed_rejects_ids_outside_the_vocabulary():
    """The lookup gathers with mode="clip" for speed, so it checks the range itself first."""
    Wx, b = np.ones((5, 8), dtype=np.float32), np.zeros(8, dtype=np.float32)
    for bad in (5, -1):
        with pytest.raises(IndexError, match=r"\[0, 5\)"):
            layers.embed(np.array([[0, bad]]), Wx, b)
    assert layers.embed(np.array([[0, 4]]), Wx, b).shape == (8, 2, 1)
