"""Worker processes for a batch split across cores: `parallel.Parallel` runs chunk 0 itself and
chunks 1..k-1 here.

How (Linux, where os.memfd_create exists; elsewhere `AVAILABLE` is False and `Parallel` keeps
to threads):
* each worker is a Python started once, in isolated mode with the parent's module search
  path (so it imports the very charrnn and numpy its parent runs, never a file of the working
  directory), in its own session (a Ctrl-C at the terminal reaches only the trainer, which
  decides what to do), with stdin/stdout pipes to the parent. It exits when its stdin closes,
  so it never outlives its parent;
* a worker and its parent share one anonymous memory file (memfd): the parent writes the
  parameters, the chunk's ids and state there; the worker writes back gradients and the next
  state. Nothing is pickled: the pipes carry one line of JSON each way per chunk;
* the worker computes with `CharRNN.loss_and_grads` / `loss`, the code chunk 0 runs, so
  results are the same bits as with threads (tested). A cell that is not in the package's
  table is found by importing the module named in its row (`Cell.module`), which registers it.
"""

import functools
import importlib
import json
import mmap
import os
import signal
import subprocess
import sys

import numpy as np

from charrnn import cells
from charrnn.blas import single_threaded_blas
from charrnn.config import ModelConfig
from charrnn.model import CharRNN, param_shapes

AVAILABLE = hasattr(os, "memfd_create")
_ALIGN = 64
_IDS = np.dtype(np.int64)


class WorkerError(RuntimeError):
    """A worker process could not start, failed, or stopped; the model falls back to threads."""


def _state_keys(config):
    """Per layer, the (layer, j) of its state arrays: j = 0 for h, 1 for an LSTM's c."""
    per_layer = len(config.cell_spec.states)
    return [[(layer, j) for j in range(per_layer)] for layer in range(config.num_layers)]


def _state(views, prefix, config):
    """A state tuple, as `init_state` lays it out, of the views under `prefix`."""
    return tuple(tuple(views[(prefix,) + key] for key in layer) for layer in _state_keys(config))


@functools.lru_cache(maxsize=8)
def _layout(config, dtype, N, T, grads):
    """The arrays a chunk exchanges through shared memory, as ((key, shape, dtype, offset), ...),
    and the total size. Parameters, ids and the state go in; gradients and the next state come
    back. Both sides compute it from the request, so it is never sent. Cached: it cost 0.18 ms,
    on each side of every step."""
    params = param_shapes(config).items()
    state = [(key, (config.hidden_size, N)) for layer in _state_keys(config) for key in layer]
    entries = [(("param", name), shape, dtype) for name, shape in params]
    entries += [("x", (N, T), _IDS), ("y", (N, T), _IDS)]
    entries += [(("state",) + key, shape, dtype) for key, shape in state]
    if grads:
        entries += [(("grad", name), shape, dtype) for name, shape in params]
    entries += [(("next",) + key, shape, dtype) for key, shape in state]
    out, offset = [], 0
    for key, shape, dt in entries:
        out.append((key, shape, dt, offset))
        offset += -(-int(np.prod(shape)) * dt.itemsize // _ALIGN) * _ALIGN
    return tuple(out), max(offset, _ALIGN)


class _Shared:
    """A growable anonymous shared memory file and numpy views of its layout."""

    def __init__(self, fd):
        self.fd, self.size, self.map = fd, 0, None

    def views(self, layout, size, grow):
        if size > self.size:
            if grow:
                os.ftruncate(self.fd, size)
            # the old map is not closed: views of it may live on; it goes with the last one
            self.map, self.size = mmap.mmap(self.fd, size), size
        return {key: np.ndarray(shape, dt, self.map, offset) for key, shape, dt, offset in layout}


class Worker:
    """The parent's handle on one worker process."""

    def __init__(self):
        try:
            self._fd = os.memfd_create("charrnn-worker")
        except OSError as exc:
            raise WorkerError(f"cannot create shared memory for a worker process: {exc}") from None
        self._shared = _Shared(self._fd)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _LAUNCH, str(self._fd), *sys.path],
                pass_fds=(self._fd,), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                start_new_session=True)
        except OSError as exc:
            os.close(self._fd)
            raise WorkerError(f"cannot start a worker process: {exc}") from None
        self._pending = None  # (views, grads, config) of the request not yet answered

    @property
    def pid(self):
        return self._proc.pid

    def submit(self, model, x, y, state, seed, denom, grads):
        """Start one chunk: ids x, y (n, T); state as `init_state(n)`; seed for its dropout
        masks (None: no dropout); denom as in `CharRNN.loss_and_grads`."""
        self._drain()
        N, T = x.shape
        layout, size = _layout(model.config, model.dtype, N, T, grads)
        try:
            views = self._shared.views(layout, size, grow=True)
        except OSError as exc:
            raise WorkerError(f"cannot share memory with a worker process: {exc}") from None
        for name, value in model.params.items():
            views[("param", name)][...] = value
        views["x"][...] = x
        views["y"][...] = y
        for view, value in zip(_flat(_state(views, "state", model.config)), _flat(state)):
            view[...] = value
        request = {"config": model.config.to_json(), "cell_module": model.cell.module,
                   "dtype": model.dtype.str, "N": N, "T": T,
                   "grads": grads, "seed": None if seed is None else int(seed), "denom": denom}
        self._send(request)
        self._pending = (views, grads, model.config)  # until its reply has been read

    def result(self):
        """(loss, grads dict or None, next_state) of the submitted chunk. The arrays are views
        of shared memory, valid until the next `submit`."""
        views, grads, config = self._pending
        reply = self._receive()
        self._pending = None  # only now: an interruption above leaves the reply to `_drain`
        if "error" in reply:
            raise WorkerError(f"a worker process failed: {reply['error']}")
        g = {name: views[("grad", name)] for name in param_shapes(config)} if grads else None
        return reply["loss"], g, _state(views, "next", config)

    def close(self):
        """Stop the process (it exits on end of input) and free the shared memory."""
        try:
            self._proc.stdin.close()
            self._proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()
        self._shared.map = None  # unmapped with the last view of it
        os.close(self._fd)

    def _drain(self):
        """Read the answer to a request whose result was never asked for (an exception in the
        parent between submit and result), so that answers stay in step with requests."""
        if self._pending is not None:
            self._receive()
            self._pending = None

    def _send(self, message):
        try:
            self._proc.stdin.write(json.dumps(message, default=_plain).encode() + b"\n")
            self._proc.stdin.flush()
        except OSError:
            raise WorkerError(self._death()) from None

    def _receive(self):
        line = self._proc.stdout.readline()
        if not line:
            raise WorkerError(self._death())
        try:
            reply = json.loads(line)
            if "error" in reply or isinstance(reply["loss"], float):
                return reply
        except (ValueError, KeyError, TypeError):
            pass
        raise WorkerError(f"a worker process answered nonsense: {line[:80]!r}")

    def _death(self):
        code = self._proc.wait()
        return f"a worker process stopped unexpectedly (exit status {code})"


