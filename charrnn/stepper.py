"""Advancing N streams one character at a time, allocation-free: the engine of sampling.

What a cell computes per step is its `step` function in `charrnn.cells`, next to its sequence
forward (which the training uses) and tested against it; this module does the part every cell
shares: the input lookup, the products, the head.
"""

import numpy as np


class Stepper:
    """N streams of a `CharRNN`, advanced one character at a time.

        stepper = Stepper(model, N)          # zero state
        logits = stepper.step(ids)           # ids (N,) -> logits (N, V), a view that the next
                                             # call overwrites
        stepper.state                        # a copy, in `CharRNN.init_state` form
        stepper.select(rows)                 # stream n continues from stream rows[n]
        stepper.resized(M)                   # M streams at zero state, sharing the weights
        stepper.state = state                # set every stream's state (init_state form)

    Sampling one stream costs a few dozen numpy calls on vectors of 256 to 1024 numbers per
    character, so call overhead weighs as much as arithmetic. Everything here is set up to make
    fewer, cheaper calls:
    * every buffer is allocated once; for N = 1 they are 1-D vectors (numpy's matrix-vector
      product and its ufuncs are faster on those than on (K, 1) columns);
    * layer 0's input projection is a row of E = Wx + b (V, G H), the one-hot lookup;
    * for a cell whose pre-activation is x Wx + h Wh + b (`Cell.fuse_input`: the LSTM, the
      RNN), layer l >= 1 computes both products as ONE product of [Wx; Wh]^T (G H, 2H) with the
      stacked vector [h_{l-1}; h_l]. All layers' h live one after another in one (L H, N)
      buffer, so that stacked vector is a slice of it, and the cell writes its new h in place,
      after the product has read the old one. Other cells (the GRU, whose n gate needs h Wh_n
      on its own) get x = Wx^T h_{l-1} + b from a product of their own;
    * sigmoid gates are computed as (1 + tanh(x / 2)) / 2, with the halving folded into the
      copied weights and biases of their rows (exact: a power of two), so that one np.tanh
      call can cover all of a cell's gates.
    What each step hands the cell's `step(a, x, state, p, tmp, halves)`: a (G H,)+col the
    product just computed; x the projected input (for a fused layer, just the input bias);
    state the layer's state arrays (h a view of the stacked buffer), updated in place; p the
    cell's other biases, halved like the weights; tmp (H,)+col scratch; halves an array of 0.5.
    The numbers are the training forward's up to float rounding. The weights are copies: build
    a new Stepper after changing `model.params`.

    per_stream=True computes each stream's products as the matrix-vector products of N = 1
    (one numpy call over a stack of vectors) instead of one matrix product: BLAS rounds a
    matrix product differently from a matrix-vector product, and differently again by N, so
    only this way are a stream's numbers exactly those it would have alone, whatever the
    others (what the server needs: a request's text never depends on its neighbours). It
    costs the matrix product's saving on memory traffic, not the saving on calls.
    """

    def __init__(self, model, N=1, per_stream=False):
        cfg, p, dt, cell = model.config, model.params, model.dtype, model.cell
        H, G, L = cfg.hidden_size, cell.G, cfg.num_layers
        scale = np.ones(G * H, dtype=dt)
        scale[: cell.sigmoid_gates * H] = 0.5  # rows whose gate is a sigmoid
        first = cell.biases[0]
        E = np.ascontiguousarray((p["layers.0.Wx"] + p["layers.0." + first]) * scale)  # (V, G H)
        # per layer: (W, b, WxT, p): the product's C-contiguous (G H, K) matrix on [x; h] (a
        # fused layer) or h; the input bias; for an unfused layer above 0, Wx^T; other biases
        layers = []
        for layer in range(L):
            lp = model.layer_params(layer)
            fused = layer > 0 and cell.fuse_input
            W = np.concatenate([lp["Wx"], lp["Wh"]]) if fused else lp["Wh"]  # (2H, G H) on [x; h]
            WxT = None if fused or not layer else np.ascontiguousarray((lp["Wx"] * scale).T)
            layers.append((np.ascontiguousarray((W * scale).T), lp[first] * scale, WxT,
                           {b: lp[b] * scale for b in cell.biases[1:]}, fused))
        self._weights = (E, np.ascontiguousarray(E.T), layers,  # E^T (G H, V) gathers N columns
                         np.ascontiguousarray(p["head.W"].T), p["head.b"])  # (V, H), (V,)
        self._shape = (H, G, L, dt, cell)
        self._buffers(N, per_stream)

    def resized(self, N):
        """A Stepper of N streams at zero state with the same weights (shared, not copied) and
        the same per_stream: cheap enough to call whenever the set of streams changes."""
        other = object.__new__(Stepper)
        other._weights, other._shape = self._weights, self._shape
        other._buffers(N, self.per_stream)
        return other

    def _buffers(self, N, per_stream):
        """Allocate the per-stream buffers of N streams (zero state) and the views step() uses."""
        H, G, L, dt, cell = self._shape
        E, self._ET, layers, self._headW, headb = self._weights
        self.N, self.per_stream = N, per_stream
        col = (N,) if N > 1 else ()  # trailing stream axis of every buffer
        ones = (1,) * len(col)
        self._E = E
        hs = self._hs = np.zeros((L * H,) + col, dtype=dt)  # h of every layer, stacked
        self._xp = np.empty((G * H,) + col, dtype=dt)  # projected input
        self._a = np.empty((G * H,) + col, dtype=dt)  # the product, then the activations
        self._tmp = np.empty((H,) + col, dtype=dt)
        self._logits = np.empty((len(headb),) + col, dtype=dt)
        self._halves = np.full((G * H,) + col, 0.5, dtype=dt)  # an array: a scalar costs more
        self._step = cell.step
        self._product = self._per_stream_product if per_stream and N > 1 else np.matmul
        # per layer: (W, z, b, WxT, below, state, p): the product's matrix and the vector it
        # reads; the input bias; Wx^T and the h below (unfused layers above 0); the state
        # arrays; the other biases
        self._layers = []
        for layer, (W, b, WxT, others, fused) in enumerate(layers):
            h = hs[layer * H : (layer + 1) * H]
            below = hs[(layer - 1) * H : layer * H] if layer else None
            z = hs[(layer - 1) * H : (layer + 1) * H] if fused else h
            state = (h,) + tuple(np.zeros((H,) + col, dtype=dt) for _ in cell.states[1:])
            self._layers.append((W, z, b.reshape((-1,) + ones), WxT, below, state,
                                 {k: v.reshape((-1,) + ones) for k, v in others.items()}))
        self._headb = headb.reshape((-1,) + ones)

    @property
    def state(self):
        """The current state, as `CharRNN.init_state(N)` lays it out (copies)."""
        shape = (len(self._tmp), self.N)
        return tuple(tuple(a.reshape(shape).copy() for a in layer[5]) for layer in self._layers)

    @state.setter
    def state(self, state):
        """Set the state from `CharRNN.init_state(N)` form: per layer, (H, N) arrays."""
        for layer, arrays in zip(self._layers, state):
            for a, value in zip(layer[5], arrays):
                a[...] = value.reshape(a.shape)

    def select(self, rows):
        """Make stream n continue from the current state of stream rows[n], for every n: how
        beam search keeps its best continuations. rows (N,) ids of streams; a gather, so one
        stream may be copied to several. With N = 1 there is nothing to choose from."""
        if self.N == 1:
            return
        self._hs[...] = self._hs[:, rows]  # every layer's h; the fancy index copies first
        for layer in self._layers:
            for a in layer[5][1:]:  # the other state arrays (h is a view of _hs)
                a[...] = a[:, rows]

    def step(self, ids):
        """Feed ids (N,) and return the logits (N, V) for the next character (a reused view)."""
        if self.N == 1:
            x = self._E[int(ids[0])]  # a view of one row: no copy
        else:
            x = np.take(self._ET, ids, axis=1, out=self._xp, mode="clip")
        a, tmp, halves, product = self._a, self._tmp, self._halves, self._product
        for W, z, b, WxT, below, state, others in self._layers:
            if WxT is not None:  # an unfused layer above 0: x = Wx^T h_{l-1} + b
                x = product(WxT, below, self._xp)
                np.add(x, b, x)
            elif x is None:  # a fused layer: the product includes x Wx
                x = b
            product(W, z, a)
            self._step(a, x, state, others, tmp, halves)
            x = None
        product(self._headW, self._hs[-len(tmp):], self._logits)
        np.add(self._logits, self._headb, self._logits)
        return self._logits.T if self.N > 1 else self._logits[None]

    @staticmethod
    def _per_stream_product(W, z, out):
        """out = W z as one matrix-vector product per stream: z (K, N), out (M, N); z.T[n] is
        stream n's vector, as the one vector of N = 1 is."""
        np.matmul(W, z.T[:, :, None], out.T[:, :, None])
        return out
