"""Vanilla (Elman) RNN, one block [a] in the columns of Wx, Wh and b:

    h_t = tanh(a_t),   a_t = x_t Wx + h_{t-1} Wh + b

Backward, with dh the total gradient on h_t:
    da_t = dh * (1 - h_t^2)      dh_{t-1} = da_t Wh^T      dWh = sum_t h_{t-1}^T da_t
    dXP_t = da_t

The functions follow the contract of `charrnn.cells` (feature-major arrays); this is the
shortest cell, and the model to copy when adding one.
"""

import numpy as np

from charrnn.layers import GradOut, Workspace, contiguous_T, errstate, record_step, tanh


def cell(xp, h_prev, Wh, h):
    """One training step: h = tanh(xp + Wh^T h_prev). xp, h_prev, h (H, N); Wh (H, H), best with
    a C-contiguous transpose. h may be h_prev itself: the product reads h_prev first."""
    np.matmul(Wh.T, h_prev, out=h)
    h += xp
    tanh(h, out=h)


def forward(XP, state, p, ws=None):
    """XP (H, T, N); state (h0,) (H, N); p["Wh"] (H, H).
    Returns Hs (H, T, N) (a workspace view), (h_T,) (a copy) and the cache."""
    ws = ws if ws is not None else Workspace()
    (h0,) = state
    H, T, N = XP.shape
    Hs = ws.get("Hs", (H, T + 1, N), XP.dtype)  # Hs[:, 0] = h0, Hs[:, t+1] = h_t
    h = ws.get("h", (H, N), XP.dtype)
    Hs[:, 0] = h0
    h[...] = h0
    Wh = p["Wh"]
    fast_Wh = contiguous_T(Wh)
    with errstate():
        for t in range(T):
            cell(XP[:, t], h, fast_Wh, h)
            Hs[:, t + 1] = h
    return Hs[:, 1:], (h.copy(),), (Hs, Wh, ws)


def backward(dHs, dstate, cache, layout="features", record=None):
    """dHs (H, T, N); dstate (dh_T,) or None. Returns dXP (see `GradOut`), (dh0,),
    {"Wh": (H, H)}; `record` may take "h": the total gradient on h_t."""
    Hs, Wh, ws = cache
    H, T, N = dHs.shape
    dtype = dHs.dtype
    out = GradOut(layout, H, T, N, dtype, ws)
    dh_next = np.zeros((H, N), dtype=dtype)
    if dstate is not None:
        dh_next[...] = dstate[0]
    a = ws.get("d", (H, N), dtype)
    for t in range(T - 1, -1, -1):
        h = Hs[:, t + 1]
        np.multiply(h, h, out=a)  # backprop through tanh: 1 - h^2
        np.subtract(1.0, a, out=a)
        np.add(dHs[:, t], dh_next, out=dh_next)  # gradient from the output and from step t+1
        if record:
            record_step(record, t, h=dh_next)
        a *= dh_next
        out.put(t, a)
        np.matmul(Wh, a, out=dh_next)  # into h_{t-1}
    return out.array, (dh_next,), {"Wh": out.weight_grad(Hs[:, :T])}


def step(a, x, state, p, tmp, halves):
    """One sampling step. a (H,)+col holds the recurrent product (see `Stepper`); x the
    projected input (or the bias, when the product included x Wx); state (h,) updated."""
    np.add(a, x, a)
    np.tanh(a, state[0])


def internals(cache):
    """{"h", "a"}: the (T, H, N) hidden states of the last forward (a view). The activation of
    the one gate block, tanh(a_t), is h_t itself: "a" is the same array."""
    Hs, Wh, ws = cache
    h = Hs[:, 1:].transpose(1, 0, 2)
    return {"h": h, "a": h}
