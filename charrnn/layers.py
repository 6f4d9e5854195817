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
# Input projections: XP = Wx^T x + b for every (t, n) at once.


def project(X, Wx, b):
    """Input projection of a whole sequence as one GEMM.

    X (D, T, N) feature-major inputs (a view with contiguous (T, N) rows is fine);
    Wx (D, G); b (G,). Returns XP (G, T, N) with XP[:, t, n] = Wx^T X[:, t, n] + b.
    """
    D, T, N = X.shape
    XP = np.matmul(Wx.T, X.reshape(D, T * N))  # (G, T*N)
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
    db = dXP2.sum(axis=1)
    return dX, dWx, db


def embed(ids, Wx, b):
    """Input projection of character ids: a row lookup of Wx (one-hot input, no matrix product).

    ids (N, T) integers in [0, V); Wx (V, G); b (G,). Returns XP (G, T, N) = Wx[ids]^T + b.
    """
    WxT = np.ascontiguousarray(Wx.T)  # (G, V): gathering columns yields (G, T, N) directly
    XP = np.take(WxT, ids.T, axis=1)
    XP += b[:, None, None]
    return XP


def embed_backward(dXP, ids, vocab_size):
    """Backward of `embed`: dWx[v] = sum of dXP[:, t, n] over the positions where ids[n, t] == v.

    A segment sum over the positions sorted by id (deterministic, no one-hot product).
    dXP (G, T, N); ids (N, T). Returns dWx (V, G) and db (G,).
    """
    G = dXP.shape[0]
    flat_ids = ids.T.reshape(-1)  # position order (t, n), matching dXP.reshape(G, T*N)
    order = np.argsort(flat_ids, kind="stable")
    sorted_ids = flat_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    dXP2 = dXP.reshape(G, -1)
    sums = np.add.reduceat(dXP2[:, order], starts, axis=1)  # (G, number of distinct ids)
    dWx = np.zeros((vocab_size, G), dtype=dXP.dtype)
    dWx[sorted_ids[starts]] = sums.T
    return dWx, dXP2.sum(axis=1)


# ----------------------------------------------------------------------------------------------
# Elementwise helpers.


def sigmoid(x, out):
    """out = 1 / (1 + exp(-x)), in place when out is x. exp may overflow to inf: the result is 0."""
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


def _errstate():
    # exp(-x) overflows to inf for very negative pre-activations; 1/(1+inf) = 0 is the right answer.
    return np.errstate(over="ignore")


def _time_major(a):
    """(F, T, N) view -> contiguous (T, F, N) copy, so each time step is one contiguous slab."""
    return np.ascontiguousarray(a.transpose(1, 0, 2))


def _feature_major(a):
    """(T, F, N) -> contiguous (F, T, N), the layout of the one-GEMM projections."""
    return np.ascontiguousarray(a.transpose(1, 0, 2))


# ----------------------------------------------------------------------------------------------
# Vanilla RNN:  h_t = tanh(x_t Wx + h_{t-1} Wh + b)
#
# Backward (a_t = the pre-activation):  da_t = (dh_t + dh_{t+1 -> t}) * (1 - h_t^2)
#   dh_{t-1} += da_t Wh^T      dWh = sum_t h_{t-1}^T da_t      dXP_t = da_t


def rnn_cell(xp, h_prev, Wh, h):
    """One RNN step, feature-major: h = tanh(xp + Wh^T h_prev). xp, h_prev, h (H, N)."""
    np.matmul(Wh.T, h_prev, out=h)
    h += xp
    np.tanh(h, out=h)
    return h


def rnn_sequence_forward(XP, h0, Wh):
    """Run the RNN over a projected sequence.

    XP (H, T, N) = x Wx + b for every step; h0 (H, N); Wh (H, H).
    Returns Hs (H, T, N) hidden states and a cache for `rnn_sequence_backward`.
    """
    H, T, N = XP.shape
    hs = np.empty((T + 1, H, N), dtype=XP.dtype)  # hs[0] = h0, hs[t+1] = h_t
    hs[0] = h0
    for t in range(T):
        rnn_cell(XP[:, t], hs[t], Wh, hs[t + 1])
    Hs = _feature_major(hs)  # (H, T+1, N)
    return Hs[:, 1:], (Hs, hs, Wh)


