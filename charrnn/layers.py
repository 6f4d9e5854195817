"""Pure forward/backward functions of the recurrent cells, dropout and the softmax head.

Two layers of API live here:

* The public functions `rnn_forward/backward`, `lstm_forward/backward`, `gru_forward/backward`
  take batch-major arrays — x (N, T, D), h0 and c0 (N, H), dh (N, T, H) — as in cs231n, and
  return gradients in the order of the forward's arguments.
* The model uses the feature-major internals they wrap. There a sequence of activations is laid
  out (F, T, N) (features, time, batch) so that the input projection of a whole sequence and the
  weight gradients over all time steps are each ONE matrix product, and the per-step work reads
  and writes contiguous (F, N) slabs of time-major stores (T, F, N): numpy runs a ufunc on a
  contiguous array several times faster than on a strided slice such as `gates[:, :3H]`.

A cell's time loop only does the recurrent product h_{t-1} Wh and elementwise work. Input
projections are `project` (a GEMM) or, for character ids, `embed` (a row lookup of Wx, never a
one-hot product); their backward passes are `project_backward` and `embed_backward`.

Gate order, written once: LSTM columns of Wx/Wh/b are [i f o g]; GRU columns are [r z n].
"""

import numpy as np


# ----------------------------------------------------------------------------------------------
# Buffers.


class Workspace:
    """Arrays reused from call to call, keyed by name.

    A training step allocates the same large stores every time; drawing them from a workspace
    avoids the allocation and the page faults of touching fresh memory. Whatever a function
    returns from a workspace stays valid until that workspace is used again.
    """

    def __init__(self):
        self._arrays = {}

    def get(self, name, shape, dtype):
        """An uninitialised array of this shape; one name always means the same memory, so
        shapes asked under one name share it (the input projection XP and its gradient dXP)."""
        size = int(np.prod(shape))
        a = self._arrays.get(name)
        if a is None or a.size < size or a.dtype != dtype:
            a = self._arrays[name] = np.empty(size, dtype=dtype)
        return a[:size].reshape(shape)


def _ws(ws):
    return ws if ws is not None else Workspace()


# ----------------------------------------------------------------------------------------------
# Input projections: XP = Wx^T x + b for every (t, n) at once.


def project(X, Wx, b, ws=None):
    """Input projection of a whole sequence as one GEMM.

    X (D, T, N) feature-major inputs (a view with contiguous (T, N) rows is fine);
    Wx (D, G); b (G,). Returns XP (G, T, N) with XP[:, t, n] = Wx^T X[:, t, n] + b.
    """
    D, T, N = X.shape
    XP = _ws(ws).get("XP", (Wx.shape[1], T * N), X.dtype)
    np.matmul(Wx.T, X.reshape(D, T * N), out=XP)
    XP += b[:, None]
    return XP.reshape(-1, T, N)


def project_backward(dXP, X, Wx):
    """Backward of `project`: dX = Wx dXP, dWx = X dXP^T, db = sum of dXP over (t, n).

    dXP (G, T, N); X (D, T, N); Wx (D, G). Returns dX (D, T, N), dWx (D, G), db (G,).
    Each is one GEMM (or one reduction) over all time steps.
    """
    G, T, N = dXP.shape
    dXP2 = dXP.reshape(G, T * N)
    X2 = X.reshape(X.shape[0], T * N)
    dX = np.matmul(Wx, dXP2).reshape(-1, T, N)
    dWx = np.matmul(X2, dXP2.T)
    return dX, dWx, _row_sums(dXP2)


def embed(ids, Wx, b, ws=None):
    """Input projection of character ids: a row lookup of Wx (one-hot input, no matrix product).

    ids (N, T) integers in [0, V); Wx (V, G); b (G,). Returns XP (G, T, N) = Wx[ids]^T + b as
    an `Embedded`: the sequence forwards read it one step at a time.
    """
    return Embedded(ids, Wx, b, ws)


