"""Training time and signals: the run's clock (`Clock`, which leaves out time the process
spends stopped, `ExcludingStops`), SIGINT/SIGTERM/SIGHUP as a flag the training loop checks
between steps (`Interrupt`), so that a step or a checkpoint write is never cut in half, and
Ctrl-C around a whole training call (`CtrlCBeforeTraining`).
"""

import os
import signal
import time


# what stops training cleanly: Ctrl-C, `kill`, and SIGHUP (the terminal closed), where it exists
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class Interrupt:
    """Turns SIGINT/SIGTERM/SIGHUP into a flag checked between steps, so a step (or a
    checkpoint write) is never cut in half; a second Ctrl-C during the final save is absorbed
    too."""

    def __init__(self):
        self.requested = False
        self.signum = None  # the first signal received
        self._old = {}

    def __enter__(self):
        try:
            for sig in STOP_SIGNALS:
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


class CtrlCBeforeTraining:
    """Ctrl-C around a whole `train()` call, for a command that reports and exits after it:

        with CtrlCBeforeTraining(reporter) as guard:  # before `train(..., reporter=reporter)`
            guard.result = train(..., reporter=reporter)

    Before training starts (e.g. while the corpus is read), Ctrl-C raises KeyboardInterrupt at
    once: there is nothing to save yet. During training, `train`'s own handler (`Interrupt`)
    saves and stops. After an interrupted run (`guard.result.reason == "interrupted"`), Ctrl-C
    is ignored until the process exits, interpreter shutdown included, so that a second one
    cannot turn a clean stop into "Aborted!" or a death by SIGINT; otherwise the previous
    handler is restored. A KeyboardInterrupt that lands in code that swallows exceptions (a
    finalizer) is not lost: the signal is sent again once the training loop's own handler is
    in place (the reporter's `start`), and the run stops at its first step.
    """

    def __init__(self, reporter):
        self.reporter, self.result = reporter, None
        self._started = self._requested = False
        self._previous = None

    def _start(self, info, report_start):
        self._started = True
        if self._requested:
            os.kill(os.getpid(), signal.SIGINT)
        report_start(info)

    def _on_sigint(self, signum, frame):
        if not self._started:
            self._requested = True
            raise KeyboardInterrupt

    def __enter__(self):
        report_start = self.reporter.start
        self.reporter.start = lambda info: self._start(info, report_start)
        self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc):
        interrupted = self.result is not None and self.result.reason == "interrupted"
        signal.signal(signal.SIGINT, signal.SIG_IGN if interrupted else self._previous)
