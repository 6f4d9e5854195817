"""Engines: what the training loop asks of the code that does the arithmetic.

The trainer (`train.py`) owns the run: its directory, log, evaluation schedule, checkpoints,
divergence rollback, signals and progress. It asks an engine for six things, and nothing
else, so that another engine (`charrnn.engines.torch`, optional) slots in beside this one:

    engine.step(x, y, lr) -> (loss, grad_norm, bad)
        One optimisation step on the batch x, y (N, T) ids: forward and backward from the
        carried state, global-norm gradient clipping, the optimizer's update, and the carried
        state moved on. `bad` is None, or what went non-finite ("loss", "gradient norm",
        "weights after the update"); then nothing was updated and the trainer rolls back.
    engine.reset_state()                the carried state back to zeros (a new epoch)
    engine.evaluate(stream) -> float    mean loss over a `data.BatchStream`, no dropout,
                                        state carried from batch to batch
    engine.snapshot() / restore(snap)   everything `step` changes, to roll back to
    engine.export() -> (model, optim, state)
        a numpy `CharRNN` with the current parameters, the optimizer's state arrays and the
        carried state, in the checkpoint layout (`checkpoint.Checkpoint`); engine-neutral, so
        any engine resumes what any engine saved
    engine.load(optim, state)           the inverse, for a resume (the parameters come with
                                        the model the engine was made with)
plus `rng_state` (the dropout generator's state, JSON-safe), `optimizer_info()` (name and
hyperparameters, for the record), `name`, `device` and `close()`; and, for data parallelism
under torchrun (`charrnn.engines.distributed`), `shared(values)` (rank 0's values on every
process: the trainer's stop decisions and learning rate) and `writer` (whether this process
writes the run). A single-process engine returns `values` as they are and is the writer.

`prepare(name, device)` checks the engine and the device before a run creates anything:
`--engine torch` without PyTorch, or a device that is not there, is a one-line error.
"""

import math

import numpy as np

from charrnn.engines import ENGINES, EngineBase
from charrnn.engines import auto
from charrnn.engines.auto import load_torch
from charrnn.errors import CharRNNError
from charrnn.optim import clip_grad_norm, make_optimizer
from charrnn.parallel import Parallel, default_threads


class Placement:
    """Where a session trains: the engine's name, the device (a torch.device for the torch
    engine, "cpu" for numpy) and the process group under torchrun (else None); for --engine
    auto, `choice` (an `auto.Choice`), and until the model's shape is known engine "auto"
    (see `settle`)."""

    def __init__(self, engine, device, group=None, choice=None):
        self.engine, self.device, self.group, self.choice = engine, device, group, choice

    def settle(self, cfg, vocab_size):
        """For engine "auto" on a CPU: measure both engines on the model and batch of `cfg`
        (`auto.choose`) and take the faster."""
        if self.engine == "auto":
            self.choice = auto.choose(cfg, vocab_size)
            self.engine, self.device = self.choice.engine, self.choice.device

    @property
    def writer(self):
        return self.group is None or self.group.writer

    def close(self):
        if self.group is not None:
            self.group.close()


def prepare(name, device="auto"):
    """Check engine `name` and `device` and, under torchrun, join the process group; a
    `Placement`. Raises CharRNNError (nothing created yet) for a missing PyTorch, a device
    that is not here, or an engine that cannot run there. "auto" (`engines.auto`) leaves a
    measurement for `Placement.settle`, once the model's shape is known."""
    from charrnn.engines import distributed

    if name not in ENGINES:
        raise CharRNNError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}.")
    env = distributed.environment()
    if name == "auto":  # the torch engine under torchrun; else what auto decides now, or later
        choice = auto.decide(device, distributed=env is not None)
        if choice is None:
            return Placement("auto", "cpu")
        placement = prepare(choice.engine, device)
        placement.choice = choice
        return placement
    if name == "numpy":
        _check_numpy_device(device)
        if env is not None:
            raise CharRNNError("the numpy engine trains in one process; under torchrun use "
                               "--engine torch.")
        return Placement("numpy", "cpu")
    torch_engine = load_torch()
    if env is None:
        return Placement("torch", torch_engine.resolve_device(device))
    rank, size, local_rank = env
    dev = torch_engine.resolve_device(device, local_rank)
    if dev.type == "mps":
        raise CharRNNError("data-parallel training runs on CUDA GPUs (nccl) or CPUs (gloo), "
                           "not on mps.")
    if dev.type == "cuda":
        import torch

        torch.cuda.set_device(dev)
    group = distributed.Group(rank, size, local_rank, "nccl" if dev.type == "cuda" else "gloo")
    return Placement("torch", dev, group)


def _check_numpy_device(device):
    if device not in ("auto", "cpu"):
        raise CharRNNError(f"the numpy engine runs on the CPU only, not on {device!r}; use "
                           "--engine torch for other devices.")


def make_engine(name, model, cfg, device="auto", group=None):
    """The engine `name` for `model` (a numpy CharRNN holding the starting parameters) and the
    training options `cfg`. The torch engine is imported only here, when asked for."""
    if name == "numpy":
        _check_numpy_device(device)
        return NumpyEngine(model, cfg)
    if name == "torch":
        return load_torch().TorchEngine(model, cfg, device, group)
    raise CharRNNError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}.")


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