def _plain(value):
    """numpy scalars (in a ModelConfig built from numpy values) as JSON numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot send a {type(value).__name__} to a worker process")


def _flat(state):
    return [array for layer in state for array in layer]


def _serve(fd, stdin, stdout):
    """The worker's loop: one request line in, one reply line out, until stdin closes."""
    shared, model = _Shared(fd), None
    with single_threaded_blas():
        for line in stdin:
            request = json.loads(line)
            try:
                if request["config"]["cell"] not in cells.CELLS:
                    importlib.import_module(request["cell_module"])
                config = ModelConfig.from_json(request["config"])
                dtype = np.dtype(request["dtype"])
                if model is None or model.config != config or model.dtype != dtype:
                    model = CharRNN(config, params={}, dtype=dtype)
                N, T, grads = request["N"], request["T"], request["grads"]
                layout, size = _layout(config, dtype, N, T, grads)
                views = shared.views(layout, size, grow=False)
                model.params = {name: views[("param", name)] for name in param_shapes(config)}
                seed, denom = request["seed"], request["denom"]
                args = (views["x"], views["y"], _state(views, "state", config))
                if grads:
                    rng = None if seed is None else np.random.default_rng(seed)
                    loss, g, next_state = model.loss_and_grads(*args, rng, denom)
                else:
                    (loss, next_state), g = model.loss(*args, denom), None
                for name, value in (g or {}).items():
                    views[("grad", name)][...] = value
                for view, value in zip(_flat(_state(views, "next", config)), _flat(next_state)):
                    view[...] = value
                reply = {"loss": float(loss)}
            except Exception as exc:  # reported to the parent, which raises it
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            try:
                stdout.write(json.dumps(reply).encode() + b"\n")
                stdout.flush()
            except OSError:  # the parent is gone: nothing to report to
                return


def main(fd):
    """The worker process: serve requests until the parent closes its end of the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles interruptions
    # replies go to the original stdout; anything else printed goes to stderr
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(fd, sys.stdin.buffer, protocol)


# The worker's command line: the parent's sys.path (argv[2:]) replaces the child's before
# anything is imported, then `main` runs with the shared memory's fd (argv[1]).
_LAUNCH = ("import sys; sys.path[:] = sys.argv[2:]; "
           "from charrnn.engines.workers import main; main(int(sys.argv[1]))")
