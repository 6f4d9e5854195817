"""The numpy engine: the hand-written `CharRNN` of `charrnn.model`, the optimizers of
`charrnn.optim`, each batch split across the cores by `engines.parallel`. What an engine must
do is written in `charrnn.engines`.
"""

import math

import numpy as np

from charrnn.engines.base import EngineBase
from charrnn.engines.parallel import Parallel, default_threads
from charrnn.errors import CharRNNError
from charrnn.optim import clip_grad_norm, make_optimizer


class NumpyEngine(EngineBase):
    """The default engine: the hand-written numpy `CharRNN`, the optimizers of `optim.py`, and
    each batch split across the cores by `parallel.Parallel`."""

    name = "numpy"
    device = "cpu"

    def __init__(self, model, cfg):
        self.model = model
        self.optimizer = make_optimizer(cfg.optimizer, model.params, weight_decay=cfg.weight_decay)
        threads = cfg.threads or default_threads(cfg.cell, cfg.hidden_size, cfg.batch_size)
        self.parallel = Parallel(model, threads)
        self.grad_clip = cfg.grad_clip
        self.batch_size = cfg.batch_size
        # dropout masks come from their own generator, seeded from the run's seed
        self.rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(2)[1])
        self._dropout_rng = self.rng if cfg.dropout > 0 else None
        self.state = model.init_state(cfg.batch_size)

    def step(self, x, y, lr):
        with np.errstate(over="ignore", invalid="ignore"):  # overflows are caught below
            loss, grads, next_state = self.parallel.loss_and_grads(x, y, self.state,
                                                                   rng=self._dropout_rng)
            norm = clip_grad_norm(grads, self.grad_clip)
            if not math.isfinite(loss):
                return loss, norm, "loss"
            if not math.isfinite(norm):
                return loss, norm, "gradient norm"
            self.optimizer.step(self.model.params, grads, lr)
            if not self._finite():
                return loss, norm, "weights after the update"
        self.state = next_state
        return loss, norm, None

    def _finite(self):
        """Whether the weights and the optimizer state hold only finite numbers: an update can
        overflow them even when the loss and the gradients were finite."""
        arrays = [*self.model.params.values()]
        arrays += [a for per_key in self.optimizer.state.values() for a in per_key.values()]
        return all(np.isfinite(a).all() for a in arrays)

    def reset_state(self):
        self.state = self.model.init_state(self.batch_size)

    def evaluate(self, stream):
        state, total = self.model.init_state(stream.batch_size), 0.0
        for k in range(stream.steps_per_epoch):
            x, y = stream.batch(k)
            loss, state = self.parallel.loss(x, y, state)
            total += loss
        return total / stream.steps_per_epoch

    def snapshot(self):
        return ({k: v.copy() for k, v in self.model.params.items()},
                self.optimizer.state_arrays(), self.rng.bit_generator.state, self.state)

    def restore(self, snap):
        params, optim, rng_state, self.state = snap
        for k, v in params.items():
            self.model.params[k][...] = v
        self.optimizer.load_state_arrays(optim)
        self.rng.bit_generator.state = rng_state

    def export(self):
        return self.model, self.optimizer.state_arrays(), self.state

    def load(self, optim, state):
        try:
            self.optimizer.load_state_arrays(optim)
        except ValueError as exc:
            raise CharRNNError(f"cannot resume: the optimizer state does not fit ({exc}).") from None
        if state is not None and state[0][0].shape[1] == self.batch_size:
            self.state = state

    writer = True  # one process: it writes the run

    def shared(self, values):
        return values

    def close(self):
        self.parallel.close()
