"""A toy cell added the way the cell table's recipe says (`charrnn.cells`): this one module,
its functions and its `register` row, and nothing else; tests/test_cells.py trains it.

The minimal gated unit, in a form with one gate: blocks [f n] in Wx, Wh and b,

    [f n] = x_t Wx + h_{t-1} Wh + b        f = sigmoid,  n = tanh
    h_t = h_{t-1} + f * (n - h_{t-1})

Backward, with dh the total gradient on h_t:
    df = dh * (n - h_{t-1})     dn = dh * f     da_f = df f (1 - f)     da_n = dn (1 - n^2)
    dh_{t-1} = dh * (1 - f) + da Wh^T          dWh = sum_t h_{t-1}^T da_t
"""

import numpy as np

from charrnn import cells
from charrnn.layers import GradOut, Workspace, errstate, record_step, sigmoid_from_tanh


def forward(XP, state, p, ws=None):
    ws = ws if ws is not None else Workspace()
    (h0,) = state
    G, T, N = XP.shape
    H = G // 2
    acts = ws.get("acts", (T, G, N), XP.dtype)
    hs = ws.get("hs", (T + 1, H, N), XP.dtype)
    hs[0] = h0
    with errstate():
        for t in range(T):
            a = acts[t]
            np.matmul(p["Wh"].T, hs[t], out=a)
            a += XP[:, t]
            f, n = a[:H], a[H:]
            f[...] = 1 / (1 + np.exp(-f))
            np.tanh(n, out=n)
            hs[t + 1] = hs[t] + f * (n - hs[t])
    Hs = np.ascontiguousarray(hs[1:].transpose(1, 0, 2))
    return Hs, (hs[T].copy(),), (hs, acts, p["Wh"], ws)


def backward(dHs, dstate, cache, layout="features", record=None):
    hs, acts, Wh, ws = cache
    H, T, N = dHs.shape
    out = GradOut(layout, 2 * H, T, N, dHs.dtype, ws)
    dh = np.zeros((H, N), dtype=dHs.dtype) if dstate is None else dstate[0].copy()
    dWh = np.zeros_like(Wh)
    for t in range(T - 1, -1, -1):
        f, n = acts[t][:H], acts[t][H:]
        dh = dh + dHs[:, t]
        if record:
            record_step(record, t, h=dh)
        da = np.concatenate([dh * (n - hs[t]) * f * (1 - f), dh * f * (1 - n * n)])
        out.put(t, da)
        dWh += hs[t] @ da.T
        dh = dh * (1 - f) + Wh @ da
    return out.array, (dh,), {"Wh": dWh}


def step(a, x, state, p, tmp, halves):
    (h,) = state
    H = h.shape[0]
    np.add(a, x, a)
    np.tanh(a, a)
    sigmoid_from_tanh(a[:H], halves)
    np.subtract(a[H:], h, tmp)  # h += f (n - h)
    np.multiply(tmp, a[:H], tmp)
    np.add(h, tmp, h)


def internals(cache):
    hs, acts, Wh, ws = cache
    T, G, N = acts.shape
    return {"h": hs[1:], "f": acts[:, : G // 2], "n": acts[:, G // 2 :]}


TOY = cells.register(cells.Cell(
    "mgu", gates=("f", "n"), sigmoid_gates=1, states=("h",), biases=("b",), fuse_input=True,
    module=__name__, summary="minimal gated unit, one gate (a test's toy)"))
