"""BLAS thread limits: the one knob every numpy hot path here sets the same way.

Each chunk of a split training batch owns a core, so its BLAS must not start threads of its
own; sampling's and evaluation's matrix-vector products gain little from a second BLAS thread,
whose spinning slows them down badly when the other core is busy (README, Performance).
Its own module because the trainer's side (`engines/parallel.py`), the worker processes
(`engines/workers.py`) and sampling all use it, and none of them should import another for it.
"""

_CONTROLLER = None


def single_threaded_blas():
    """A context manager in which BLAS runs on one thread (threadpoolctl, created once)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")
