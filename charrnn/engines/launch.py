"""`charrnn train --nproc-per-node K`: PyTorch's elastic launcher (what `torchrun --standalone
--nproc-per-node K` runs), started in this process, so that charrnn decides how it ends.

Plain torchrun answers Ctrl-C with its own Python traceback (`SignalException: Process ...
got signal: 2`) after charrnn's ranks have stopped cleanly, and a failed rank with a
`ChildFailedError` report. Here a signal ends the launch with the shell's code for it (130 for
Ctrl-C, 143 for SIGTERM) and a failed rank with one sentence; the ranks print their own lines
(rank 0 the progress, the interrupt line and errors) as under torchrun.
"""

import logging

from charrnn.errors import CharRNNError

# the launcher's loggers: their notices (OMP_NUM_THREADS set to 1, a signal received) repeat or
# explain what charrnn's ranks and exit code say
LAUNCHER_LOGGERS = ("torch.distributed.run", "torch.distributed.elastic")


def launch(processes, train_args):
    """Run `python -m charrnn train TRAIN_ARGS` as `processes` data-parallel processes of one
    run on this machine (gloo on CPUs, nccl on GPUs) and wait for them.

    Returns the exit code for the command: 0 when every process finished, 128 + the signal's
    number when a signal stopped the launch or its processes (130 for Ctrl-C), else the failed
    process's own code (it has said why on stderr). Raises CharRNNError for a process killed
    outright (by a signal it could not handle, or out of memory).
    """
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    for name in list(logging.root.manager.loggerDict):  # each sets its own level
        if name.startswith(LAUNCHER_LOGGERS):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    args = torchrun.parse_args(["--standalone", "--nproc-per-node", str(processes),
                                "--module", "charrnn", "train", *train_args])
    try:
        torchrun.run(args)
    except SignalException as exc:
        return 128 + int(exc.sigval)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()  # the root cause: the others were stopped
        if failure.exitcode is None or failure.exitcode < 0:  # -N: killed by signal N
            raise CharRNNError(f"process {rank} of the data-parallel run was killed (signal "
                               f"{-(failure.exitcode or 0)}); the run's latest.npz is as it "
                               "was last saved.") from None
        return failure.exitcode
    return 0
