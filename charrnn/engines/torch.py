"""The PyTorch engine: the numpy engine's model, loss and optimizers on a torch device.

The same network as `charrnn.model` (see its docstrings for the equations): per layer,
torch's fused recurrent kernels (`torch.lstm`, `torch.gru`, `torch.rnn_tanh`: cuDNN on CUDA)
over time-major input (T, N, D), layer 0 fed one-hot characters (the product with one-hot
rows is the numpy engine's row lookup, exactly); inverted dropout on every layer's output;
the head logits = out head.W + head.b (T, N, V); the loss the sum of the cross-entropies over
positions divided by N T. Then global-norm clipping (norm accumulated in float64) and
optim.py's update rules (`torch_optim`). Parameters and optimizer state stay on the device in
torch's layout (`layout`) and come back to numpy only in `export`, for a checkpoint.

Dropout masks are drawn exactly as the numpy engine draws them with one thread (one child
generator per step from the run's dropout generator, `layers.dropout_mask`, on the CPU),
then copied to the device: the same run trains the same on either engine and the generator's
state in a checkpoint means the same thing to both. The price is one host-to-device copy of
the (L, T, N, H) masks per step when --dropout > 0.

A step is a fixed, small number of tensor operations whatever the number of parameters:
`torch_optim` keeps parameters, gradients and optimizer state in flat buffers, the clipping
norm is one float64 reduction over the flat gradients, the finiteness check one pass over the
parameters and state. PyTorch failing to allocate memory is raised as MemoryError, which the
trainer and the CLI turn into one line as they do the numpy engine's.

Data parallel (`distributed.Group`): each rank runs its slice of the streams; the losses and
gradients, scaled by the global N T, are summed over ranks before clipping, so every rank
makes the same update as one process over all streams.
"""

import functools
import math
import re

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.engines import layout
from charrnn.engines.base import EngineBase
from charrnn.engines.torch_optim import TorchOptimizer
from charrnn.errors import CharRNNError

KERNELS = {"lstm": torch.lstm, "gru": torch.gru, "rnn": torch.rnn_tanh}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(spec, local_rank=None):
    """A torch.device for --device `spec` (auto|cpu|cuda|cuda:N|mps); CharRNNError if it is not
    here. auto: CUDA if torch sees a GPU, else MPS, else the CPU. Under torchrun (`local_rank`
    given), cuda means cuda:LOCAL_RANK."""
    spec = str(spec).strip().lower()
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if spec == "auto":
        spec = "cuda" if cuda else "mps" if mps else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if match:
        if not cuda:
            raise CharRNNError(f"--device {spec}: this PyTorch ({torch.__version__}) sees no CUDA "
                               "GPU; use --device cpu (or auto).")
        index = int(match.group(1)) if match.group(1) else (local_rank or 0)
        if index >= torch.cuda.device_count():
            raise CharRNNError(f"--device {spec}: there is no CUDA device {index} (this machine "
                               f"has {torch.cuda.device_count()}).")
        return torch.device("cuda", index)
    if spec == "mps":
        if not mps:
            raise CharRNNError("--device mps: this PyTorch sees no Apple GPU (MPS); use --device "
                               "cpu (or auto).")
        return torch.device("mps")
    raise CharRNNError(f"unknown device {spec!r}; choose auto, cpu, cuda, cuda:N or mps.")


