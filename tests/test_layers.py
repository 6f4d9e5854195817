"""Gradient checks of every layer function against central finite differences, in float64."""

import numpy as np
import pytest

from charrnn import cells, layers
from helpers.gradcheck import numerical_grad, rel_error

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


def _params(cell, Wx, Wh, b, b2):
    """The layer's parameters by short name: Wx, Wh, the first bias b, a second one b2."""
    return {"Wx": Wx, "Wh": Wh, **dict(zip(cell.biases, (b, b2)))}


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_cell_gradients(name):
    """x, every initial state array and every parameter, through `cell_forward/backward`."""
    cell = cells.get(name)
    x, h0, c0, Wx, Wh, b, b2, dout = _inputs(cell.G)
    state = (h0, c0)[: len(cell.states)]
    params = _params(cell, Wx, Wh, b, b2)
    h, _, cache = layers.cell_forward(cell, x, state, params)
    dx, dstate, grads = layers.cell_backward(dout, cache)
    run = lambda: float(np.sum(layers.cell_forward(cell, x, state, params)[0] * dout))
    grads.update(x=dx, **dict(zip(cell.states, dstate)))
    _check(run, grads, {"x": x, **dict(zip(cell.states, state)), **params})


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_cell_final_state_gradients(name):
    """The backward also takes gradients on the final state arrays (h_T, and c_T)."""
    cell = cells.get(name)
    x, h0, c0, Wx, Wh, b, b2, _ = _inputs(cell.G, seed=3)
    rng = np.random.default_rng(2)
    dlast = tuple(rng.standard_normal((N, H)) for _ in cell.states)
    state = (h0, c0)[: len(cell.states)]
    params = _params(cell, Wx, Wh, b, b2)

    def run():
        _, last, _ = layers.cell_forward(cell, x, state, params)
        return float(sum(np.sum(a * d) for a, d in zip(last, dlast)))

    _, _, cache = layers.cell_forward(cell, x, state, params)
    dx, dstate, grads = layers.cell_backward(np.zeros((N, T, H)), cache, dlast)
    grads.update(x=dx, **dict(zip(cell.states, dstate)))
    _check(run, grads, {"x": x, **dict(zip(cell.states, state)), **params})


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


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_float32_in_float32_out(name):
    cell = cells.get(name)
    x, h0, c0, Wx, Wh, b, b2, dout = (a.astype(np.float32) for a in _inputs(cell.G))
    state = (h0, c0)[: len(cell.states)]
    h, last, cache = layers.cell_forward(cell, x, state, _params(cell, Wx, Wh, b, b2))
    assert all(a.dtype == np.float32 and a.shape == (N, H) for a in last)
    dx, dstate, grads = layers.cell_backward(dout, cache)
    assert h.dtype == np.float32 and h.shape == (N, T, H)
    assert all(g.dtype == np.float32 for g in (dx, *dstate, *grads.values()))
    assert dx.shape == x.shape


def test_dropout_mask_is_inverted():
    rng = np.random.default_rng(0)
    mask = layers.dropout_mask((200, 50, 10), 0.3, rng, np.dtype(np.float32))
    assert mask.dtype == np.float32
    assert set(np.unique(mask)) == {0.0, np.float32(1 / 0.7)}
    assert abs(mask.mean() - 1.0) < 0.02


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_rows_layout_equals_features_layout(name):
    """Layer 0's backward writes dXP one row per position, for the segment sum of `embed_backward`."""
    cell = cells.get(name)
    G = cell.G * H
    rng = np.random.default_rng(8)
    XP = rng.standard_normal((G, T, N))
    state = tuple(rng.standard_normal((H, N)) for _ in cell.states)
    params = {"Wh": rng.standard_normal((H, G)) * 0.5, **{b: np.zeros(G) for b in cell.biases}}
    dHs = rng.standard_normal((H, T, N))
    results = {}
    for layout in ("features", "rows"):
        _, _, cache = cell.forward(XP, state, params)
        dXP, dstate, grads = cell.backward(dHs, None, cache, layout=layout)
        results[layout] = [dXP.copy(), *(d.copy() for d in dstate), *grads.values()]
    feats, rows = results["features"], results["rows"]
    np.testing.assert_allclose(rows[0], feats[0].transpose(1, 2, 0), rtol=0, atol=1e-12)
    for a, b in zip(feats[1:], rows[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_backward_records_the_total_gradient_on_every_state(name):
    """`record` receives dL/dh_t (and, for the LSTM, the total dL/dc_t, through h_t too) at
    every step: checked against the gradient on the initial state of the sequence that
    starts at step t + 1 from the state after step t, plus step t's own output gradient."""
    cell = cells.get(name)
    rng = np.random.default_rng(9)
    G = cell.G * H
    XP = rng.standard_normal((G, T, N))
    state = tuple(rng.standard_normal((H, N)) for _ in cell.states)
    params = {"Wh": rng.standard_normal((H, G)) * 0.5,
              **{b: rng.standard_normal(G) * 0.5 for b in cell.biases}}
    dHs = rng.standard_normal((H, T, N))
    _, _, cache = cell.forward(XP, state, params)
    record = {s: np.zeros((T, H, N)) for s in cell.states}
    cell.backward(dHs, None, cache, record=record)
    inner = {k: v.copy() for k, v in cell.internals(cache).items()}
    for t in range(T - 1):
        after = tuple(inner[s][t].copy() for s in cell.states)
        _, _, suffix = cell.forward(np.ascontiguousarray(XP[:, t + 1:]), after, params)
        _, dafter, _ = cell.backward(np.ascontiguousarray(dHs[:, t + 1:]), None, suffix)
        dh = dafter[0] + dHs[:, t]
        np.testing.assert_allclose(record["h"][t], dh, rtol=1e-10, atol=1e-12)
        if "c" in cell.states:  # h_t = o tanh(c_t): c_t reaches the loss through h_t too
            tc = np.tanh(inner["c"][t])
            dc = dafter[1] + dh * inner["o"][t] * (1 - tc**2)
            np.testing.assert_allclose(record["c"][t], dc, rtol=1e-10, atol=1e-12)


def test_embed_rejects_ids_outside_the_vocabulary():
    """The lookup gathers with mode="clip" for speed, so it checks the range itself first."""
    Wx, b = np.ones((5, 8), dtype=np.float32), np.zeros(8, dtype=np.float32)
    for bad in (5, -1):
        with pytest.raises(IndexError, match=r"\[0, 5\)"):
            layers.embed(np.array([[0, bad]]), Wx, b)
    assert layers.embed(np.array([[0, 4]]), Wx, b).shape == (8, 2, 1)
