"""The deep character-level recurrent network: configuration, parameters, loss and gradients.

A `CharRNN` is `num_layers` stacked cells (LSTM, GRU or vanilla RNN) over one-hot characters,
with inverted dropout between layers and before the softmax head. Layer 0's input projection is
a row lookup of its Wx by character id. Hidden state is kept feature-major, (H, N) per layer,
the layout of `layers.py`'s internals.
"""

import os
import weakref

import numpy as np

from charrnn import layers
from charrnn.config import ModelConfig
from charrnn.parallel import _processes_allowed, single_threaded_blas  # noqa: F401

CELLS = ("lstm", "gru", "rnn")
GATES = {"lstm": 4, "gru": 3, "rnn": 1}  # gate blocks per cell: LSTM [i f o g], GRU [r z n]
SIGMOID_GATES = {"lstm": 3, "gru": 2, "rnn": 0}  # the leading gate blocks that are sigmoids


def param_shapes(config):
    """Name -> shape of every parameter, in a fixed order.

    layers.{l}.Wx (D, G H), layers.{l}.Wh (H, G H), and b (G H,) — or, for the GRU, bx and bh —
    where D = vocab_size for layer 0 and H above it; head.W (H, V), head.b (V,).
    """
    H, V, G = config.hidden_size, config.vocab_size, GATES[config.cell]
    shapes = {}
    for layer in range(config.num_layers):
        D = V if layer == 0 else H
        shapes[f"layers.{layer}.Wx"] = (D, G * H)
        shapes[f"layers.{layer}.Wh"] = (H, G * H)
        if config.cell == "gru":
            shapes[f"layers.{layer}.bx"] = (G * H,)
            shapes[f"layers.{layer}.bh"] = (G * H,)
        else:
            shapes[f"layers.{layer}.b"] = (G * H,)
    shapes["head.W"] = (H, V)
    shapes["head.b"] = (V,)
    return shapes


def init_params(config, rng, dtype=np.float32):
    """Initial parameters that train well.

    Layer 0's Wx is a lookup table (its input is one-hot), so its rows are initialised like an
    embedding, ~ N(0, 1): with PyTorch's U(-1/sqrt(H), 1/sqrt(H)) the input barely moves the
    gates and training sits at the unigram loss (~3.3 nats on Shakespeare) for 100+ steps
    (measured here, for torch's nn.LSTM too). Other Wx and head.W ~ U(-1/sqrt(H), 1/sqrt(H));
    each gate block of Wh is a random orthogonal matrix, which keeps the recurrent signal from
    exploding or vanishing early; biases 0 except the LSTM forget gate, 1, so that cells
    remember by default.
    """
    H, G = config.hidden_size, GATES[config.cell]
    bound = 1.0 / np.sqrt(H)
    params = {}
    for name, shape in param_shapes(config).items():
        if name == "layers.0.Wx":
            value = rng.standard_normal(shape)
        elif name.endswith("Wh"):
            blocks = [np.linalg.qr(rng.standard_normal((H, H)))[0] for _ in range(G)]
            value = np.concatenate(blocks, axis=1)
        elif name.endswith(("Wx", "W")):
            value = rng.uniform(-bound, bound, shape)
        else:
            value = np.zeros(shape)
            if config.cell == "lstm" and name.startswith("layers."):
                value[H : 2 * H] = 1.0  # forget gate
        params[name] = np.ascontiguousarray(value, dtype=dtype)
    return params


