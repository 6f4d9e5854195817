"""GRU (Cho et al. 2014) in the cuDNN / PyTorch form, gate blocks [r z n] in the columns of Wx,
Wh, bx and bh. With XP = x_t Wx + bx and HP = h_{t-1} Wh + bh:

    r = sigmoid(XP_r + HP_r)     z = sigmoid(XP_z + HP_z)     n = tanh(XP_n + r * HP_n)
    h_t = (1 - z) * n + z * h_{t-1}

Backward, with dh the total gradient on h_t:
    dn = dh * (1 - z)     dz = dh * (h_{t-1} - n)     dh_{t-1} = dh * z + dHP Wh^T
    da_n = dn * (1 - n^2)         dr = da_n * HP_n     dHP_n = da_n * r
    da_r = dr * r * (1 - r)       da_z = dz * z * (1 - z)
    dXP = [da_r, da_z, da_n]      dHP = [da_r, da_z, dHP_n]
    dWh = sum_t h_{t-1}^T dHP_t   dbh = sum_t dHP_t

The functions follow the contract of `charrnn.cells` (feature-major arrays).
"""

import numpy as np

from charrnn.layers import (GradOut, Workspace, contiguous_T, errstate, record_step, row_sums,
                            sigmoid, sigmoid_from_tanh, tanh)


def cell(xp, h_prev, Wh, bh, a, hpn, h):
    """One training step: xp (3H, N) = x Wx + bx; h_prev (H, N); Wh (H, 3H), best with a
    C-contiguous transpose; bh (3H,). Writes a (3H, N) activations [r z n], hpn (H, N) =
    (h_prev Wh + bh)_n and h (H, N), which must not be h_prev (the last line reads h_prev)."""
    H = h.shape[0]
    np.matmul(Wh.T, h_prev, out=a)
    a += bh[:, None]
    hpn[...] = a[2 * H :]
    r, z, n = a[:H], a[H : 2 * H], a[2 * H :]
    rz = a[: 2 * H]
    rz += xp[: 2 * H]
    sigmoid(rz, out=rz)
    np.multiply(r, hpn, out=n)
    n += xp[2 * H :]
    tanh(n, out=n)
    np.subtract(h_prev, n, out=h)  # h = n + z * (h_prev - n)
    h *= z
    h += n


def forward(XP, state, p, ws=None):
    """XP (3H, T, N) = x Wx + bx; state (h0,) (H, N); p["Wh"] (H, 3H), p["bh"] (3H,).
    Returns Hs (H, T, N) (a workspace view), (h_T,) (a copy) and the cache."""
    ws = ws if ws is not None else Workspace()
    (h0,) = state
    G, T, N = XP.shape
    H = G // 3
    dtype = XP.dtype
    acts = ws.get("acts", (T, G, N), dtype)
    hpns = ws.get("hpns", (T, H, N), dtype)
    hs = ws.get("hs", (T + 1, H, N), dtype)  # time-major h, read by the backward per step
    Hs = ws.get("Hs", (H, T + 1, N), dtype)
    hs[0] = h0
    Hs[:, 0] = h0
    Wh, bh = p["Wh"], p["bh"]
    fast_Wh = contiguous_T(Wh)
    with errstate():
        for t in range(T):
            cell(XP[:, t], hs[t], fast_Wh, bh, acts[t], hpns[t], hs[t + 1])
            Hs[:, t + 1] = hs[t + 1]
    return Hs[:, 1:], (hs[T].copy(),), (Hs, hs, acts, hpns, Wh, ws)


def backward(dHs, dstate, cache, layout="features", record=None):
    """dHs (H, T, N); dstate (dh_T,) or None. Returns dXP (see `GradOut`), (dh0,),
    {"Wh": (H, 3H), "bh": (3H,)}; `record` may take "h": the total gradient on h_t."""
    Hs, hs, acts, hpns, Wh, ws = cache
    H, T, N = dHs.shape
    dtype = dHs.dtype
    out = GradOut(layout, 3 * H, T, N, dtype, ws)
    dHP = ws.get("dHP", (3 * H, T, N), dtype)  # [da_r, da_z, dHP_n] per step, for dWh and dbh
    d = ws.get("d", (3 * H, N), dtype)
    dhp = ws.get("dhp", (3 * H, N), dtype)
    tmp = ws.get("tmp", (2 * H, N), dtype)
    dh = np.zeros((H, N), dtype=dtype)
    if dstate is not None:
        dh[...] = dstate[0]
    dr, dz, dn = d[:H], d[H : 2 * H], d[2 * H :]
    tmp1 = tmp[:H]
    for t in range(T - 1, -1, -1):
        a = acts[t]
        r, z, n = a[:H], a[H : 2 * H], a[2 * H :]
        np.add(dHs[:, t], dh, out=dh)
        if record:
            record_step(record, t, h=dh)
        np.subtract(hs[t], n, out=dz)  # dz = dh * (h_{t-1} - n)
        dz *= dh
        np.subtract(1.0, z, out=dn)  # dn = dh * (1 - z)
        dn *= dh
        np.multiply(n, n, out=tmp1)  # backprop through tanh: da_n = dn * (1 - n^2)
        np.subtract(1.0, tmp1, out=tmp1)
        dn *= tmp1
        np.multiply(dn, hpns[t], out=dr)  # dr = da_n * HP_n
        np.multiply(dn, r, out=dhp[2 * H :])  # dHP_n = da_n * r
        s, ds = a[: 2 * H], d[: 2 * H]  # backprop through the sigmoids: ds * s * (1 - s)
        np.subtract(1.0, s, out=tmp)
        tmp *= s
        ds *= tmp
        dhp[: 2 * H] = ds
        out.put(t, d)
        dHP[:, t] = dhp
        dh *= z  # the direct path h_{t-1} -> h_t ...
        np.matmul(Wh, dhp, out=tmp1)  # ... plus the path through HP
        dh += tmp1
    dHP2 = dHP.reshape(3 * H, T * N)
    dWh = np.matmul(Hs[:, :T].reshape(H, T * N), dHP2.T)
    return out.array, (dh,), {"Wh": dWh, "bh": row_sums(dHP2)}


def step(a, x, state, p, tmp, halves):
    """One sampling step. a (3H,)+col holds h Wh with the r, z rows halved (see `Stepper`);
    x the projected input x Wx + bx (r, z rows halved); state (h,) updated in place;
    p["bh"] the halved bh; tmp (H,)+col scratch."""
    (h,) = state
    H = h.shape[0]
    np.add(a, p["bh"], a)
    np.copyto(tmp, a[2 * H :])  # HP_n = h Wh_n + bh_n
    rz, n = a[: 2 * H], a[2 * H :]
    np.add(rz, x[: 2 * H], rz)
    np.tanh(rz, rz)
    sigmoid_from_tanh(rz, halves)
    np.multiply(a[:H], tmp, n)  # n = tanh(XP_n + r HP_n)
    np.add(n, x[2 * H :], n)
    np.tanh(n, n)
    np.subtract(h, n, h)  # h = n + z (h_prev - n)
    np.multiply(h, a[H : 2 * H], h)
    np.add(h, n, h)


def internals(cache):
    """{"h", "r", "z", "n"}: (T, H, N) arrays of the last forward (views)."""
    Hs, hs, acts, hpns, Wh, ws = cache
    T, G, N = acts.shape
    gates = acts.reshape(T, 3, G // 3, N)
    return {"h": hs[1:], **{name: gates[:, k] for k, name in enumerate("rzn")}}