def _memory_errors(method):
    """`method`, with PyTorch's failure to allocate (a RuntimeError on the CPU, OutOfMemoryError
    on a GPU) raised as MemoryError, as numpy raises it."""
    @functools.wraps(method)
    def guarded(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except RuntimeError as exc:
            text = str(exc)
            if isinstance(exc, getattr(torch, "OutOfMemoryError", ())) or \
                    "can't allocate memory" in text or "out of memory" in text.lower():
                raise MemoryError(f"PyTorch could not allocate memory: {text.splitlines()[0]}") \
                    from None
            raise
    return guarded


class TorchEngine(EngineBase):
    """The engine interface of `charrnn.engines` on PyTorch; `group` a `distributed.Group` when
    trained data-parallel under torchrun."""

    name = "torch"

    @_memory_errors
    def __init__(self, model, cfg, device="auto", group=None):
        try:
            layout.check_cell(model.config.cell)
        except ValueError as exc:
            raise CharRNNError(str(exc)) from None
        if group is not None:
            group.check_batch(cfg.batch_size)
        self.model = model  # the numpy model: its config, dtype, and the arrays export fills
        self.group = group
        dev = device if isinstance(device, torch.device) else \
            resolve_device(device, group.local_rank if group else None)
        self.torch_device, self.device = dev, str(dev)
        if cfg.threads and dev.type == "cpu":
            torch.set_num_threads(cfg.threads)
        self.cell = model.config.cell
        self.H, self.V = model.config.hidden_size, model.config.vocab_size
        self.L = model.config.num_layers
        self.dtype = DTYPES[model.dtype.name]
        self.optimizer = TorchOptimizer(cfg.optimizer, layout.to_torch(self.cell, model.params,
                                        self.H), dev, self.dtype, weight_decay=cfg.weight_decay)
        self.params = self.optimizer.params
        self._zero_bias = torch.zeros(model.cell.G * self.H, device=dev, dtype=self.dtype)
        self._eye = torch.eye(self.V, device=dev, dtype=self.dtype)  # one-hot rows
        self.grad_clip = cfg.grad_clip
        self.batch_size = cfg.batch_size
        # the numpy engine's dropout generator, seeded the same way (see the module docstring)
        self.rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(2)[1])
        self._dropout = cfg.dropout if cfg.dropout > 0 else 0.0
        self.reset_state()

    # -- the model -----------------------------------------------------------------------------

    def _rows(self, N):
        return self.group.rows(N) if self.group else (0, N)

    def _weights(self, layer):
        p, pre = self.params, f"layers.{layer}."
        b_hh = p.get(pre + "b_hh", self._zero_bias)
        return [p[pre + "w_ih"], p[pre + "w_hh"], p[pre + "b_ih"], b_hh]

    def _zero_state(self, n):
        shape = (1, n, self.H)
        k = 2 if self.cell == "lstm" else 1
        return [[torch.zeros(shape, device=self.torch_device, dtype=self.dtype)
                 for _ in range(k)] for _ in range(self.L)]

    def _loss(self, x, y, state, masks, denom, train):
        """Sum of the cross-entropies of ids y (T, n) given x (T, n), divided by `denom`;
        returns (loss tensor, next state detached)."""
        inp = self._eye[x]  # (T, n, V) one-hot
        kernel, nxt = KERNELS[self.cell], []
        for layer in range(self.L):
            hx = tuple(state[layer]) if self.cell == "lstm" else state[layer][0]
            out, *last = kernel(inp, hx, self._weights(layer), True, 1, 0.0, train, False, False)
            nxt.append([a.detach() for a in last])
            inp = out if masks is None else out * masks[layer]  # (T, n, H)
        logits = F.linear(inp, self.params["head.W"].t(), self.params["head.b"])  # (T, n, V)
        loss = F.cross_entropy(logits.reshape(-1, self.V), y.reshape(-1), reduction="sum")
        return loss / denom, nxt

    def _masks(self, N, T, lo, hi):
        """This step's dropout masks (L, T, hi - lo, H), or None (see the module docstring)."""
        if not self._dropout:
            return None
        sub = np.random.default_rng(self.rng.integers(2**63, size=1)[0])
        masks = self.model._dropout_masks(N, T, sub)  # (H, T, N) each, as the numpy engine's
        stacked = np.stack([m[:, :, lo:hi] for m in masks]).transpose(0, 2, 3, 1)
        return torch.from_numpy(np.ascontiguousarray(stacked)).to(self.torch_device)

    def _ids(self, ids, lo, hi):
        return torch.from_numpy(np.ascontiguousarray(ids[lo:hi].T)).to(self.torch_device)

    # -- the engine interface ------------------------------------------------------------------

    @_memory_errors
    def step(self, x, y, lr):
        N, T = x.shape
        lo, hi = self._rows(N)
        masks = self._masks(N, T, lo, hi)
        grad = self.optimizer.grad  # (P,): every parameter's .grad is a view of it
        grad.zero_()
        loss, nxt = self._loss(self._ids(x, lo, hi), self._ids(y, lo, hi), self.state, masks,
                               N * T, True)
        loss.backward()
        loss = loss.detach()
        if self.group is not None:  # sum the ranks' shares: the mean over all N streams
            flat = torch.cat([loss.reshape(1), grad])
            self.group.all_reduce(flat)
            loss = flat[0]
            grad.copy_(flat[1:])
        norm = torch.linalg.vector_norm(grad, dtype=torch.float64)  # accumulated in float64
        loss, norm = (float(v) for v in torch.stack([loss.double(), norm]).cpu())
        if not math.isfinite(loss):
            return loss, norm, "loss"
        if not math.isfinite(norm):
            return loss, norm, "gradient norm"
        if self.grad_clip > 0 and norm > self.grad_clip:
            grad.mul_(self.grad_clip / norm)
        self.optimizer.step(lr)
        if not self.optimizer.finite():
            return loss, norm, "weights after the update"
        self.state = nxt
        return loss, norm, None

    def reset_state(self):
        lo, hi = self._rows(self.batch_size)
        self.state = self._zero_state(hi - lo)

    @_memory_errors
    @torch.no_grad()
    def evaluate(self, stream):
        N, T = stream.batch_size, stream.seq_length
        lo, hi = self._rows(N)
        state = self._zero_state(hi - lo)
        total = torch.zeros((), device=self.torch_device, dtype=torch.float64)
        if hi > lo:
            for k in range(stream.steps_per_epoch):
                x, y = stream.batch(k)
                loss, state = self._loss(self._ids(x, lo, hi), self._ids(y, lo, hi), state, None,
                                         N * T, False)
                total += loss.double()
        if self.group is not None:
            self.group.all_reduce(total)
        return float(total) / stream.steps_per_epoch

    @_memory_errors
    def snapshot(self):
        return self.optimizer.snapshot(), self.rng.bit_generator.state, self.state

    def restore(self, snap):
        optim, rng_state, self.state = snap
        self.optimizer.restore(optim)
        self.rng.bit_generator.state = rng_state

    @_memory_errors
    def export(self):
        """(numpy model, optimizer arrays, carried state) in the checkpoint layout. Under
        torchrun every rank must call it (the carried state is gathered from all ranks)."""
        for k, v in layout.from_torch(self.cell, _numpy(self.params), self.H).items():
            self.model.params[k][...] = v
        slots = {s: _numpy(per) for s, per in self.optimizer.state.items()}
        optim = layout.optim_from_torch(self.cell, slots, self.optimizer.t, self.H)
        state = self.state
        if self.group is not None:
            state = [[self.group.gather_rows(a, self.batch_size) for a in layer]
                     for layer in state]
        state = layout.state_from_torch([[a.cpu().numpy() for a in layer] for layer in state])
        return self.model, optim, state

    @_memory_errors
    @torch.no_grad()
    def load(self, optim, state):
        """Resume from a checkpoint's optimizer arrays and carried state (numpy layout),
        checked as the numpy engine checks them."""
        from charrnn.optim import make_optimizer

        check = make_optimizer(self.optimizer.name, self.model.params)
        try:
            check.load_state_arrays(optim)
        except ValueError as exc:
            raise CharRNNError(f"cannot resume: the optimizer state does not fit ({exc}).") from None
        slots, t = layout.optim_to_torch(self.cell, check.state_arrays(), self.H)
        for s, per in slots.items():
            for k, a in per.items():
                self.optimizer.state[s][k].copy_(torch.from_numpy(a))
        self.optimizer.t = t
        if state is not None and state[0][0].shape[1] == self.batch_size:
            lo, hi = self._rows(self.batch_size)
            self.state = [[torch.from_numpy(a[:, lo:hi]).to(self.torch_device, self.dtype)
                           for a in layer] for layer in layout.state_to_torch(state)]

    def shared(self, values):
        """Rank 0's `values` on every rank (the trainer's decisions), or `values` itself."""
        return values if self.group is None else self.group.shared(values)

    @property
    def writer(self):
        """Whether this process writes the run (rank 0, or the only process)."""
        return self.group is None or self.group.writer

    def close(self):
        pass


def _numpy(tensors):
    return {k: t.detach().cpu().numpy() for k, t in tensors.items()}