class Embedded:
    """Layer 0's projected input XP (G, T, N), gathered one (G, N) step at a time.

    XP[:, t] gathers the columns ids[:, t] of the (G, V) table (Wx + b)^T into a reused
    buffer; np.asarray(XP) gives the whole array. Why not materialise it: the step-t slab of a
    (G, T, N) array is G rows of N numbers, T N apart, and reading it cost the LSTM cell a
    quarter of its time (23.7 against 17.5 ms a layer for 100 steps of N = 32), while the
    table is small enough to stay in cache.
    """

    def __init__(self, ids, Wx, b, ws=None):
        V, G = Wx.shape
        if ids.size and (ids.min() < 0 or ids.max() >= V):
            raise IndexError(f"character ids must be in [0, {V})")
        N, T = ids.shape
        self.shape, self.dtype = (G, T, N), Wx.dtype
        self._table = np.ascontiguousarray((Wx + b).T)  # (G, V)
        self._ids = np.ascontiguousarray(ids.T)  # (T, N)
        self._xp = _ws(ws).get("xp", (G, N), Wx.dtype)

    def __getitem__(self, index):
        """XP[:, t]: step t's (G, N) slab, valid until the next call."""
        if not (isinstance(index, tuple) and len(index) == 2 and index[0] == slice(None)):
            raise IndexError("an Embedded input is read one step at a time, as XP[:, t]")
        # the ids were checked above; mode="raise" would check them again, 2.5x slower
        return np.take(self._table, self._ids[index[1]], axis=1, out=self._xp, mode="clip")

    def __array__(self, dtype=None, copy=None):
        XP = np.take(self._table, self._ids, axis=1, mode="clip")
        return XP if dtype is None else XP.astype(dtype)


def embed_backward(dXP_rows, ids, vocab_size):
    """Backward of `embed`: dWx[v] = sum of the gradient rows of the positions where ids == v.

    dXP_rows (T, N, G): the gradient of XP laid out one row per position (the "rows" layout of
    the sequence backward passes); ids (N, T). Returns dWx (V, G) and db (G,).
    A segment sum: gather the rows in order of id (contiguous row copies), then sum each id's
    block of rows — deterministic, and never a one-hot product.
    """
    T, N, G = dXP_rows.shape
    rows = dXP_rows.reshape(T * N, G)
    flat_ids = ids.T.reshape(-1)  # position order (t, n)
    order = np.argsort(flat_ids, kind="stable")
    sorted_ids = flat_ids[order]
    bounds = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1], True])
    grouped = np.take(rows, order, axis=0)
    dWx = np.zeros((vocab_size, G), dtype=rows.dtype)
    for start, end in zip(bounds[:-1], bounds[1:]):
        grouped[start:end].sum(axis=0, out=dWx[sorted_ids[start]])
    return dWx, rows.sum(axis=0)


# ----------------------------------------------------------------------------------------------
# Elementwise helpers and layouts.


def sigmoid(x, out):
    """out = 1 / (1 + exp(-x)), in place when out is x. exp may overflow to inf: the result is 0."""
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


def tanh(x, out):
    """out = tanh(x) = 2 / (1 + exp(-2x)) - 1, in place when out is x.

    numpy's float32 tanh costs about 3.7 ns an element on this machine and exp about 1.8; this
    form is ~25% cheaper and exact to float32 rounding. exp may overflow to inf: the result is -1.
    """
    np.multiply(x, -2.0, out=out)
    np.exp(out, out=out)
    out += 1.0
    np.divide(2.0, out, out=out)
    out -= 1.0
    return out


def _errstate():
    # exp overflows to inf for large pre-activations; sigmoid and tanh then give the right limit.
    return np.errstate(over="ignore")


def _row_sums(M):
    """M (G, K) -> (G,) sums of its rows, as a matrix-vector product: a bias gradient over all
    positions, 5x faster than M.sum(axis=1) on a (1024, 3200) float32 gradient."""
    return np.matmul(M, np.ones(M.shape[1], dtype=M.dtype))


def _contiguous_T(W):
    """W with a C-contiguous transpose: the per-step product W^T h runs faster on it."""
    return np.ascontiguousarray(W.T).T


