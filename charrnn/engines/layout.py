"""The one place that knows both parameter layouts: the checkpoint's (numpy) and PyTorch's.

numpy layout (`model.param_shapes`, the cell table), per layer l, gate blocks in the order of
`cell.gates`:
    layers.l.Wx (D, G H)    layers.l.Wh (H, G H)    the cell's biases (G H,) each
PyTorch layout (the weight list of `torch.lstm`, `torch.gru`, `torch.rnn_tanh`), per layer l,
gate blocks in the order of TORCH_GATES:
    layers.l.w_ih (G H, D)  layers.l.w_hh (G H, H)  layers.l.b_ih (G H,)  [layers.l.b_hh (G H,)]
The head, head.W (H, V) and head.b (V,), is the same in both.

Gate orders: LSTM numpy [i f o g], torch [i f g o]; GRU [r z n] in both; RNN one block.
Biases: torch adds b_ih to the input projection and b_hh to the recurrent one. The LSTM and
the RNN have one bias, b, inside the same sum as both, so b is b_ih and b_hh is a constant
zero that is not a parameter (two trainable copies would each get the full gradient, and the
optimizer would move their sum twice as far). The GRU's two biases differ in meaning, since
the n-gate's recurrent bias sits inside r * (h W_hn + b_hn): bx is b_ih and bh is b_hh.

The optimizer state of a parameter has its shape and is elementwise, so it maps the same way
(`optim_to_torch`, `optim_from_torch`). numpy only: testable without PyTorch.
"""

import numpy as np

from charrnn import cells

TORCH_GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "rnn": ("a",)}
# the numpy bias that is torch's b_ih, and the one that is b_hh (None: a constant zero)
TORCH_BIASES = {"lstm": ("b", None), "gru": ("bx", "bh"), "rnn": ("b", None)}


def check_cell(name):
    """ValueError unless the cell `name` has a PyTorch form here."""
    if name not in TORCH_GATES:
        raise ValueError(f"the torch engine has no form of the {name!r} cell; it trains "
                         f"{', '.join(TORCH_GATES)}; use --engine numpy.")


def gate_index(name, H):
    """Column indices idx (G H,) such that torch's gate rows are numpy's columns idx:
    w_ih = Wx[:, idx].T, and Wx[:, idx] = w_ih.T for the way back."""
    check_cell(name)
    numpy_gates = cells.get(name).gates
    blocks = [numpy_gates.index(g) for g in TORCH_GATES[name]]
    return np.concatenate([np.arange(k * H, (k + 1) * H) for k in blocks])


def _layers(arrays):
    return sorted({int(k.split(".")[1]) for k in arrays if k.startswith("layers.")})


def to_torch(name, arrays, H):
    """numpy-layout arrays (the parameters, or one optimizer slot with the same keys) ->
    torch-layout arrays (contiguous copies). No b_hh for the LSTM and the RNN."""
    idx = gate_index(name, H)
    bi, bh = TORCH_BIASES[name]
    out = {}
    for layer in _layers(arrays):
        pre = f"layers.{layer}."
        out[pre + "w_ih"] = np.ascontiguousarray(arrays[pre + "Wx"][:, idx].T)
        out[pre + "w_hh"] = np.ascontiguousarray(arrays[pre + "Wh"][:, idx].T)
        out[pre + "b_ih"] = np.ascontiguousarray(arrays[pre + bi][idx])
        if bh is not None:
            out[pre + "b_hh"] = np.ascontiguousarray(arrays[pre + bh][idx])
    out.update((k, np.array(arrays[k])) for k in ("head.W", "head.b"))
    return out


def from_torch(name, arrays, H):
    """Inverse of `to_torch`: torch-layout arrays -> numpy-layout arrays (new arrays)."""
    idx = gate_index(name, H)
    bi, bh = TORCH_BIASES[name]
    out = {}
    for layer in _layers(arrays):
        pre = f"layers.{layer}."
        w_ih, w_hh = arrays[pre + "w_ih"], arrays[pre + "w_hh"]
        out[pre + "Wx"] = np.empty((w_ih.shape[1], w_ih.shape[0]), w_ih.dtype)
        out[pre + "Wx"][:, idx] = w_ih.T
        out[pre + "Wh"] = np.empty((w_hh.shape[1], w_hh.shape[0]), w_hh.dtype)
        out[pre + "Wh"][:, idx] = w_hh.T
        for numpy_name, torch_name in ((bi, "b_ih"), (bh, "b_hh")):
            if numpy_name is not None:
                b = arrays[pre + torch_name]
                out[pre + numpy_name] = np.empty_like(b)
                out[pre + numpy_name][idx] = b
    out.update((k, np.array(arrays[k])) for k in ("head.W", "head.b"))
    return out


def optim_to_torch(name, flat, H):
    """Flat optimizer arrays of a checkpoint ({"<slot>.<param>": array, "t": 0-d}) ->
    ({slot: torch-layout arrays}, t)."""
    slots = {}
    for key, a in flat.items():
        if key != "t":
            slot, param = key.split(".", 1)
            slots.setdefault(slot, {})[param] = a
    return {s: to_torch(name, arrays, H) for s, arrays in slots.items()}, int(flat["t"])


def optim_from_torch(name, slots, t, H):
    """Inverse of `optim_to_torch`: the flat arrays `Optimizer.state_arrays` writes."""
    flat = {f"{s}.{k}": a for s, arrays in slots.items()
            for k, a in from_torch(name, arrays, H).items()}
    flat["t"] = np.array(t, dtype=np.int64)
    return flat


def state_to_torch(state):
    """A carried state (per layer, the cell's arrays (H, N)) -> per layer, arrays (1, N, H)."""
    return [[np.ascontiguousarray(a.T)[None] for a in layer] for layer in state]


def state_from_torch(state):
    """Inverse of `state_to_torch`: per layer, arrays (1, N, H) -> a tuple of (H, N) arrays."""
    return tuple(tuple(np.ascontiguousarray(a[0].T) for a in layer) for layer in state)
