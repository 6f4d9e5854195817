"""The pieces every cell shares: buffers, input projections, elementwise activations, dropout,
the softmax head, and the batch-major entry point to any cell of the table.

Layout. The model keeps activations feature-major, (F, T, N) (features, time, batch), so that
the input projection of a whole sequence and the weight gradients over all time steps are each
ONE matrix product, and the per-step work of a cell (in `charrnn.cells`) reads and writes
contiguous (F, N) slabs: numpy runs a ufunc on a contiguous array several times faster than on
a strided slice such as `gates[:, :3H]`. A cell's time loop only does the recurrent product
h_{t-1} Wh and elementwise work; the input projections are `project` (a GEMM) or, for character
ids, `embed` (a row lookup of Wx, never a one-hot product), with backward passes
`project_backward` and `embed_backward`.

`cell_forward` / `cell_backward` run any cell over batch-major arrays, x (N, T, D) and states
(N, H), as in cs231n, returning gradients by parameter name: the form the gradient checks use.
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
    return dX, dWx, row_sums(dXP2)


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
    (G, T, N) array is G rows of N numbers, T N apart, slow to read step by step, while the
    table is small enough to stay in cache (README, Performance).
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

    Cheaper than np.tanh on large float32 arrays (numpy's exp is faster per element than its
    tanh) and exact to float32 rounding. exp may overflow to inf: the result is -1.
    """
    np.multiply(x, -2.0, out=out)
    np.exp(out, out=out)
    out += 1.0
    np.divide(2.0, out, out=out)
    out -= 1.0
    return out


def sigmoid_from_tanh(x, halves):
    """x (k,)+col holding tanh(y / 2) -> sigmoid(y) = (1 + tanh(y / 2)) / 2, in place; halves is
    an array of 0.5 at least as long as x. The sampler's form of a sigmoid: with the halving
    folded into its weights, one np.tanh call covers a cell's sigmoid and tanh gates at once."""
    half = halves[: len(x)]
    np.multiply(x, half, x)
    np.add(x, half, x)


def errstate():
    """exp overflows to inf for large pre-activations; sigmoid and tanh then give the right limit."""
    return np.errstate(over="ignore")


def row_sums(M):
    """M (G, K) -> (G,) sums of its rows, as a matrix-vector product: a bias gradient over all
    positions, several times faster than M.sum(axis=1) on a large float32 gradient."""
    return np.matmul(M, np.ones(M.shape[1], dtype=M.dtype))


def contiguous_T(W):
    """W with a C-contiguous transpose: the per-step product W^T h runs faster on it."""
    return np.ascontiguousarray(W.T).T


def record_step(record, t, **grads):
    """record[name][t] = grads[name] for the names `record` has: a cell backward's record of
    the total gradient on its state arrays at step t."""
    for name, g in grads.items():
        if name in record:
            record[name][t] = g


class GradOut:
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
# Any cell of the table over batch-major arrays: x (N, T, D), states (N, H); dtype out = dtype in.


def _fm(x):
    """(N, T, D) -> (D, T, N) contiguous, and back."""
    return np.ascontiguousarray(x.transpose(2, 1, 0))


def cell_forward(cell, x, state, params):
    """Run `cell` (a `charrnn.cells.Cell`) over x (N, T, D) from state, a tuple of (N, H) arrays.

    params: the layer's parameters by short name (Wx (D, G H), Wh (H, G H), the cell's biases).
    Returns h (N, T, H), the final state (a tuple of (N, H)) and a cache for `cell_backward`.
    """
    X = _fm(x)
    XP = project(X, params["Wx"], params[cell.biases[0]])
    Hs, last, cache = cell.forward(XP, tuple(np.ascontiguousarray(s.T) for s in state), params)
    return _fm(Hs), tuple(s.T.copy() for s in last), (cell, X, params["Wx"], cache)


def cell_backward(dh, cache, dstate=None):
    """Backward of `cell_forward`: dh (N, T, H) and dstate, gradients on the final state (a tuple
    of (N, H), or None). Returns dx (N, T, D), the gradients on the initial state (a tuple of
    (N, H)) and a dict of parameter gradients with the keys of `params`."""
    cell, X, Wx, seq_cache = cache
    dlast = None if dstate is None else tuple(np.ascontiguousarray(d.T) for d in dstate)
    dXP, dfirst, grads = cell.backward(_fm(dh), dlast, seq_cache)
    dX, grads["Wx"], grads[cell.biases[0]] = project_backward(dXP, X, Wx)
    return _fm(dX), tuple(d.T.copy() for d in dfirst), grads


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
    return dX, dW, row_sums(dlogits)