class _GradOut:
    """Where a sequence backward writes the gradient of its projected input, step by step.

    layout "features": dXP (G, T, N), the input of `project_backward`'s GEMMs;
    layout "rows":     (T, N, G), one row per position, the input of `embed_backward`.
    Each step's (G, N) slab is computed in a contiguous scratch array and copied out.
    """

    def __init__(self, layout, G, T, N, dtype, ws):
        if layout not in ("features", "rows"):
            raise ValueError(f"unknown layout {layout!r}")
        self.rows = layout == "rows"
        shape = (T, N, G) if self.rows else (G, T, N)
        self.array = ws.get("XP", shape, dtype)  # the forward's XP is no longer needed

    def put(self, t, d):
        if self.rows:
            np.copyto(self.array[t], d.T)
        else:
            np.copyto(self.array[:, t], d)

    def weight_grad(self, Hprev):
        """sum_t h_{t-1}^T dXP_t for Hprev (H, T, N): one GEMM over all steps, either layout."""
        H, T, N = Hprev.shape
        if self.rows:
            return np.matmul(Hprev.reshape(H, T * N), self.array.reshape(T * N, -1))
        return np.matmul(Hprev.reshape(H, T * N), self.array.reshape(-1, T * N).T)


# ----------------------------------------------------------------------------------------------
# Vanilla RNN:  h_t = tanh(x_t Wx + h_{t-1} Wh + b)
#
# Backward (a_t = the pre-activation):  da_t = (dh_t + dh_{t+1 -> t}) * (1 - h_t^2)
#   dh_{t-1} += da_t Wh^T      dWh = sum_t h_{t-1}^T da_t      dXP_t = da_t


def rnn_cell(xp, h_prev, Wh, h):
    """One RNN step, feature-major: h = tanh(xp + Wh^T h_prev). xp, h_prev, h (H, N).

    h may be h_prev itself (updated in place): the product reads h_prev before h is written.
    """
    np.matmul(Wh.T, h_prev, out=h)
    h += xp
    tanh(h, out=h)
    return h


def rnn_sequence_forward(XP, h0, Wh, ws=None):
    """Run the RNN over a projected sequence.

    XP (H, T, N) = x Wx + b for every step; h0 (H, N); Wh (H, H).
    Returns Hs (H, T, N) hidden states (a view of the workspace) and a cache for the backward.
    """
    ws = _ws(ws)
    H, T, N = XP.shape
    Hs = ws.get("Hs", (H, T + 1, N), XP.dtype)  # Hs[:, 0] = h0, Hs[:, t+1] = h_t
    h = ws.get("h", (H, N), XP.dtype)
    Hs[:, 0] = h0
    h[...] = h0
    WhT = _contiguous_T(Wh)
    with _errstate():
        for t in range(T):
            rnn_cell(XP[:, t], h, WhT, h)
            Hs[:, t + 1] = h
    return Hs[:, 1:], (Hs, Wh, ws)


def rnn_sequence_backward(dHs, cache, layout="features"):
    """Backward of `rnn_sequence_forward`.

    dHs (H, T, N) upstream gradient on every h_t.
    Returns dXP (in `layout`, see `_GradOut`), dh0 (H, N), dWh (H, H).
    """
    Hs, Wh, ws = cache
    H, T, N = dHs.shape
    dtype = dHs.dtype
    out = _GradOut(layout, H, T, N, dtype, ws)
    dh_next = np.zeros((H, N), dtype=dtype)
    a = ws.get("d", (H, N), dtype)
    for t in range(T - 1, -1, -1):
        h = Hs[:, t + 1]
        np.multiply(h, h, out=a)  # backprop through tanh: 1 - h^2
        np.subtract(1.0, a, out=a)
        np.add(dHs[:, t], dh_next, out=dh_next)  # gradient from the output and from step t+1
        a *= dh_next
        out.put(t, a)
        np.matmul(Wh, a, out=dh_next)  # into h_{t-1}
    return out.array, dh_next, out.weight_grad(Hs[:, :T])


# ----------------------------------------------------------------------------------------------
# LSTM:  [i f o g] = x_t Wx + h_{t-1} Wh + b;  i, f, o = sigmoid, g = tanh
#        c_t = f * c_{t-1} + i * g;            h_t = o * tanh(c_t)
#
# Backward, with dh the total gradient on h_t and dc_next the gradient from c_{t+1}:
#   do = dh * tanh(c_t)                  dc = dc_next + dh * o * (1 - tanh(c_t)^2)
#   di = dc * g    df = dc * c_{t-1}     dg = dc * i      dc_{t-1} = dc * f
#   pre-activations: da_{i,f,o} = d{i,f,o} * s * (1 - s) (sigmoid),  da_g = dg * (1 - g^2)
#   dh_{t-1} = da Wh^T                   dWh = sum_t h_{t-1}^T da_t


