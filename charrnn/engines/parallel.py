"""Running a model on every core: a batch split into chunks of streams, chunk 0 in this thread
and the others in worker processes (`workers.py`) or threads, each with single-threaded BLAS.

`CharRNN` computes one chunk on one thread; `Parallel` owns everything about running several:
how to split, where chunks run, BLAS thread limits, and the lifetime of the workers (`close`,
a finalizer, or a `with` block).

Why split at all: a chunk's elementwise work (most of a small model's step) runs on one core
whatever BLAS does, so only several chunks at once use several cores. Why processes: numpy
releases the interpreter lock inside ufuncs and BLAS, so threads run chunks in parallel too,
but each of the thousands of numpy calls of a step takes the lock back, and the smaller the
arrays, the more threads wait for each other (README, Performance).
"""

import os
import warnings
import weakref

import numpy as np

from charrnn import cells
from charrnn.engines import workers
from charrnn.blas import single_threaded_blas

# Splitting pays only when each chunk keeps enough work per step, counted as the multiply-adds
# of a chunk's recurrent product h Wh per step; the break-even points were measured on 2 cores
# (README, Performance). Threads, which wait for each other at the interpreter lock, need more.
MIN_CHUNK_MACS = {"processes": 1.5e5, "threads": 1.5e6}


def default_threads(cell, hidden_size, batch_size):
    """How many cores to split a batch over: one per available core, as long as each chunk
    keeps MIN_CHUNK_MACS multiply-adds a step and at least 4 streams (every chunk costs a
    copy of the parameters and of its gradients, whatever its size)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    per_stream = cells.get(cell).G * hidden_size**2  # one stream's h Wh, per step
    least = MIN_CHUNK_MACS["processes" if _processes_allowed() else "threads"]
    return max(1, min(cores, batch_size // 4, int(batch_size * per_stream // least)))


def _processes_allowed():
    """Worker processes exist here (Linux) and CHARRNN_PARALLEL=threads does not forbid them."""
    return workers.AVAILABLE and os.environ.get("CHARRNN_PARALLEL") != "threads"


class Parallel:
    """`model`'s loss and gradients over a batch cut into `threads` chunks of streams.

        with Parallel(model, threads=2) as par:
            loss, grads, state = par.loss_and_grads(x, y, state, rng)
            val, state = par.loss(x, y, state)

    Each chunk runs forward and backward with single-threaded BLAS: chunk 0 here, the others in
    worker processes where the system has them (see `parallelism`), else in threads. A chunk's
    loss is its share of the whole batch's mean, so losses and gradients simply add up. With
    one chunk, BLAS runs on one thread too: a second BLAS thread helps a small model on an idle
    machine and slows it down badly on a busy one. Each chunk draws its dropout masks from its
    own generator, seeded from rng: results are reproducible for a given thread count (and
    differ, like any sampling, between thread counts).
    """

    def __init__(self, model, threads=1):
        self.model = model
        self.threads = threads
        self._executor = None
        self._procs = []  # workers.Worker handles, chunks 1..k-1
        self._processes_failed = False
        self._finalizer = weakref.finalize(self, _stop, self._procs)

    def loss_and_grads(self, x_ids, y_ids, state, rng=None):
        """(loss, grads, next_state) of `CharRNN.loss_and_grads` for the whole batch."""
        return self._run(x_ids, y_ids, state, rng, grads=True)

    def loss(self, x_ids, y_ids, state):
        """(loss, next_state) of `CharRNN.loss` for the whole batch (no dropout)."""
        loss, _, next_state = self._run(x_ids, y_ids, state, None, grads=False)
        return loss, next_state

    @property
    def parallelism(self):
        """Where chunks 1..k-1 run: "processes" where the system has them (Linux) and none has
        failed, else "threads". CHARRNN_PARALLEL=threads keeps everything in this process."""
        return "processes" if _processes_allowed() and not self._processes_failed else "threads"

    @property
    def worker_pids(self):
        """The process ids of the running worker processes (started on first use)."""
        return [proc.pid for proc in self._procs]

    def close(self):
        """Stop the worker processes, if any (this object stays usable: they restart)."""
        _stop(self._procs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _run(self, x_ids, y_ids, state, rng, grads):
        N, T = x_ids.shape
        bounds = np.linspace(0, N, min(self.threads, N) + 1).astype(int)
        # each chunk draws its own masks, contiguous and in parallel, from a child generator
        seeds = None if rng is None else rng.integers(2**63, size=len(bounds) - 1)
        # chunk k: (x, y, state, dropout seed) of the streams bounds[k]:bounds[k+1]
        chunks = [(x_ids[lo:hi], y_ids[lo:hi], tuple(tuple(a[:, lo:hi] for a in layer) for layer in state),
                   None if seeds is None else seeds[k])
                  for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))]

        def chunk(k):
            x, y, sub_state, seed = chunks[k]
            if not grads:
                loss, next_state = self.model.loss(x, y, sub_state, N * T, key=k)
                return loss, None, next_state
            sub_rng = None if seed is None else np.random.default_rng(seed)
            return self.model.loss_and_grads(x, y, sub_state, sub_rng, N * T, key=k)

        with single_threaded_blas():
            if len(chunks) == 1:
                return chunk(0)
            results = None
            if self.parallelism == "processes":
                results = self._in_processes(chunk, chunks, N * T, grads)
            if results is None:
                results = list(self._pool().map(chunk, range(len(chunks))))
        loss = sum(r[0] for r in results)
        total = results[0][1]
        for _, g, _ in results[1:] if grads else ():
            for k, v in g.items():
                total[k] += v
        next_state = tuple(
            tuple(np.concatenate(parts, axis=1) for parts in zip(*layer_parts))
            for layer_parts in zip(*(r[2] for r in results))
        )
        return loss, total, next_state

    def _in_processes(self, chunk, chunks, denom, grads):
        """Chunk 0 here, the others in worker processes; None if a worker failed (it is
        stopped, with a warning, and this object keeps to threads from then on: they compute
        the same numbers)."""
        try:
            while len(self._procs) < len(chunks) - 1:
                self._procs.append(workers.Worker())
            procs = self._procs[: len(chunks) - 1]
            for proc, args in zip(procs, chunks[1:]):
                proc.submit(self.model, *args, denom, grads)
            results = [chunk(0)]
            return results + [proc.result() for proc in procs]
        except workers.WorkerError as exc:
            self.close()
            self._processes_failed = True
            warnings.warn(f"{exc}; continuing with threads.", RuntimeWarning, stacklevel=3)
            return None

    def _pool(self):
        if self._executor is None or self._executor._max_workers != self.threads:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="charrnn")
        return self._executor


def _stop(procs):
    while procs:
        procs.pop().close()
