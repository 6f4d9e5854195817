"""Test oracles: slow, plainly right versions of the fast paths, to test those against."""

import numpy as np

from charrnn import layers


def step(model, ids, state):
    """Advance N streams by one character each through the training forward (a sequence of
    length 1): ids (N,), state as `model.init_state(N)`. Returns the logits (N, V) for the next
    character and the new state; what `stepper.Stepper` must compute."""
    x = np.asarray(ids).reshape(-1, 1)
    ws = [layers.Workspace() for _ in range(model.config.num_layers)]
    _, _, state = model._forward(x, x, state, None, ws)
    p = model.params
    logits = np.matmul(p["head.W"].T, state[-1][0]) + p["head.b"][:, None]
    return logits.T, state
