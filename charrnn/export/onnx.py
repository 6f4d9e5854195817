"""The one-step ONNX graph of a model (`charrnn export --format onnx`), built node by node.

    inputs   ids         int64    [N]           the character each of N streams reads
             state       float32  [L, S, N, H]  per layer, the cell's S state arrays (h first;
                                                S = 2 for the LSTM: h, c; 1 for GRU and RNN)
    outputs  logits      float32  [N, V]        of each stream's next character
             next_state  float32  [L, S, N, H]  the state after reading `ids`

One call is one `Stepper.step`: layer 0's input projection is a row lookup (Gather) of
E = Wx + b, layers above project the h below (MatMul, Add), each cell's nodes are written out
in its builder below (the cell's equations, in its gate order), and the head is h W + b.
Start from zeros for a fresh stream; softmax(logits) are the probabilities. N is free.

The graph's metadata (`metadata_props`): charrnn.vocab (a JSON list of the characters in id
order), charrnn.config (the model config), charrnn.states (the state arrays' names),
charrnn.context (the training text `charrnn sample` reads before the prime, to feed first),
charrnn.start (the id read when there is neither context nor prime), charrnn.banned (the id
of U+FFFD, which sampling never picks, or null), charrnn.best_val_loss, charrnn.version and
charrnn.opset. Weights are float32 whatever the checkpoint's dtype. The `onnx` package is
needed only here, to build the graph.
"""

import json

import numpy as np

from charrnn._version import __version__
from charrnn.export.registry import ExportError
from charrnn.sampling import prime_ids

OPSET = 17  # ONNX operator set: Split takes its sizes as an input, as from opset 13
IR_VERSION = 8  # the file format of opset 17, which onnxruntime reads from 1.11 on


def require():
    try:
        import onnx
    except ImportError:
        raise ExportError("--format onnx needs the onnx package: pip install onnx") from None
    return onnx


class _Graph:
    """Nodes and initializers of a graph under construction; `op` returns the output names."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.weights, self._n = onnx, [], [], 0
        self._consts = set()

    def const(self, name, value, dtype=np.float32):
        self._consts.add(name)
        self.weights.append(self.onnx.numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, kind, *inputs, outputs=1, out=None, **attrs):
        self._n += 1
        names = [out] if out else [f"{kind.lower()}_{self._n}_{k}" for k in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(kind, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    def split(self, x, H, blocks):
        """x [N, blocks H] -> `blocks` arrays [N, H], in column order."""
        name = f"split_{blocks}x{H}"
        if name not in self._consts:
            self.const(name, [H] * blocks, np.int64)
        return self.op("Split", x, name, outputs=blocks, axis=1)


# ---------------------------------------------------------------------------------------------
# One layer per cell of the table: (graph, xp [N, G H] = x Wx + b, state arrays [N, H] each,
# the layer's parameter names by short name, H) -> the new state arrays, h first.

def lstm_layer(g, xp, state, p, H):
    """[i f o g] = x Wx + h Wh + b; i, f, o = sigmoid, g = tanh; c = f c + i g; h = o tanh(c)."""
    h, c = state
    i, f, o, gg = g.split(g.op("Add", xp, g.op("MatMul", h, p["Wh"])), H, 4)
    i, f, o, gg = g.op("Sigmoid", i), g.op("Sigmoid", f), g.op("Sigmoid", o), g.op("Tanh", gg)
    c = g.op("Add", g.op("Mul", f, c), g.op("Mul", i, gg))
    return g.op("Mul", o, g.op("Tanh", c)), c


def gru_layer(g, xp, state, p, H):
    """XP = x Wx + bx, HP = h Wh + bh; r = sigmoid(XP_r + HP_r), z = sigmoid(XP_z + HP_z),
    n = tanh(XP_n + r HP_n); h = n + z (h - n)."""
    (h,) = state
    xr, xz, xn = g.split(xp, H, 3)
    hr, hz, hn = g.split(g.op("Add", g.op("MatMul", h, p["Wh"]), p["bh"]), H, 3)
    r, z = g.op("Sigmoid", g.op("Add", xr, hr)), g.op("Sigmoid", g.op("Add", xz, hz))
    n = g.op("Tanh", g.op("Add", xn, g.op("Mul", r, hn)))
    return (g.op("Add", n, g.op("Mul", z, g.op("Sub", h, n))),)


def rnn_layer(g, xp, state, p, H):
    """h = tanh(x Wx + h Wh + b)."""
    (h,) = state
    return (g.op("Tanh", g.op("Add", xp, g.op("MatMul", h, p["Wh"]))),)


LAYERS = {"lstm": lstm_layer, "gru": gru_layer, "rnn": rnn_layer}


def metadata(ckpt):
    """The graph's metadata_props (see the module docstring), str -> str."""
    vocab, training = ckpt.vocab, ckpt.training
    return {
        "charrnn.vocab": json.dumps(list(vocab.chars), ensure_ascii=False),
        "charrnn.config": json.dumps(ckpt.config.to_json()),
        "charrnn.states": json.dumps(list(ckpt.model.cell.states)),
        "charrnn.context": training.sample_context if training else "",
        "charrnn.start": str(int(prime_ids(vocab, "")[0])),
        "charrnn.banned": json.dumps(vocab.replacement if vocab.size > 1 else None),
        "charrnn.best_val_loss": json.dumps(training.best_val_loss if training else None),
        "charrnn.version": __version__,
        "charrnn.opset": str(OPSET),
    }