def lstm_cell(xp, h_prev, c_prev, Wh, a, c, tc, h):
    """One LSTM step, feature-major, writing into preallocated buffers.

    xp (4H, N) projected input; h_prev, c_prev (H, N); Wh (H, 4H).
    Outputs: a (4H, N) gate activations [i f o g]; c (H, N) cell; tc (H, N) tanh(c); h (H, N).
    h may be h_prev itself: the product reads h_prev before h is written.
    """
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
    return h, c


def lstm_sequence_forward(XP, h0, c0, Wh, ws=None):
    """Run the LSTM over a projected sequence.

    XP (4H, T, N); h0, c0 (H, N); Wh (H, 4H).
    Returns Hs (H, T, N) hidden states (a view of the workspace), cT (H, N) the final cell
    (a copy), and a cache for the backward.
    """
    ws = _ws(ws)
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
    WhT = _contiguous_T(Wh)
    with _errstate():
        for t in range(T):
            lstm_cell(XP[:, t], h, cs[t], WhT, acts[t], cs[t + 1], tcs[t], h)
            Hs[:, t + 1] = h
    return Hs[:, 1:], cs[T].copy(), (Hs, acts, cs, tcs, Wh, ws)


def lstm_sequence_backward(dHs, cache, dcT=None, layout="features"):
    """Backward of `lstm_sequence_forward`.

    dHs (H, T, N) upstream gradient on every h_t; dcT (H, N) optional gradient on the final cell.
    Returns dXP (in `layout`, see `_GradOut`), dh0 (H, N), dc0 (H, N), dWh (H, 4H).
    """
    Hs, acts, cs, tcs, Wh, ws = cache
    H, T, N = dHs.shape
    dtype = dHs.dtype
    out = _GradOut(layout, 4 * H, T, N, dtype, ws)
    dh = np.zeros((H, N), dtype=dtype)  # total gradient on h_t; after the loop, on h0
    dc_next = np.zeros((H, N), dtype=dtype) if dcT is None else dcT.astype(dtype, copy=True)
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
    return out.array, dh, dc_next, out.weight_grad(Hs[:, :T])


# ----------------------------------------------------------------------------------------------
# GRU (cuDNN / PyTorch formulation), with XP = x Wx + bx and HP = h_{t-1} Wh + bh:
#   r = sigmoid(XP_r + HP_r)     z = sigmoid(XP_z + HP_z)     n = tanh(XP_n + r * HP_n)
#   h_t = (1 - z) * n + z * h_{t-1}
#
# Backward, with dh the total gradient on h_t:
#   dn = dh * (1 - z)     dz = dh * (h_{t-1} - n)     dh_{t-1} = dh * z + dHP Wh^T
#   da_n = dn * (1 - n^2)         dr = da_n * HP_n     dHP_n = da_n * r
#   da_r = dr * r * (1 - r)       da_z = dz * z * (1 - z)
#   dXP = [da_r, da_z, da_n]      dHP = [da_r, da_z, dHP_n]
#   dWh = sum_t h_{t-1}^T dHP_t   dbh = sum_t dHP_t


def gru_cell(xp, h_prev, Wh, bh, a, hpn, h):
    """One GRU step, feature-major, writing into preallocated buffers.

    xp (3H, N) = x Wx + bx; h_prev (H, N); Wh (H, 3H); bh (3H,).
    Outputs: a (3H, N) activations [r z n]; hpn (H, N) = (h_prev Wh + bh)_n; h (H, N).
    h must not be h_prev (the last line reads h_prev).
    """
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
    # h = n + z * (h_prev - n)
    np.subtract(h_prev, n, out=h)
    h *= z
    h += n
    return h


