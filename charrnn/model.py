"""The deep character-level recurrent network: parameters, loss and gradients of one chunk of
streams, on one thread.

A `CharRNN` is `num_layers` stacked cells of one kind (a row of the cell table,
`charrnn.cells`) over one-hot characters, with inverted dropout between layers and before the
softmax head. Layer 0's input projection is a row lookup of its Wx by character id. Hidden
state is kept feature-major, (H, N) per array, the layout of `layers.py`. Splitting a batch
across cores is `engines/parallel.py`'s job; stepping one character at a time is
`stepper.py`'s.
"""

from dataclasses import replace

import numpy as np

from charrnn import layers
from charrnn.config import ModelConfig  # noqa: F401  (re-exported: the model's config)


def param_shapes(config):
    """Name -> shape of every parameter, in a fixed order.

    layers.{l}.Wx (D, G H), layers.{l}.Wh (H, G H) and the cell's biases (G H,) each, where
    D = vocab_size for layer 0 and H above it; head.W (H, V), head.b (V,).
    """
    H, V, cell = config.hidden_size, config.vocab_size, config.cell_spec
    shapes = {}
    for layer in range(config.num_layers):
        for name, shape in cell.layer_shapes(V if layer == 0 else H, H).items():
            shapes[f"layers.{layer}.{name}"] = shape
    shapes["head.W"] = (H, V)
    shapes["head.b"] = (V,)
    return shapes


def init_params(config, rng, dtype=np.float32):
    """Initial parameters that train well.

    Layer 0's Wx is a lookup table (its input is one-hot), so its rows are initialised like an
    embedding, ~ N(0, 1): with PyTorch's U(-1/sqrt(H), 1/sqrt(H)) the input barely moves the
    gates and training sits at the unigram loss for 100+ steps (for torch's nn.LSTM too).
    Other Wx and head.W ~ U(-1/sqrt(H), 1/sqrt(H)); each gate block of Wh is a random
    orthogonal matrix, which keeps the recurrent signal from exploding or vanishing early;
    biases 0, except the gate blocks of the first bias that the cell's row sets (the LSTM's
    forget gate starts at 1, so that cells remember by default).
    """
    H, cell = config.hidden_size, config.cell_spec
    bound = 1.0 / np.sqrt(H)
    first_bias = {f"layers.{layer}.{cell.biases[0]}" for layer in range(config.num_layers)}
    params = {}
    for name, shape in param_shapes(config).items():
        if name == "layers.0.Wx":
            value = rng.standard_normal(shape)
        elif name.endswith("Wh"):
            blocks = [np.linalg.qr(rng.standard_normal((H, H)))[0] for _ in range(cell.G)]
            value = np.concatenate(blocks, axis=1)
        elif name.endswith(("Wx", "W")):
            value = rng.uniform(-bound, bound, shape)
        else:
            value = np.zeros(shape)
            if name in first_bias:
                for gate, init in cell.gate_bias:
                    k = cell.gates.index(gate)
                    value[k * H : (k + 1) * H] = init
        params[name] = np.ascontiguousarray(value, dtype=dtype)
    return params


def grow_vocabulary(model, vocab_size, rng):
    """A copy of `model` for a vocabulary grown to `vocab_size` by characters appended after
    its own (`Vocab.extended`).

    Every parameter keeps its values; the new rows of layer 0's Wx (the new characters' input
    lookups) and the new columns of head.W and entries of head.b (their logits) are what
    `init_params` gives a fresh model of the new size (rows ~ N(0, 1), columns
    U(-1/sqrt(H), 1/sqrt(H)), biases 0). So, reading old characters, the grown model gives the
    old characters the logits the old model gave them (up to float rounding): among the old
    characters its predictions are the old ones, while the new characters take some
    probability of their own until training teaches it their place.
    """
    config = replace(model.config, vocab_size=vocab_size)
    params = init_params(config, rng, model.dtype)
    for name, old in model.params.items():
        params[name][tuple(slice(0, n) for n in old.shape)] = old
    return CharRNN(config, params=params, dtype=model.dtype)


