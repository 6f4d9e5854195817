"""Data parallelism under torchrun: which process this is, and the few collectives the torch
engine and the trainer need. Reading the environment needs no PyTorch; `Group` does.

torchrun starts K processes with WORLD_SIZE, RANK and LOCAL_RANK set. They train one run:
`--batch-size N` stays the global number of streams and rank r takes the contiguous streams
`rows(N)` = [N r // K, N (r + 1) // K); each rank's loss is its sum over positions divided by
the global N T, so summing losses and gradients over ranks (all-reduce) gives exactly the
mean of one process over all N streams. Rank 0 alone writes the run (directory, lock, log,
checkpoints, progress); the others follow its decisions (`Group.shared`).
"""

import os
from datetime import timedelta

from charrnn.errors import CharRNNError

TIMEOUT = timedelta(minutes=5)  # a collective that waits longer: a rank is gone


class PeerLost(CharRNNError):
    """Another process of a data-parallel run stopped or cannot be reached."""


def environment():
    """(rank, world_size, local_rank) under torchrun (WORLD_SIZE > 1), else None."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size <= 1:
            return None
        return int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError):
        raise CharRNNError("WORLD_SIZE is set but RANK is missing or not a number; start "
                           "data-parallel training with torchrun.") from None


def is_secondary():
    """Whether this process is a rank other than 0 of a torchrun launch (it shows nothing)."""
    env = os.environ.get("WORLD_SIZE", "1")
    return env.isdigit() and int(env) > 1 and os.environ.get("RANK", "0") != "0"


def split(N, rank, size):
    """The streams [lo, hi) of rank `rank` out of `size`: contiguous, sizes differing by <= 1."""
    return N * rank // size, N * (rank + 1) // size


class Group:
    """The process group of a torchrun launch: gloo on CPUs, nccl on CUDA devices."""

    def __init__(self, rank, size, local_rank, backend):
        import torch.distributed as dist

        self.dist = dist
        self.rank, self.size, self.local_rank = rank, size, local_rank
        self.device = None  # the tensors' device for collectives, set by the engine
        try:
            dist.init_process_group(backend, timeout=TIMEOUT)
        except Exception as exc:  # noqa: BLE001  (any failure to rendezvous is the user's setup)
            raise CharRNNError(f"cannot start data-parallel training ({backend}): {exc}") from None

    @property
    def writer(self):
        return self.rank == 0

    def rows(self, N):
        return split(N, self.rank, self.size)

    def check_batch(self, N):
        """Refuse a batch of `N` streams that leaves a rank without one (before the run is
        created: every rank sees the same options and refuses alike)."""
        if N < self.size:
            raise CharRNNError(f"--batch-size {N} is split across {self.size} processes; give "
                               f"at least {self.size} streams.")

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except RuntimeError:  # gloo/nccl: a peer closed its connection or timed out
            # the backend's text (addresses, "GLHF") says nothing the user can act on
            who = "another process" if self.rank == 0 else "rank 0 (its message says why)"
            raise PeerLost(f"{who} of this data-parallel run stopped; latest.npz is as it was "
                           "last saved.") from None

    def all_reduce(self, tensor):
        """Sum `tensor` over ranks, in place."""
        self._call(self.dist.all_reduce, tensor)
        return tensor

    def shared(self, values):
        """Rank 0's `values` (a list of JSON-safe items) on every rank."""
        box = [values]
        self._call(self.dist.broadcast_object_list, box, 0)
        return box[0]

    def gather_rows(self, tensor, N):
        """Every rank's (1, n_r, H) slice -> the whole (1, N, H), on every rank."""
        import torch

        longest = max(hi - lo for lo, hi in (split(N, r, self.size) for r in range(self.size)))
        padded = torch.zeros((1, longest, tensor.shape[2]), dtype=tensor.dtype,
                             device=tensor.device)
        padded[:, : tensor.shape[1]] = tensor
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        self._call(self.dist.all_gather, parts, padded)
        return torch.cat([p[:, : hi - lo] for p, (lo, hi) in
                          zip(parts, (split(N, r, self.size) for r in range(self.size)))], dim=1)

    def close(self):
        try:
            self.dist.destroy_process_group()
        except Exception:  # noqa: BLE001  (a group a dead peer broke: nothing left to free)
            pass