def rnn_sequence_backward(dHs, cache):
    """Backward of `rnn_sequence_forward`.

    dHs (H, T, N) upstream gradient on every h_t. Returns dXP (H, T, N), dh0 (H, N), dWh (H, H).
    """
    Hs, hs, Wh = cache
    H, T, N = dHs.shape
    dh_seq = _time_major(dHs)
    da = np.empty((T, H, N), dtype=dHs.dtype)
    dh_next = np.zeros((H, N), dtype=dHs.dtype)
    for t in range(T - 1, -1, -1):
        dh = dh_seq[t]
        dh += dh_next  # gradient from the output and from step t+1
        a = da[t]
        np.multiply(hs[t + 1], hs[t + 1], out=a)  # backprop through tanh: 1 - h^2
        np.subtract(1.0, a, out=a)
        a *= dh
        np.matmul(Wh, a, out=dh_next)  # into h_{t-1}
    dXP = _feature_major(da)
    dWh = np.matmul(Hs[:, :T].reshape(H, T * N), dXP.reshape(H, T * N).T)
    return dXP, dh_next, dWh


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
    """
    H = h.shape[0]
    np.matmul(Wh.T, h_prev, out=a)
    a += xp
    sigmoid(a[: 3 * H], out=a[: 3 * H])
    np.tanh(a[3 * H :], out=a[3 * H :])
    i, f, o, g = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
    np.multiply(i, g, out=tc)
    np.multiply(f, c_prev, out=c)
    c += tc
    np.tanh(c, out=tc)
    np.multiply(o, tc, out=h)
    return h, c


def lstm_sequence_forward(XP, h0, c0, Wh):
    """Run the LSTM over a projected sequence.

    XP (4H, T, N); h0, c0 (H, N); Wh (H, 4H).
    Returns Hs (H, T, N) hidden states, cT (H, N) final cell, and a cache for the backward.
    """
    G, T, N = XP.shape
    H = G // 4
    dtype = XP.dtype
    acts = np.empty((T, G, N), dtype=dtype)  # gate activations per step
    cs = np.empty((T + 1, H, N), dtype=dtype)  # cs[0] = c0
    tcs = np.empty((T, H, N), dtype=dtype)  # tanh(c_t)
    hs = np.empty((T + 1, H, N), dtype=dtype)  # hs[0] = h0
    hs[0] = h0
    cs[0] = c0
    with _errstate():
        for t in range(T):
            lstm_cell(XP[:, t], hs[t], cs[t], Wh, acts[t], cs[t + 1], tcs[t], hs[t + 1])
    Hs = _feature_major(hs)
    return Hs[:, 1:], cs[T].copy(), (Hs, acts, cs, tcs, Wh)


def lstm_sequence_backward(dHs, cache, dcT=None):
    """Backward of `lstm_sequence_forward`.

    dHs (H, T, N) upstream gradient on every h_t; dcT (H, N) optional gradient on the final cell.
    Returns dXP (4H, T, N), dh0 (H, N), dc0 (H, N), dWh (H, 4H).
    """
    Hs, acts, cs, tcs, Wh = cache
    H, T, N = dHs.shape
    dtype = dHs.dtype
    dh_seq = _time_major(dHs)
    da = np.empty((T, 4 * H, N), dtype=dtype)
    dh_next = np.zeros((H, N), dtype=dtype)
    dc_next = np.zeros((H, N), dtype=dtype) if dcT is None else dcT.astype(dtype, copy=True)
    dc = np.empty((H, N), dtype=dtype)
    tmp = np.empty((H, N), dtype=dtype)
    for t in range(T - 1, -1, -1):
        a, d = acts[t], da[t]
        i, f, o, g = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
        di, df, do, dg = d[:H], d[H : 2 * H], d[2 * H : 3 * H], d[3 * H :]
        tc = tcs[t]
        dh = dh_seq[t]
        dh += dh_next
        np.multiply(dh, tc, out=do)  # do = dh * tanh(c)
        # dc = dc_next + dh * o * (1 - tanh(c)^2)
        np.multiply(tc, tc, out=tmp)
        np.subtract(1.0, tmp, out=tmp)
        tmp *= o
        tmp *= dh
        np.add(dc_next, tmp, out=dc)
        np.multiply(dc, g, out=di)  # di = dc * g
        np.multiply(dc, cs[t], out=df)  # df = dc * c_{t-1}
        np.multiply(dc, i, out=dg)  # dg = dc * i
        np.multiply(dc, f, out=dc_next)  # into c_{t-1}
        # backprop through the sigmoids of i, f, o: d * s * (1 - s)
        s, ds = a[: 3 * H], d[: 3 * H]
        ds *= s
        ds -= ds * s  # ds * s * (1 - s) = ds*s - ds*s*s
        # backprop through the tanh of g: dg * (1 - g^2)
        np.multiply(g, g, out=tmp)
        np.subtract(1.0, tmp, out=tmp)
        dg *= tmp
        np.matmul(Wh, d, out=dh_next)  # into h_{t-1}
    dXP = _feature_major(da)
    dWh = np.matmul(Hs[:, :T].reshape(H, T * N), dXP.reshape(4 * H, T * N).T)
    return dXP, dh_next, dc_next, dWh


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
    np.tanh(n, out=n)
    # h = n + z * (h_prev - n)
    np.subtract(h_prev, n, out=h)
    h *= z
    h += n
    return h


def gru_sequence_forward(XP, h0, Wh, bh):
    """Run the GRU over a projected sequence.

    XP (3H, T, N) = x Wx + bx; h0 (H, N); Wh (H, 3H); bh (3H,).
    Returns Hs (H, T, N) hidden states and a cache for the backward.
    """
    G, T, N = XP.shape
    H = G // 3
    dtype = XP.dtype
    acts = np.empty((T, G, N), dtype=dtype)
    hpns = np.empty((T, H, N), dtype=dtype)
    hs = np.empty((T + 1, H, N), dtype=dtype)
    hs[0] = h0
    with _errstate():
        for t in range(T):
            gru_cell(XP[:, t], hs[t], Wh, bh, acts[t], hpns[t], hs[t + 1])
    Hs = _feature_major(hs)
    return Hs[:, 1:], (Hs, hs, acts, hpns, Wh)


def gru_sequence_backward(dHs, cache):
    """Backward of `gru_sequence_forward`.

    dHs (H, T, N). Returns dXP (3H, T, N), dh0 (H, N), dWh (H, 3H), dbh (3H,).
    """
    Hs, hs, acts, hpns, Wh = cache
    H, T, N = dHs.shape
    dtype = dHs.dtype
    dh_seq = _time_major(dHs)
    dxp = np.empty((T, 3 * H, N), dtype=dtype)
    dhpn = np.empty((T, H, N), dtype=dtype)
    dhp = np.empty((3 * H, N), dtype=dtype)
    dh_next = np.zeros((H, N), dtype=dtype)
    tmp = np.empty((H, N), dtype=dtype)
    for t in range(T - 1, -1, -1):
        a, d = acts[t], dxp[t]
        r, z, n = a[:H], a[H : 2 * H], a[2 * H :]
        dr, dz, dn = d[:H], d[H : 2 * H], d[2 * H :]
        dh = dh_seq[t]
        dh += dh_next
        np.subtract(hs[t], n, out=dz)  # dz = dh * (h_{t-1} - n)
        dz *= dh
        np.subtract(1.0, z, out=dn)  # dn = dh * (1 - z)
        dn *= dh
        np.multiply(n, n, out=tmp)  # backprop through tanh: da_n = dn * (1 - n^2)
        np.subtract(1.0, tmp, out=tmp)
        dn *= tmp
        np.multiply(dn, hpns[t], out=dr)  # dr = da_n * HP_n
        np.multiply(dn, r, out=dhpn[t])  # dHP_n = da_n * r
        # backprop through the sigmoids of r, z: d * s * (1 - s)
        s, ds = a[: 2 * H], d[: 2 * H]
        ds *= s
        ds -= ds * s
        dhp[: 2 * H] = ds
        dhp[2 * H :] = dhpn[t]
        np.multiply(dh, z, out=tmp)  # direct path h_{t-1} -> h_t
        np.matmul(Wh, dhp, out=dh_next)
        dh_next += tmp
    dXP = _feature_major(dxp)
    dHPn = _feature_major(dhpn)
    Hprev = Hs[:, :T].reshape(H, T * N)
    dXP2 = dXP.reshape(3 * H, T * N)
    dWh = np.empty((H, 3 * H), dtype=dtype)
    np.matmul(Hprev, dXP2[: 2 * H].T, out=dWh[:, : 2 * H])  # r, z: dHP = dXP
    np.matmul(Hprev, dHPn.reshape(H, T * N).T, out=dWh[:, 2 * H :])
    dbh = np.concatenate([dXP2[: 2 * H].sum(axis=1), dHPn.reshape(H, T * N).sum(axis=1)])
    return dXP, dh_next, dWh, dbh


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
    """
    keep = rng.random(shape, dtype=np.float64 if dtype == np.float64 else np.float32) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))


