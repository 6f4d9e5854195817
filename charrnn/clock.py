"""Training time and signals: the run's clock (`Clock`, which leaves out time the process
spends stopped, `ExcludingStops`), and SIGINT/SIGTERM as a flag the training loop checks
between steps (`Interrupt`), so that a step or a checkpoint write is never cut in half.
"""

import signal
import time


class Interrupt:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so a step (or a checkpoint
    write) is never cut in half; a second Ctrl-C during the final save is absorbed too."""

    def __init__(self):
        self.requested = False
        self.signum = None  # the first signal received
        self._old = {}

    def __enter__(self):
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: no handlers, Ctrl-C is not ours to catch
            pass
        return self

    def _handle(self, signum, frame):
        if not self.requested:
            self.requested, self.signum = True, signum

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


class Clock:
    """Seconds of training of a run: those of earlier sessions (`before`) plus this session's,
    which stop counting at `stop()`, so that a resume continues from the saved figure.

    Time the process spends stopped is not training time. `time.perf_counter` (the monotonic
    clock) already leaves out a machine asleep, but not a process stopped by SIGSTOP or
    Ctrl-Z; so the trainer marks each step boundary (`mark`), and on SIGCONT
    (`ExcludingStops`) the clock drops the time since the last mark: the stop, and the part
    of the step around it.
    """

    def __init__(self):
        self.before = 0.0
        self._start = time.perf_counter()
        self._mark = self._start
        self._stopped_at = None

    @property
    def elapsed(self):
        if self._stopped_at is not None:
            return self._stopped_at
        return self.before + (time.perf_counter() - self._start)

    def mark(self):
        """A step boundary: what `drop_since_mark` drops starts here."""
        self._mark = time.perf_counter()

    def drop_since_mark(self):
        """Leave out of the training time everything since the last mark."""
        now = time.perf_counter()
        self._start += now - self._mark
        self._mark = now

    def stop(self):
        self._stopped_at = self.elapsed


class ExcludingStops:
    """`with ExcludingStops(clock):` makes SIGCONT (a stopped process continued) drop the
    time since the clock's last mark; a no-op where there is no SIGCONT or outside the main
    thread."""

    def __init__(self, clock):
        self.clock = clock
        self._old = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGCONT, lambda signum, frame:
                                      self.clock.drop_since_mark())
        except (AttributeError, ValueError):  # no SIGCONT (Windows), or not the main thread
            self._old = None
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGCONT, self._old)