def gru_sequence_forward(XP, h0, Wh, bh, ws=None):
    """Run the GRU over a projected sequence.

    XP (3H, T, N) = x Wx + bx; h0 (H, N); Wh (H, 3H); bh (3H,).
    Returns Hs (H, T, N) hidden states (a view of the workspace) and a cache for the backward.
    """
    ws = _ws(ws)
    G, T, N = XP.shape
    H = G // 3
    dtype = XP.dtype
    acts = ws.get("acts", (T, G, N), dtype)
    hpns = ws.get("hpns", (T, H, N), dtype)
    hs = ws.get("hs", (T + 1, H, N), dtype)  # time-major h, read by the backward per step
    Hs = ws.get("Hs", (H, T + 1, N), dtype)
    hs[0] = h0
    Hs[:, 0] = h0
    WhT = _contiguous_T(Wh)
    with _errstate():
        for t in range(T):
            gru_cell(XP[:, t], hs[t], WhT, bh, acts[t], hpns[t], hs[t + 1])
            Hs[:, t + 1] = hs[t + 1]
    return Hs[:, 1:], (Hs, hs, acts, hpns, Wh, ws)


def gru_sequence_backward(dHs, cache, layout="features"):
    """Backward of `gru_sequence_forward`.

    dHs (H, T, N). Returns dXP (in `layout`, see `_GradOut`), dh0 (H, N), dWh (H, 3H), dbh (3H,).
    """
    Hs, hs, acts, hpns, Wh, ws = cache
    H, T, N = dHs.shape
    dtype = dHs.dtype
    out = _GradOut(layout, 3 * H, T, N, dtype, ws)
    dHP = ws.get("dHP", (3 * H, T, N), dtype)  # [da_r, da_z, dHP_n] per step, for dWh and dbh
    d = ws.get("d", (3 * H, N), dtype)
    dhp = ws.get("dhp", (3 * H, N), dtype)
    tmp = ws.get("tmp", (2 * H, N), dtype)
    dh = np.zeros((H, N), dtype=dtype)
    dr, dz, dn = d[:H], d[H : 2 * H], d[2 * H :]
    tmp1 = tmp[:H]
    for t in range(T - 1, -1, -1):
        a = acts[t]
        r, z, n = a[:H], a[H : 2 * H], a[2 * H :]
        np.add(dHs[:, t], dh, out=dh)
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
    return out.array, dh, dWh, _row_sums(dHP2)


# ----------------------------------------------------------------------------------------------
# Public batch-major API: x (N, T, D), h0/c0 (N, H), dh (N, T, H); dtype out = dtype in.


def _fm(x):
    """(N, T, D) -> (D, T, N) contiguous."""
    return np.ascontiguousarray(x.transpose(2, 1, 0))


def _bm(x):
    """(D, T, N) -> (N, T, D) contiguous."""
    return np.ascontiguousarray(x.transpose(2, 1, 0))


def rnn_forward(x, h0, Wx, Wh, b):
    """Vanilla RNN over a sequence: h_t = tanh(x_t Wx + h_{t-1} Wh + b).

    x (N, T, D); h0 (N, H); Wx (D, H); Wh (H, H); b (H,). Returns h (N, T, H) and a cache.
    """
    X = _fm(x)
    Hs, cache = rnn_sequence_forward(project(X, Wx, b), np.ascontiguousarray(h0.T), Wh)
    return _bm(Hs), (X, Wx, cache)


def rnn_backward(dh, cache):
    """Backward of `rnn_forward`: dh (N, T, H) -> dx (N, T, D), dh0 (N, H), dWx, dWh, db."""
    X, Wx, seq_cache = cache
    dXP, dh0, dWh = rnn_sequence_backward(_fm(dh), seq_cache)
    dX, dWx, db = project_backward(dXP, X, Wx)
    return _bm(dX), dh0.T.copy(), dWx, dWh, db


def lstm_forward(x, h0, c0, Wx, Wh, b):
    """LSTM over a sequence (gate columns i, f, o, g); see the equations above `lstm_cell`.

    x (N, T, D); h0, c0 (N, H); Wx (D, 4H); Wh (H, 4H); b (4H,).
    Returns h (N, T, H), cT (N, H) the final cell state, and a cache.
    """
    X = _fm(x)
    Hs, cT, cache = lstm_sequence_forward(
        project(X, Wx, b), np.ascontiguousarray(h0.T), np.ascontiguousarray(c0.T), Wh
    )
    return _bm(Hs), cT.T.copy(), (X, Wx, cache)