class CharRNN:
    """A stack of recurrent layers and a softmax head over characters.

    `params` maps names (see `param_shapes`) to arrays; gradients come back as a dict with the
    same keys. A state is a tuple with one entry per layer: (h,) for RNN/GRU, (h, c) for LSTM,
    each (H, N) — feature-major, N streams.
    """

    def __init__(self, config, params=None, seed=0, dtype=np.float32):
        self.config = config
        self.dtype = np.dtype(dtype)
        if params is None:
            params = init_params(config, np.random.default_rng(seed), self.dtype)
        self.params = params
        self._ws = {}  # (batch shape, (kind, chunk)) -> per-layer layers.Workspace
        self.threads = 1  # chunks for loss and loss_and_grads, run in parallel (see there)
        self._executor = None
        self._procs = []  # workers.Worker handles
        self._processes_failed = False
        weakref.finalize(self, CharRNN._stop_workers, self._procs)

    @property
    def num_params(self):
        return sum(p.size for p in self.params.values())

    def init_state(self, N):
        """Zero state for N streams."""
        H = self.config.hidden_size
        per_layer = 2 if self.config.cell == "lstm" else 1
        return tuple(
            tuple(np.zeros((H, N), dtype=self.dtype) for _ in range(per_layer))
            for _ in range(self.config.num_layers)
        )

    # ------------------------------------------------------------------------------------------
    # Whole sequences (training and evaluation).

    def _workspaces(self, shape, chunk):
        """Per-layer buffers for batches of this shape (training and evaluation differ)."""
        key = (shape, chunk)
        if key not in self._ws:
            self._ws[key] = [layers.Workspace() for _ in range(self.config.num_layers)]
        return self._ws[key]

    def _dropout_masks(self, N, T, rng):
        """One inverted-dropout mask (H, T, N) per layer output, or None without dropout."""
        cfg = self.config
        if rng is None or cfg.dropout == 0.0:
            return None
        return [layers.dropout_mask((cfg.hidden_size, T, N), cfg.dropout, rng, self.dtype)
                for _ in range(cfg.num_layers)]

    def _forward(self, x_ids, y_ids, state, masks, ws, denom=None):
        """Forward pass over ids (N, T) with the given dropout masks (or None).

        Returns the loss (summed over positions / denom), the caches for `_backward` and the
        next state (copies).
        """
        cfg, p = self.config, self.params
        inp, caches, next_state = None, [], []
        for layer in range(cfg.num_layers):
            pre, lws = f"layers.{layer}.", ws[layer]
            bias = p[pre + "bx"] if cfg.cell == "gru" else p[pre + "b"]
            if layer == 0:
                XP = layers.embed(x_ids, p[pre + "Wx"], bias, lws)
            else:
                XP = layers.project(inp, p[pre + "Wx"], bias, lws)
            h0 = state[layer][0]
            if cfg.cell == "lstm":
                Hs, cT, cache = layers.lstm_sequence_forward(XP, h0, state[layer][1], p[pre + "Wh"], lws)
                next_state.append((Hs[:, -1].copy(), cT))
            elif cfg.cell == "gru":
                Hs, cache = layers.gru_sequence_forward(XP, h0, p[pre + "Wh"], p[pre + "bh"], lws)
                next_state.append((Hs[:, -1].copy(),))
            else:
                Hs, cache = layers.rnn_sequence_forward(XP, h0, p[pre + "Wh"], lws)
                next_state.append((Hs[:, -1].copy(),))
            mask = None if masks is None else masks[layer]
            out = Hs
            if mask is not None:
                out = np.multiply(Hs, mask, out=lws.get("dropped", Hs.shape, self.dtype))
            caches.append((inp, cache, mask))
            inp = out
        loss, head_cache = layers.softmax_cross_entropy(inp, p["head.W"], p["head.b"], y_ids, denom)
        return loss, (caches, head_cache), tuple(next_state)

    def _backward(self, x_ids, caches):
        """Gradients of every parameter from the caches of `_forward`."""
        cfg, p = self.config, self.params
        layer_caches, head_cache = caches
        grads = {}
        dX, grads["head.W"], grads["head.b"] = layers.softmax_cross_entropy_backward(head_cache)
        for layer in range(cfg.num_layers - 1, -1, -1):
            pre = f"layers.{layer}."
            inp, cache, mask = layer_caches[layer]
            if mask is not None:
                dX *= mask
            layout = "rows" if layer == 0 else "features"  # layer 0 feeds a segment sum
            if cfg.cell == "lstm":
                dXP, _, _, grads[pre + "Wh"] = layers.lstm_sequence_backward(dX, cache, layout=layout)
            elif cfg.cell == "gru":
                dXP, _, grads[pre + "Wh"], grads[pre + "bh"] = layers.gru_sequence_backward(
                    dX, cache, layout=layout)
            else:
                dXP, _, grads[pre + "Wh"] = layers.rnn_sequence_backward(dX, cache, layout=layout)
            bias = pre + ("bx" if cfg.cell == "gru" else "b")
            if layer == 0:
                grads[pre + "Wx"], grads[bias] = layers.embed_backward(dXP, x_ids, cfg.vocab_size)
            else:
                dX, grads[pre + "Wx"], grads[bias] = layers.project_backward(dXP, inp, p[pre + "Wx"])
        return grads

    def loss(self, x_ids, y_ids, state):
        """Mean cross-entropy in nats/char of predicting y_ids (N, T) from x_ids (N, T), no dropout.

        Returns (loss, next_state) so that evaluation can carry the state across batches.
        Split across `threads` like `loss_and_grads`.
        """
        loss, _, next_state = self._run(x_ids, y_ids, state, None, grads=False)
        return loss, next_state

    def loss_and_grads(self, x_ids, y_ids, state, rng=None):
        """Loss, gradients of every parameter, and the carried state for truncated BPTT.

        x_ids, y_ids (N, T) integer ids; state from `init_state(N)` or a previous call.
        Dropout (inverted, masks drawn from rng) only when rng is given.
        Returns (mean loss in nats/char, grads dict like params, next_state).

        `threads` is the number of cores a step uses. With `threads` > 1 the batch is cut into
        that many chunks of streams, each run forward and backward with single-threaded BLAS:
        chunk 0 here, the others in worker processes (see `parallelism`) or threads, so that
        the elementwise work, not only the GEMMs, uses every core; each chunk's loss is its
        share of the whole batch's mean, so losses and gradients add up. With 1, BLAS runs on
        one thread too: a second BLAS thread made a small LSTM (128 units, batch 32) 20% faster
        on an idle machine but 2.6x slower while another process kept the other core busy.
        Each chunk draws its dropout masks from its own generator, seeded from rng: results
        are reproducible for a given thread count (and differ, like any sampling, between
        thread counts).
        """
        return self._run(x_ids, y_ids, state, rng, grads=True)

    def _run(self, x_ids, y_ids, state, rng, grads):
        """(loss, grads or None, next_state), in one piece or in chunks across worker
        processes or threads (see `parallelism`)."""
        N, T = x_ids.shape
        bounds = np.linspace(0, N, min(self.threads, N) + 1).astype(int)
        # each chunk draws its own masks, contiguous and in parallel, from a child generator
        seeds = None if rng is None else rng.integers(2**63, size=len(bounds) - 1)
        # chunk k: (x, y, state, dropout seed) of the streams bounds[k]:bounds[k+1]
        chunks = [(x_ids[lo:hi], y_ids[lo:hi], tuple(tuple(a[:, lo:hi] for a in layer) for layer in state),
                   None if seeds is None else seeds[k])
                  for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))]

        def chunk(k):
            x, y, sub_state, seed = chunks[k]
            sub_rng = None if seed is None else np.random.default_rng(seed)
            return self._chunk(x, y, sub_state, sub_rng, N * T, grads, k)

        with single_threaded_blas():
            if len(chunks) == 1:
                return chunk(0)
            results = None
            if self.parallelism() == "processes":
                results = self._in_processes(chunk, chunks, N * T, grads)
            if results is None:
                results = list(self._pool().map(chunk, range(len(chunks))))
        loss = sum(r[0] for r in results)
        total = results[0][1]
        for _, g, _ in results[1:] if grads else ():
            for k, v in g.items():
                total[k] += v
        next_state = tuple(
            tuple(np.concatenate(parts, axis=1) for parts in zip(*layer_parts))
            for layer_parts in zip(*(r[2] for r in results))
        )
        return loss, total, next_state

    def _in_processes(self, chunk, chunks, denom, grads):
        """Chunk 0 here, the others in worker processes; None if a worker failed (it is
        stopped, with a warning, and the model keeps to threads from then on: they compute
        the same numbers)."""
        from charrnn import workers

        try:
            procs = self._workers(len(chunks) - 1)
            for proc, args in zip(procs, chunks[1:]):
                proc.submit(self, *args, denom, grads)
            results = [chunk(0)]
            return results + [proc.result() for proc in procs]
        except workers.WorkerError as exc:
            import warnings

            self.close()
            self._processes_failed = True
            warnings.warn(f"{exc}; continuing with threads.", RuntimeWarning, stacklevel=2)
            return None

    def _chunk(self, x, y, state, rng, denom, grads, key):
        """Forward (and backward if grads) over one chunk of streams: x, y (n, T) ids, state
        for n streams, rng for its dropout masks (None: none), denom the whole batch's number
        of positions. `key` names the chunk's reusable workspaces. Threads and worker
        processes (`workers.py`) both run this."""
        n, T = x.shape
        ws = self._workspaces((n, T), ("train" if grads else "eval", key))
        masks = self._dropout_masks(n, T, rng)
        with np.errstate(over="ignore"):
            loss, caches, next_state = self._forward(x, y, state, masks, ws, denom)
        return loss, self._backward(x, caches) if grads else None, next_state

    def parallelism(self):
        """Where chunks 1..k-1 of a split batch run: "processes" (see `workers.py`) where the
        system has them (Linux) and none has failed, else "threads". The environment variable
        CHARRNN_PARALLEL=threads keeps everything in this process."""
        return "processes" if _processes_allowed() and not self._processes_failed else "threads"

    def _workers(self, count):
        """`count` worker processes, started on first use and kept until `close`."""
        from charrnn import workers

        while len(self._procs) < count:
            self._procs.append(workers.Worker())
        return self._procs[:count]

    def close(self):
        """Stop the worker processes, if any (a model can still be used after: they restart)."""
        CharRNN._stop_workers(self._procs)

    @staticmethod
    def _stop_workers(procs):
        while procs:
            procs.pop().close()

    def _pool(self):
        if self._executor is None or self._executor._max_workers != self.threads:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="charrnn")
        return self._executor

    # ------------------------------------------------------------------------------------------
    # One character at a time (sampling).

    def step(self, ids, state):
        """Advance N streams by one character each.

        ids (N,) integer ids; state as from `init_state(N)`.
        Returns logits (N, V) for the next character and the new state. Runs the same cell
        functions as the sequence forward, so it gives exactly the same numbers.
        """
        cfg, p = self.config, self.params
        H, G = cfg.hidden_size, GATES[cfg.cell]
        N = len(ids)
        x = None
        new_state = []
        with np.errstate(over="ignore"):
            for layer in range(cfg.num_layers):
                pre = f"layers.{layer}."
                bias = p[pre + "bx"] if cfg.cell == "gru" else p[pre + "b"]
                if layer == 0:
                    xp = layers.embed(np.asarray(ids).reshape(N, 1), p[pre + "Wx"], bias)[:, 0]
                else:
                    xp = layers.project(x[:, None, :], p[pre + "Wx"], bias)[:, 0]
                h = np.empty((H, N), dtype=self.dtype)
                a = np.empty((G * H, N), dtype=self.dtype)
                if cfg.cell == "lstm":
                    c = np.empty_like(h)
                    tc = np.empty_like(h)
                    h_prev, c_prev = state[layer]
                    layers.lstm_cell(xp, h_prev, c_prev, p[pre + "Wh"], a, c, tc, h)
                    new_state.append((h, c))
                elif cfg.cell == "gru":
                    hpn = np.empty_like(h)
                    layers.gru_cell(xp, state[layer][0], p[pre + "Wh"], p[pre + "bh"], a, hpn, h)
                    new_state.append((h,))
                else:
                    layers.rnn_cell(xp, state[layer][0], p[pre + "Wh"], h)
                    new_state.append((h,))
                x = h
        logits = np.matmul(p["head.W"].T, x)
        logits += p["head.b"][:, None]
        return logits.T, tuple(new_state)


