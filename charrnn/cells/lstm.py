"""LSTM (Hochreiter & Schmidhuber 1997), gate blocks [i f o g] in the columns of Wx, Wh and b.

    [i f o g] = x_t Wx + h_{t-1} Wh + b          i, f, o = sigmoid;  g = tanh
    c_t = f * c_{t-1} + i * g                     h_t = o * tanh(c_t)

Backward, with dh the total gradient on h_t and dc_next the gradient from c_{t+1}:
    do = dh * tanh(c_t)                  dc = dc_next + dh * o * (1 - tanh(c_t)^2)
    di = dc * g    df = dc * c_{t-1}     dg = dc * i      dc_{t-1} = dc * f
    pre-activations: da_{i,f,o} = d{i,f,o} * s * (1 - s) (sigmoid),  da_g = dg * (1 - g^2)
    dh_{t-1} = da Wh^T                   dWh = sum_t h_{t-1}^T da_t

The functions follow the contract of `charrnn.cells` (feature-major arrays).
"""

import numpy as np

from charrnn.layers import (GradOut, Workspace, contiguous_T, errstate, record_step as _record, sigmoid,
                            sigmoid_from_tanh, tanh)


def cell(xp, h_prev, c_prev, Wh, a, c, tc, h):
    """One training step: xp (4H, N) projected input; h_prev, c_prev (H, N); Wh (H, 4H), best
    with a C-contiguous transpose (`contiguous_T`). Writes a (4H, N) gate activations [i f o g],
    c, tc = tanh(c) and h, each (H, N). h may be h_prev itself: the product reads h_prev first."""
    H = h.shape[0]
    np.matmul(Wh.T, h_prev, out=a)
    a += xp
    i, f, o, g = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
    g *= 2.0  # g = tanh(x) = 2 sigmoid(2x) - 1: all four gates in one exp pass
    sigmoid(a, out=a)
    g *= 2.0
    g -= 1.0
    np.multiply(i, g, out=tc)
    np.multiply(f, c_prev, out=c)
    c += tc
    tanh(c, out=tc)
    np.multiply(o, tc, out=h)


def forward(XP, state, p, ws=None):
    """XP (4H, T, N); state (h0, c0), each (H, N); p["Wh"] (H, 4H).
    Returns Hs (H, T, N) (a workspace view), (h_T, c_T) (copies) and the cache."""
    ws = ws if ws is not None else Workspace()
    h0, c0 = state
    G, T, N = XP.shape
    H = G // 4
    dtype = XP.dtype
    acts = ws.get("acts", (T, G, N), dtype)  # gate activations per step
    cs = ws.get("cs", (T + 1, H, N), dtype)  # cs[0] = c0
    tcs = ws.get("tcs", (T, H, N), dtype)  # tanh(c_t)
    Hs = ws.get("Hs", (H, T + 1, N), dtype)  # Hs[:, 0] = h0
    h = ws.get("h", (H, N), dtype)
    Hs[:, 0] = h0
    h[...] = h0
    cs[0] = c0
    Wh = p["Wh"]
    fast_Wh = contiguous_T(Wh)
    with errstate():
        for t in range(T):
            cell(XP[:, t], h, cs[t], fast_Wh, acts[t], cs[t + 1], tcs[t], h)
            Hs[:, t + 1] = h
    return Hs[:, 1:], (h.copy(), cs[T].copy()), (Hs, acts, cs, tcs, Wh, ws)


def backward(dHs, dstate, cache, layout="features", record=None):
    """dHs (H, T, N); dstate (dh_T, dc_T) or None. Returns dXP (see `GradOut`), (dh0, dc0),
    {"Wh": (H, 4H)}; `record` may take "h" and "c": the total gradient on h_t and c_t."""
    Hs, acts, cs, tcs, Wh, ws = cache
    H, T, N = dHs.shape
    dtype = dHs.dtype
    out = GradOut(layout, 4 * H, T, N, dtype, ws)
    dh = np.zeros((H, N), dtype=dtype)  # total gradient on h_t; after the loop, on h0
    dc_next = np.zeros((H, N), dtype=dtype)
    if dstate is not None:
        dh[...], dc_next[...] = dstate
    record = record or {}
    d = ws.get("d", (4 * H, N), dtype)
    dc = ws.get("dc", (H, N), dtype)
    tmp = ws.get("tmp", (3 * H, N), dtype)
    di, df, do, dg = d[:H], d[H : 2 * H], d[2 * H : 3 * H], d[3 * H :]
    tmp1 = tmp[:H]
    for t in range(T - 1, -1, -1):
        a, tc = acts[t], tcs[t]
        i, f, o, g = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
        np.add(dHs[:, t], dh, out=dh)  # from the output and from step t+1
        np.multiply(dh, tc, out=do)  # do = dh * tanh(c)
        np.multiply(tc, tc, out=tmp1)  # dc = dc_next + dh * o * (1 - tanh(c)^2)
        np.subtract(1.0, tmp1, out=tmp1)
        tmp1 *= o
        tmp1 *= dh
        np.add(dc_next, tmp1, out=dc)
        if record:
            _record(record, t, h=dh, c=dc)
        np.multiply(dc, g, out=di)  # di = dc * g
        np.multiply(dc, cs[t], out=df)  # df = dc * c_{t-1}
        np.multiply(dc, i, out=dg)  # dg = dc * i
        np.multiply(dc, f, out=dc_next)  # into c_{t-1}
        s, ds = a[: 3 * H], d[: 3 * H]  # backprop through the sigmoids: ds * s * (1 - s)
        np.subtract(1.0, s, out=tmp)
        tmp *= s
        ds *= tmp
        np.multiply(g, g, out=tmp1)  # backprop through tanh(g): dg * (1 - g^2)
        np.subtract(1.0, tmp1, out=tmp1)
        dg *= tmp1
        out.put(t, d)
        np.matmul(Wh, d, out=dh)  # into h_{t-1}
    return out.array, (dh, dc_next), {"Wh": out.weight_grad(Hs[:, :T])}


def step(a, x, state, p, tmp, halves):
    """One sampling step. a (4H,)+col holds the recurrent product with the sigmoid rows halved
    (see `Stepper`); x the projected input (or the bias, when the product included x Wx);
    state (h, c) updated in place; tmp (H,)+col scratch."""
    h, c = state
    H = h.shape[0]
    np.add(a, x, a)
    np.tanh(a, a)
    sigmoid_from_tanh(a[: 3 * H], halves)
    i, f, o, g = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
    np.multiply(f, c, c)  # c = f c + i g
    np.multiply(i, g, tmp)
    np.add(c, tmp, c)
    np.tanh(c, tmp)
    np.multiply(o, tmp, h)  # h = o tanh(c)


def internals(cache):
    """{"h", "c", "i", "f", "o", "g"}: (T, H, N) arrays of the last forward (views)."""
    Hs, acts, cs, tcs, Wh, ws = cache
    T, G, N = acts.shape
    H = G // 4
    gates = acts.reshape(T, 4, H, N)
    return {"h": Hs[:, 1:].transpose(1, 0, 2), "c": cs[1:],
            **{name: gates[:, k] for k, name in enumerate("ifog")}}