def lstm_backward(dh, cache):
    """Backward of `lstm_forward`: dh (N, T, H) -> dx, dh0, dc0, dWx, dWh, db."""
    X, Wx, seq_cache = cache
    dXP, dh0, dc0, dWh = lstm_sequence_backward(_fm(dh), seq_cache)
    dX, dWx, db = project_backward(dXP, X, Wx)
    return _bm(dX), dh0.T.copy(), dc0.T.copy(), dWx, dWh, db


def gru_forward(x, h0, Wx, Wh, bx, bh):
    """GRU over a sequence (gate columns r, z, n); see the equations above `gru_cell`.

    x (N, T, D); h0 (N, H); Wx (D, 3H); Wh (H, 3H); bx, bh (3H,). Returns h (N, T, H), cache.
    """
    X = _fm(x)
    Hs, cache = gru_sequence_forward(project(X, Wx, bx), np.ascontiguousarray(h0.T), Wh, bh)
    return _bm(Hs), (X, Wx, cache)


def gru_backward(dh, cache):
    """Backward of `gru_forward`: dh (N, T, H) -> dx, dh0, dWx, dWh, dbx, dbh."""
    X, Wx, seq_cache = cache
    dXP, dh0, dWh, dbh = gru_sequence_backward(_fm(dh), seq_cache)
    dX, dWx, dbx = project_backward(dXP, X, Wx)
    return _bm(dX), dh0.T.copy(), dWx, dWh, dbx, dbh


# ----------------------------------------------------------------------------------------------
# Dropout and the softmax head.


def dropout_mask(shape, p, rng, dtype):
    """Inverted-dropout mask: 0 with probability p, else 1/(1-p), so E[mask] = 1.

    Applied as x * mask in training; evaluation uses no mask and needs no rescaling.
    The draws are 16-bit integers (half the time of float32 uniforms), so the drop probability
    is p rounded to a multiple of 2^-16.
    """
    keep = rng.integers(0, 1 << 16, size=shape, dtype=np.uint16) >= round(p * (1 << 16))
    return np.multiply(keep, dtype.type(1.0 / (1.0 - p)), dtype=dtype)


def softmax_cross_entropy(X, W, b, targets, denom=None):
    """Affine head + softmax cross-entropy, averaged over every position.

    X (H, T, N) feature-major inputs; W (H, V); b (V,); targets (N, T) ids.
    logits z = W^T x + b (V, T*N); per position, -log softmax(z)[y] = log sum_v exp(z_v - m)
    - (z_y - m) with m = max_v z_v, which never overflows. The loss is the sum over positions
    divided by denom (default T*N, the mean; a batch split into chunks passes the whole
    batch's count so that the chunks' losses and gradients simply add up).
    Returns loss (float) and a cache for `softmax_cross_entropy_backward`.
    """
    H, T, N = X.shape
    denom = T * N if denom is None else denom
    logits = np.matmul(W.T, X.reshape(H, T * N))  # (V, T*N)
    logits += b[:, None]
    logits -= logits.max(axis=0)
    cols = np.arange(T * N)
    rows = targets.T.reshape(-1)  # position order (t, n)
    picked = logits[rows, cols].astype(np.float64)
    probs = np.exp(logits, out=logits)
    sums = probs.sum(axis=0)
    loss = (np.log(sums, dtype=np.float64) - picked).sum() / denom
    probs /= sums
    return float(loss), (X, W, probs, rows, cols, denom)


def softmax_cross_entropy_backward(cache):
    """Backward of `softmax_cross_entropy`: dz = (softmax(z) - onehot(y)) / denom.

    Returns dX (H, T, N), dW (H, V), db (V,).
    """
    X, W, probs, rows, cols, denom = cache
    H, T, N = X.shape
    dlogits = probs  # reused in place: the probabilities are not needed afterwards
    dlogits[rows, cols] -= 1.0
    dlogits *= 1.0 / denom
    dX = np.matmul(W, dlogits).reshape(H, T, N)
    dW = np.matmul(X.reshape(H, T * N), dlogits.T)
    return dX, dW, _row_sums(dlogits)
