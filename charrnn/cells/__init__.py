"""The cell table: every recurrent cell charrnn knows, each described once, in one row.

A row (`Cell`) says what the rest of the package needs to know about a cell: its gate blocks,
which of them are sigmoids, its state arrays, its bias vectors, and the module that holds its
functions. Everything that depends on the cell reads this table: the parameter shapes and
initialisation, `CharRNN`'s forward and backward passes, the worker processes' shared-memory
layout, the sampler, `explain`, and the command line's `--cell` choices. Nothing of the numpy
engine outside a cell's module branches on a cell's name. The optional PyTorch engine does, on
purpose: it runs each built-in cell with PyTorch's own kernel for it (`engines/torch.py`'s
KERNELS) and maps that kernel's gate order and biases to the table's (`engines/layout.py`), so
a cell added here trains on the numpy engine only, until it gets a torch form there.

This module imports no numpy (the command line lists the cells in `--help`); a cell's
functions are imported from `Cell.module` on first use.

Adding a cell
-------------
1. Write a module with four functions (see `charrnn.cells.rnn`, the shortest, as a model). All
   arrays are feature-major: a layer's state arrays are (H, N), a sequence is (F, T, N).

   forward(XP, state, p, ws) -> Hs, next_state, cache
       XP (G H, T, N): the projected input x Wx + b of every step (index it as XP[:, t]);
       state: a tuple of the cell's state arrays, h first; p: the layer's parameters by short
       name ("Wh", and any bias after the first); ws: a `layers.Workspace` for its buffers.
       Hs (H, T, N) the hidden states (may be a workspace view); next_state: copies.
   backward(dHs, dstate, cache, layout="features", record=None) -> dXP, dstate0, grads
       dHs (H, T, N) the gradient on every h_t; dstate: gradients on the final state arrays
       (a tuple like state, or None for zeros). Returns the gradient of XP through a
       `layers.GradOut` of that layout, the gradients on the initial state (a tuple), and a
       dict with the gradients of `p`'s entries. `record`, when given, maps state names to
       (T, H, N) arrays that receive the total gradient on that state at every step (what
       `explain --gradient-flow` draws).
   step(a, x, state, p, tmp, halves)
       One step of N streams for sampling, in place and allocation-free; see `Stepper` in
       `charrnn.stepper` for what a, x, p hold.
   internals(cache) -> {name: (T, H, N) array}
       The state arrays and gate activations of every step of the last forward, by name.
2. Add one `register(Cell(...))` row below, naming that module.
That is all: `charrnn train --cell NAME` trains it, and sampling, evaluation, checkpoints and
worker processes work with it. tests/test_cells.py registers a toy cell this way.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    """One recurrent cell. G = len(gates) blocks of H columns in Wx, Wh and each bias."""

    name: str  # the --cell choice, and the `cell` of a ModelConfig
    gates: tuple[str, ...]  # the gate blocks, in column order of Wx, Wh and the biases
    sigmoid_gates: int  # how many of the leading blocks are sigmoids (the others are tanh)
    states: tuple[str, ...]  # the state arrays of a layer, h first
    biases: tuple[str, ...]  # bias vectors (G H,); the first is added to the input projection
    fuse_input: bool  # the step's pre-activation is x Wx + h Wh + b (sampling fuses the two)
    module: str  # where forward, backward, step and internals live
    summary: str  # one phrase for --help
    gate_bias: tuple[tuple[str, float], ...] = ()  # initial value of the first bias, per gate

    @property
    def G(self):
        return len(self.gates)

    def layer_shapes(self, D, H):
        """Parameter shapes of one layer over D inputs: Wx (D, G H), Wh (H, G H), biases (G H,)."""
        G = self.G
        return {"Wx": (D, G * H), "Wh": (H, G * H), **{b: (G * H,) for b in self.biases}}

    def _impl(self, name):
        return getattr(importlib.import_module(self.module), name)

    @property
    def forward(self):
        return self._impl("forward")

    @property
    def backward(self):
        return self._impl("backward")

    @property
    def step(self):
        return self._impl("step")

    @property
    def internals(self):
        return self._impl("internals")


CELLS: dict[str, Cell] = {}


def register(cell: Cell) -> Cell:
    """Add `cell` to the table (replacing a row of the same name)."""
    CELLS[cell.name] = cell
    return cell


def get(name: str) -> Cell:
    """The row of cell `name`; ValueError naming the choices if there is none."""
    try:
        return CELLS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown cell {name!r}; choose one of {', '.join(CELLS)}") from None


register(Cell("lstm", gates=("i", "f", "o", "g"), sigmoid_gates=3, states=("h", "c"),
              biases=("b",), fuse_input=True, module="charrnn.cells.lstm",
              summary="long short-term memory (Hochreiter & Schmidhuber)",
              gate_bias=(("f", 1.0),)))
register(Cell("gru", gates=("r", "z", "n"), sigmoid_gates=2, states=("h",),
              biases=("bx", "bh"), fuse_input=False, module="charrnn.cells.gru",
              summary="gated recurrent unit (Cho et al.; cuDNN form)"))
register(Cell("rnn", gates=("a",), sigmoid_gates=0, states=("h",), biases=("b",),
              fuse_input=True, module="charrnn.cells.rnn", summary="vanilla tanh RNN (Elman)"))
