"""Engines: what the training loop asks of the code that does the arithmetic, and the engines.

Here: `numpy` (the default, always there: `numpy.py` with `parallel.py` and `workers.py`, the
batch split across the cores) and `torch` (optional: `torch.py`, `torch_optim.py`, `layout.py`
mapping the two parameter layouts, `distributed.py` for torchrun), and `auto.py`, which picks
one (--engine auto, the default) and guards PyTorch's import. This module imports neither
numpy nor PyTorch: `make_engine` and `prepare` import the engine asked for.

The trainer (`train.py`) owns the run: its directory, log, evaluation schedule, checkpoints,
divergence rollback, signals and progress. It asks an engine for six things, and nothing
else, so that another engine slots in beside the numpy one:

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
`--engine torch` without PyTorch (or with one that fails to import), or a device that is not
there, is a one-line error.
"""

from charrnn.errors import CharRNNError

ENGINES = ("auto", "numpy", "torch")  # the --engine choices; auto the default (`auto`),
# numpy always there
DEVICES = "auto|cpu|cuda|cuda:N|mps"  # the --device forms (`engines.torch.resolve_device`)


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
            from charrnn.engines import auto

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
    from charrnn.engines import auto, distributed

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
    torch_engine = auto.load_torch()
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
        from charrnn.engines.numpy import NumpyEngine

        return NumpyEngine(model, cfg)
    if name == "torch":
        from charrnn.engines import auto

        return auto.load_torch().TorchEngine(model, cfg, device, group)
    raise CharRNNError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}.")