class Stepper:
    """`CharRNN.step` for sampling: N streams advanced one character at a time, allocation-free.

        stepper = Stepper(model, N)          # zero state
        logits = stepper.step(ids)           # ids (N,) -> logits (N, V), a view that the next
                                             # call overwrites
        stepper.state                        # a copy, in `init_state` form

    Sampling one stream costs a few dozen numpy calls on vectors of 256 to 1024 numbers per
    character, so call overhead (about 1 us each) weighs as much as arithmetic. Everything here
    is set up to make fewer, cheaper calls:
    * every buffer is allocated once; for N = 1 they are 1-D vectors (numpy's matrix-vector
      product and its ufuncs are faster on those than on (K, 1) columns);
    * layer 0's input projection is a row of E = Wx + b (V, G H), the one-hot lookup;
    * for the LSTM and the RNN, layer l >= 1 computes x Wx + h Wh as ONE product of
      [Wx; Wh]^T (G H, 2H) with the stacked vector [h_{l-1}; h_l]. All layers' h live one after
      another in one (L H, N) buffer, so that stacked vector is a slice of it and the cell
      writes its new h in place, after its product has read the old one;
    * the GRU keeps Wx and Wh apart, since its n gate needs h Wh_n + bh_n on its own;
    * sigmoid gates are computed as sigmoid(x) = (1 + tanh(x / 2)) / 2, with the halving folded
      into the copied weights and biases (exact: a power of two), so one np.tanh call covers
      all of a cell's gates; the training cells' exp-based form is faster per element, but
      takes more calls.
    The numbers are `step`'s up to float rounding. The weights are copies: build a new Stepper
    after changing `model.params`.
    """

    def __init__(self, model, N=1):
        cfg, p, dt = model.config, model.params, model.dtype
        H, G, L = cfg.hidden_size, GATES[cfg.cell], cfg.num_layers
        self.model, self.N, self.cell, self.H = model, N, cfg.cell, H
        col = (N,) if N > 1 else ()  # trailing stream axis of every buffer
        scale = np.ones(G * H, dtype=dt)
        scale[: SIGMOID_GATES[cfg.cell] * H] = 0.5  # rows whose gate is a sigmoid

        def bias(b):  # (G H,) -> halved, shaped to add to a (G H,) + col buffer
            return (b * scale).reshape((G * H,) + (1,) * len(col))

        bias0 = p["layers.0.bx"] if cfg.cell == "gru" else p["layers.0.b"]
        self._E = np.ascontiguousarray((p["layers.0.Wx"] + bias0) * scale)  # (V, G H)
        self._ET = np.ascontiguousarray(self._E.T)  # (G H, V): gathers N columns at once
        self._hs = np.zeros((L * H,) + col, dtype=dt)  # h of every layer, stacked
        self._cs = np.zeros((L, H) + col, dtype=dt)  # LSTM cells
        self._xp = np.empty((G * H,) + col, dtype=dt)  # projected input
        self._a = np.empty((G * H,) + col, dtype=dt)  # gate pre-activations, then activations
        self._tc = np.empty((H,) + col, dtype=dt)  # LSTM tanh(c)
        self._hpn = np.empty((H,) + col, dtype=dt)  # GRU h Wh_n + bh_n
        self._logits = np.empty((cfg.vocab_size,) + col, dtype=dt)
        self._halves = np.full(scale.shape + col, 0.5, dtype=dt)  # an array: a scalar costs more
        # per layer: the recurrent product's C-contiguous (G H, K) matrix, the input bias, and
        # for the GRU bh and Wx^T
        self._W, self._b, self._bh, self._WxT = [], [], [], []
        for layer in range(L):
            pre = f"layers.{layer}."
            Wh = p[pre + "Wh"]
            if layer > 0 and cfg.cell != "gru":
                Wh = np.concatenate([p[pre + "Wx"], Wh])  # (2H, G H) acting on [x; h]
            self._W.append(np.ascontiguousarray((Wh * scale).T))
            if cfg.cell == "gru":
                self._b.append(bias(p[pre + "bx"]))
                self._bh.append(bias(p[pre + "bh"]))
                self._WxT.append(np.ascontiguousarray((p[pre + "Wx"] * scale).T))
            else:
                self._b.append(bias(p[pre + "b"]))
        self._headW = np.ascontiguousarray(p["head.W"].T)  # (V, H)
        self._headb = p["head.b"].reshape((-1,) + (1,) * len(col))
        # views of the stacked h, made once: h_l, what layer l's product reads, the head's input
        hs = self._hs
        self._h = [hs[layer * H : (layer + 1) * H] for layer in range(L)]
        if cfg.cell == "gru":  # W reads h_l alone; WxT reads h_{l-1}
            self._z, self._zx = self._h, [None] + self._h[:-1]
        else:  # layer 0 reads h_0, layer l >= 1 the stacked [h_{l-1}; h_l]
            self._z = [hs[max(layer - 1, 0) * H : (layer + 1) * H] for layer in range(L)]
        self._cell = getattr(self, "_" + cfg.cell)

    @property
    def state(self):
        """The current state, as `init_state(N)` lays it out (copies)."""
        H, shape = self.H, (self.H, self.N)
        hs = [self._hs[layer * H : (layer + 1) * H].reshape(shape) for layer in range(len(self._W))]
        if self.cell == "lstm":
            return tuple((h.copy(), c.reshape(shape).copy()) for h, c in zip(hs, self._cs))
        return tuple((h.copy(),) for h in hs)

    def _sigmoid_from_tanh(self, x):
        """x (k H,) + col, holding tanh(y / 2) -> sigmoid(y) = (1 + tanh(y / 2)) / 2, in place."""
        half = self._halves[: len(x)]
        np.multiply(x, half, x)
        np.add(x, half, x)

    def step(self, ids):
        """Feed ids (N,) and return the logits (N, V) for the next character (a reused view)."""
        if self.N == 1:
            x = self._E[int(ids[0])]  # a view of one row: no copy
        else:
            x = np.take(self._ET, ids, axis=1, out=self._xp, mode="clip")
        for layer, h in enumerate(self._h):
            self._cell(layer, x, h)
            x = None
        np.matmul(self._headW, self._h[-1], self._logits)
        np.add(self._logits, self._headb, self._logits)
        return self._logits.T if self.N > 1 else self._logits[None]

    def _lstm(self, layer, x, h):
        """Layer `layer` reads x (layer 0's projected input; None above) and h, writes h."""
        H, a, c, tc = self.H, self._a, self._cs[layer], self._tc
        np.matmul(self._W[layer], self._z[layer], a)  # above layer 0: [Wx; Wh]^T [h_{l-1}; h_l]
        np.add(a, self._b[layer] if x is None else x, a)
        np.tanh(a, a)
        self._sigmoid_from_tanh(a[: 3 * H])
        i, f, o, g = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
        np.multiply(f, c, c)  # c = f c + i g
        np.multiply(i, g, tc)
        np.add(c, tc, c)
        np.tanh(c, tc)
        np.multiply(o, tc, h)  # h = o tanh(c)

    def _rnn(self, layer, x, h):
        a = self._a
        np.matmul(self._W[layer], self._z[layer], a)
        np.add(a, self._b[layer] if x is None else x, a)
        np.tanh(a, h)

    def _gru(self, layer, x, h):
        H, a, hpn = self.H, self._a, self._hpn
        if layer > 0:
            x = np.matmul(self._WxT[layer], self._zx[layer], self._xp)
            np.add(x, self._b[layer], x)
        np.matmul(self._W[layer], h, a)
        np.add(a, self._bh[layer], a)
        hpn[...] = a[2 * H :]  # h Wh_n + bh_n
        rz, n = a[: 2 * H], a[2 * H :]
        np.add(rz, x[: 2 * H], rz)
        np.tanh(rz, rz)
        self._sigmoid_from_tanh(rz)
        np.multiply(a[:H], hpn, n)  # n = tanh(x_n + r (h Wh_n + bh_n))
        np.add(n, x[2 * H :], n)
        np.tanh(n, n)
        np.subtract(h, n, h)  # h = n + z (h_prev - n)
        np.multiply(h, a[H : 2 * H], h)
        np.add(h, n, h)