def softmax_cross_entropy(X, W, b, targets):
    """Affine head + softmax cross-entropy, averaged over every position.

    X (H, T, N) feature-major inputs; W (H, V); b (V,); targets (N, T) ids.
    logits = W^T x + b (V, T*N); loss = mean over (t, n) of -log softmax(logits)[target].
    Softmax is computed stably: logits - max over V before the exp.
    Returns loss (float) and a cache for `softmax_cross_entropy_backward`.
    """
    H, T, N = X.shape
    X2 = X.reshape(H, T * N)
    logits = np.matmul(W.T, X2)  # (V, T*N)
    logits += b[:, None]
    logits -= logits.max(axis=0)
    np.exp(logits, out=logits)
    probs = logits
    probs /= probs.sum(axis=0)
    cols = np.arange(T * N)
    rows = targets.T.reshape(-1)  # position order (t, n)
    picked = probs[rows, cols]
    loss = -np.log(np.maximum(picked, np.finfo(probs.dtype).tiny)).mean(dtype=np.float64)
    return float(loss), (X, W, probs, rows, cols)


def softmax_cross_entropy_backward(cache):
    """Backward of `softmax_cross_entropy`: dlogits = (softmax - onehot(target)) / (T*N).

    Returns dX (H, T, N), dW (H, V), db (V,).
    """
    X, W, probs, rows, cols = cache
    H, T, N = X.shape
    dlogits = probs  # reused in place: the probabilities are not needed afterwards
    dlogits[rows, cols] -= 1.0
    dlogits *= 1.0 / (T * N)
    dX = np.matmul(W, dlogits).reshape(H, T, N)
    dW = np.matmul(X.reshape(H, T * N), dlogits.T)
    return dX, dW, dlogits.sum(axis=1)