def build(ckpt):
    """The checked `onnx.ModelProto` of checkpoint `ckpt` (see the module docstring)."""
    onnx = require()
    model, cfg = ckpt.model, ckpt.config
    cell, H, V, L = model.cell, cfg.hidden_size, cfg.vocab_size, cfg.num_layers
    layer_fn = LAYERS[cell.name]
    g = _Graph(onnx)
    params = model.params
    first = cell.biases[0]
    below, stacked = None, []
    axes = g.const("axis0", [0], np.int64)
    for layer in range(L):
        pre = f"layers.{layer}."
        names = {b: g.const(pre + b, params[pre + b]) for b in cell.biases[1:]}
        names["Wh"] = g.const(pre + "Wh", params[pre + "Wh"])
        if layer == 0:  # one-hot input: a row of E = Wx + b
            E = g.const("layers.0.E", params[pre + "Wx"] + params[pre + first])
            xp = g.op("Gather", E, "ids", axis=0)
        else:
            xp = g.op("Add", g.op("MatMul", below, g.const(pre + "Wx", params[pre + "Wx"])),
                      g.const(pre + first, params[pre + first]))
        arrays = g.op("Gather", "state", g.const(f"index_{layer}", layer, np.int64), axis=0)
        state = [g.op("Gather", arrays, g.const(f"state_{layer}_{s}", s, np.int64), axis=0)
                 for s in range(len(cell.states))]
        new = layer_fn(g, xp, state, names, H)
        stacked.append(g.op("Concat", *[g.op("Unsqueeze", a, axes) for a in new], axis=0))
        below = new[0]
    g.op("Concat", *[g.op("Unsqueeze", s, axes) for s in stacked], axis=0, out="next_state")
    g.op("Add", g.op("MatMul", below, g.const("head.W", params["head.W"])),
         g.const("head.b", params["head.b"]), out="logits")
    helper, f32 = onnx.helper, onnx.TensorProto.FLOAT
    state_shape = [L, len(cell.states), "N", H]
    graph = helper.make_graph(
        g.nodes, f"charrnn_{cell.name}_{L}x{H}",
        [helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("state", f32, state_shape)],
        [helper.make_tensor_value_info("logits", f32, ["N", V]),
         helper.make_tensor_value_info("next_state", f32, state_shape)],
        initializer=g.weights)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="charrnn", producer_version=__version__,
                              ir_version=IR_VERSION,
                              doc_string=f"charrnn {cell.name} {L}x{H}: one step of N streams")
    helper.set_model_props(proto, metadata(ckpt))
    onnx.checker.check_model(proto, full_check=True)
    return proto