class CharRNN:
    """A stack of recurrent layers and a softmax head over characters.

    `params` maps names (see `param_shapes`) to arrays; gradients come back as a dict with the
    same keys. A state is a tuple with one entry per layer, each a tuple of the cell's state
    arrays (h, or h and c for the LSTM), each (H, N): feature-major, N streams.
    """

    def __init__(self, config, params=None, seed=0, dtype=np.float32):
        self.config = config
        self.cell = config.cell_spec
        self.dtype = np.dtype(dtype)
        if params is None:
            params = init_params(config, np.random.default_rng(seed), self.dtype)
        self.params = params
        self._ws = {}  # (batch shape, key) -> per-layer layers.Workspace

    @property
    def num_params(self):
        return sum(p.size for p in self.params.values())

    def init_state(self, N):
        """Zero state for N streams."""
        H = self.config.hidden_size
        return tuple(tuple(np.zeros((H, N), dtype=self.dtype) for _ in self.cell.states)
                     for _ in range(self.config.num_layers))

    def layer_params(self, layer):
        """Layer `layer`'s parameters by their short names (Wx, Wh, the cell's biases)."""
        pre = f"layers.{layer}."
        return {name: self.params[pre + name] for name in self.cell.layer_shapes(1, 1)}

    # ------------------------------------------------------------------------------------------
    # Whole sequences (training and evaluation).

    def loss(self, x_ids, y_ids, state, denom=None, key=0):
        """Mean cross-entropy in nats/char of predicting y_ids (N, T) from x_ids (N, T), no
        dropout. Returns (loss, next_state), so that evaluation can carry the state across
        batches. `denom` and `key` as in `loss_and_grads`."""
        ws = self._workspaces(x_ids.shape, ("eval", key))
        with np.errstate(over="ignore"):
            loss, _, next_state = self._forward(x_ids, y_ids, state, None, ws, denom)
        return loss, next_state

    def loss_and_grads(self, x_ids, y_ids, state, rng=None, denom=None, key=0):
        """Loss, gradients of every parameter, and the carried state for truncated BPTT.

        x_ids, y_ids (N, T) integer ids; state from `init_state(N)` or a previous call.
        Dropout (inverted, masks drawn from rng) only when rng is given. The loss is the sum
        over positions divided by `denom` (default N T, the mean): a batch split into chunks
        passes the whole batch's count, so that the chunks' losses and gradients add up.
        `key` names the reused buffers (one set per concurrent caller).
        Returns (loss in nats/char, grads dict like params, next_state).
        """
        ws = self._workspaces(x_ids.shape, ("train", key))
        masks = self._dropout_masks(*x_ids.shape, rng)
        with np.errstate(over="ignore"):
            loss, caches, next_state = self._forward(x_ids, y_ids, state, masks, ws, denom)
        return loss, self._backward(x_ids, caches), next_state

    def _workspaces(self, shape, key):
        """Per-layer buffers for batches of this shape (training and evaluation differ)."""
        if (shape, key) not in self._ws:
            self._ws[shape, key] = [layers.Workspace() for _ in range(self.config.num_layers)]
        return self._ws[shape, key]

    def _dropout_masks(self, N, T, rng):
        """One inverted-dropout mask (H, T, N) per layer output, or None without dropout."""
        cfg = self.config
        if rng is None or cfg.dropout == 0.0:
            return None
        return [layers.dropout_mask((cfg.hidden_size, T, N), cfg.dropout, rng, self.dtype)
                for _ in range(cfg.num_layers)]

    def forward_layers(self, x_ids, state, key=0):
        """The recurrent layers over ids (N, T), without dropout and without the head: what
        `charrnn.explain` looks inside. Returns the top layer's outputs (H, T, N), one
        (input, cell cache) pair per layer (the cache is what the cell's `internals` and
        `backward` read; the input is None for layer 0) and the next state (copies). The
        arrays live in reused buffers named by `key`: valid until the next call with that key.
        """
        ws = self._workspaces(x_ids.shape, ("layers", key))
        out, caches, next_state = self._layers(x_ids, state, None, ws)
        return out, [(inp, cache) for inp, cache, _ in caches], next_state

    def _forward(self, x_ids, y_ids, state, masks, ws, denom=None):
        """Forward pass over ids (N, T) with the given dropout masks (or None).

        Returns the loss (summed over positions / denom), the caches for `_backward` and the
        next state (copies).
        """
        inp, caches, next_state = self._layers(x_ids, state, masks, ws)
        p = self.params
        loss, head_cache = layers.softmax_cross_entropy(inp, p["head.W"], p["head.b"], y_ids, denom)
        return loss, (caches, head_cache), next_state

    def _layers(self, x_ids, state, masks, ws):
        """The layers of `_forward`: the top layer's output (after its dropout mask), the
        per-layer caches (input, cell cache, mask) and the next state."""
        cell, inp, caches, next_state = self.cell, None, [], []
        for layer in range(self.config.num_layers):
            p, lws = self.layer_params(layer), ws[layer]
            bias = p[cell.biases[0]]
            if layer == 0:
                XP = layers.embed(x_ids, p["Wx"], bias, lws)
            else:
                XP = layers.project(inp, p["Wx"], bias, lws)
            Hs, last, cache = cell.forward(XP, state[layer], p, lws)
            next_state.append(last)
            mask = None if masks is None else masks[layer]
            out = Hs
            if mask is not None:
                out = np.multiply(Hs, mask, out=lws.get("dropped", Hs.shape, self.dtype))
            caches.append((inp, cache, mask))
            inp = out
        return inp, caches, tuple(next_state)

    def _backward(self, x_ids, caches):
        """Gradients of every parameter from the caches of `_forward`."""
        cell = self.cell
        layer_caches, head_cache = caches
        grads = {}
        dX, grads["head.W"], grads["head.b"] = layers.softmax_cross_entropy_backward(head_cache)
        for layer in range(self.config.num_layers - 1, -1, -1):
            pre = f"layers.{layer}."
            inp, cache, mask = layer_caches[layer]
            if mask is not None:
                dX *= mask
            layout = "rows" if layer == 0 else "features"  # layer 0 feeds a segment sum
            dXP, _, cell_grads = cell.backward(dX, None, cache, layout=layout)
            grads.update((pre + name, g) for name, g in cell_grads.items())
            bias = pre + cell.biases[0]
            if layer == 0:
                grads[pre + "Wx"], grads[bias] = layers.embed_backward(
                    dXP, x_ids, self.config.vocab_size)
            else:
                dX, grads[pre + "Wx"], grads[bias] = layers.project_backward(
                    dXP, inp, self.params[pre + "Wx"])
        return grads
