"""Running a training step on every core: the batch split into chunks, the chunks run in worker
processes or threads, BLAS limited to one thread per chunk."""

import os

from charrnn import cells

# Splitting a batch pays only when each chunk keeps enough work per step; measured on 2 cores
# as the multiply-adds of a chunk's recurrent product h Wh per step: in worker processes, an
# LSTM 2x32 with batch 32 (65k) breaks even and 2x64 (262k) gains 20%; in threads, which wait
# for each other for the interpreter lock, 2x96 with batch 64 (1.2M) breaks even, 2x128 with
# batch 32 (1.0M) loses 10% and with batch 64 (2.1M) gains 20%.
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
    from charrnn import workers

    return workers.AVAILABLE and os.environ.get("CHARRNN_PARALLEL") != "threads"


def single_threaded_blas():
    """A context in which BLAS runs on one thread: each training worker thread owns a core, and
    sampling's matrix-vector products gain nothing from a second BLAS thread, whose spinning
    made them up to 10x slower on a busy machine."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


_BLAS_CONTROLLER = None


