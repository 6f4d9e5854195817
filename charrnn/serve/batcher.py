"""Continuous batching: per model, one loop that advances every active stream in one step.

A request (a `Job`) has one stream per choice. Its prompt is read first, by a one-stream
Stepper starting from the model's warm state, in chunks of PROMPT_CHUNK characters between
the batch's steps (all at once when nothing else is running), so that a long prompt stalls
the running streams for a step or so, never for its whole length. Then its streams join the
batch: at each step every stream in it is fed its last character in one `Stepper.step` over
all of them (per_stream products: a stream's numbers are exactly those it would have alone),
and each picks its next character with its own Picker and its own generator, drawing its
uniform numbers as `charrnn sample` does (`sampling.uniforms`). A stream leaves the batch when
it is done; a cancelled job (its client went away) leaves at the next step.

With seed S, choice i of a request draws from numpy's default_rng(S + i): its text is what
`charrnn sample --seed S+i` prints with the same options, whatever else is being served.

The loop runs in its own thread (numpy releases the GIL in its products). It hands each job
lists of `Event`s through the job's `deliver` callback, which it runs through `post` (for a
server: in the event loop), all jobs' events at once and at most every FLUSH_SECONDS, except
that a choice's first text and a job's end go at once: waking the event loop for every job at
every step would cost more than the steps.
"""

import secrets
import threading
import time
from dataclasses import dataclass

import numpy as np

from charrnn.beam import log_softmax
from charrnn.sampling import Picker, _Tracker, uniforms, warmup_ids
from charrnn.serve.requests import ApiError, unknown_prompt_error
from charrnn.stops import Stops

PROMPT_CHUNK = 32  # prompt characters read between two batch steps
FLUSH_SECONDS = 0.01  # how often the events held for the jobs are handed over


@dataclass
class Event:
    """What a choice adds at a step: released `text`, the `logprobs` entries of its characters
    (char, logprob, {char: logprob} of the top ones) when asked for, and `finish` ("stop" |
    "length") with the stop text that ended it, once it is done."""

    index: int
    text: str
    logprobs: list
    finish: str | None = None
    stop: str | None = None
    prompt_logprobs: list | None = None  # with echo and logprobs, on a choice's first event


class Job:
    """One request being served: its streams, and `deliver(events)` that hands their events
    (a list, or an ApiError if generation failed) to the request's handler."""

    def __init__(self, served, request, deliver):
        self.served, self.request, self.deliver = served, request, deliver
        self.cancelled = False
        seed = request.seed if request.seed is not None else secrets.randbits(32)
        self.streams = []
        self.readings = []
        for p, prompt in enumerate(request.prompts):
            missing = served.vocab.unknown_chars(prompt) if prompt else ""
            replaceable = served.vocab.replacement is not None
            if missing and (request.unknown == "error" or
                            (request.unknown == "replace" and not replaceable)):
                raise unknown_prompt_error(missing, replaceable)
            choices = [_Stream(self, p * request.n + c, seed + p * request.n + c)
                       for c in range(request.n)]
            self.streams += choices
            self.readings.append(_Reading(served, prompt, request, choices))
        self.left = len(self.streams)  # streams not yet done
        self.started = False  # whether any of its events were handed over


class _Stream:
    """One choice: its picker, generator and tracker, and the id it feeds next."""

    def __init__(self, job, index, seed):
        r, vocab = job.request, job.served.vocab
        self.job, self.index = job, index
        self.picker = Picker(1, vocab.size, r.temperature, r.top_k, r.top_p, job.served.banned)
        rng = np.random.default_rng(seed)
        self.draws = None if self.picker.greedy else uniforms(rng, r.max_tokens, 1)
        self.tracker = _Tracker(1, vocab.chars, Stops(vocab, r.stop), r.max_tokens, scored=False)
        self.top = r.logprobs
        self.entries = []  # logprobs entries of characters generated but not yet released
        self.next_id = 0
        self.state = None  # the state it joins the batch with

    @property
    def done(self):
        return bool(self.tracker.done[0])

    def take(self, logits):
        """Pick the next character from logits (V,); return the Event, or None if nothing is
        released."""
        u = None if self.draws is None else next(self.draws)
        ids = self.picker.pick(logits[None], u)
        self.next_id = j = int(ids[0])
        if self.top is not None:
            self.entries.append(logprob_entry(self.job.served.vocab.chars, logits, j, self.top))
        text = self.tracker.add(logits[None], ids)[0]
        released, self.entries = self.entries[:len(text)], self.entries[len(text):]
        if not self.done:
            return Event(self.index, text, released) if text else None
        stop = self.tracker.stop[0]
        return Event(self.index, text, released, "stop" if stop else "length", stop)

    def finish_now(self):
        """End it as if its length ran out (the server is stopping): the Event."""
        self.tracker.done[:] = True
        text, self.tracker.held[0] = self.tracker.held[0], ""
        return Event(self.index, text, self.entries[:len(text)], "length")


def logprob_entry(chars, logits, j, top):
    """(char, logprob, {char: logprob} of the `top` most probable) for character j picked from
    logits (V,): the model's own (untempered) distribution, as `charrnn eval` scores it."""
    lp = log_softmax(logits[None])[0]
    best = np.argsort(-lp, kind="stable")[:top]
    return chars[j], float(lp[j]), {chars[k]: float(lp[k]) for k in best}


class _Reading:
    """A prompt being read for its choices; with echo and logprobs, the prompt's own entries."""

    def __init__(self, served, prompt, request, choices):
        context_ids, self.ids = warmup_ids(served.vocab, prompt, request.unknown, served.context)
        self.choices, self.position = choices, 0
        self.stepper = served.stepper.resized(1)
        self.logits = None
        if served.warm is not None:
            self.stepper.state, self.logits = served.warm[0], served.warm[1].copy()
        self.echo = [] if request.echo and request.logprobs is not None and prompt else None
        self.top, self.chars = request.logprobs, served.vocab.chars

    def read(self, count):
        """Read up to `count` more prompt characters; True when the prompt is all read."""
        for i in self.ids[self.position:self.position + count]:
            if self.echo is not None:  # the first character of all has no prediction
                self.echo.append((self.chars[i], None, None) if self.logits is None else
                                 logprob_entry(self.chars, self.logits[0], int(i), self.top))
            self.logits = self.stepper.step(np.array([i]))
            self.position += 1
        return self.position >= len(self.ids)


class Batcher:
    """The generation loop of one served model, in its own thread.

        batcher = Batcher(served, max_streams, post); batcher.start()
        batcher.submit(job)       # ApiError 429 if its streams do not fit
        batcher.cancel(job)       # its streams leave at the next step
        batcher.stop()            # end every stream now (finish "length"), end the thread
    """

    def __init__(self, served, max_streams, post=None):
        """post(fn) runs fn where the jobs' deliver callbacks must run (for an asyncio server,
        `loop.call_soon_threadsafe`); None: at once, in the loop's thread."""
        self.served, self.max_streams = served, max_streams
        self.post = post or (lambda fn: fn())  # settable until start()
        self._outbox, self._urgent, self._flushed = {}, False, 0.0  # events not yet handed over
        self._cond = threading.Condition()
        self._jobs = []  # jobs with streams not done, in arrival order
        self._reading = []  # readings not finished, in arrival order
        self._batch = []  # the streams in the batch, in the stepper's column order
        self._stepper = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"charrnn-{served.name}",
                                        daemon=True)

    def start(self):
        self._thread.start()

    @property
    def streams(self):
        """How many streams are held (reading or generating); 0 when idle."""
        with self._cond:
            return sum(job.left for job in self._jobs)

    @property
    def generating(self):
        return len(self._batch)

    def submit(self, job):
        with self._cond:
            held = sum(j.left for j in self._jobs)
            if self._stopping:
                raise ApiError(503, "the server is shutting down.", type="server_error",
                               code="shutting_down")
            if held + len(job.streams) > self.max_streams:
                raise ApiError(429, f"model '{self.served.name}' is generating {held} of its "
                                    f"{self.max_streams} streams; retry shortly.",
                               type="rate_limit_error", code="too_many_streams")
            self._jobs.append(job)
            self._reading += job.readings
            self._cond.notify()

    def cancel(self, job):
        with self._cond:
            job.cancelled = True
            self._cond.notify()

    def stop(self, timeout=1.0):
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self):
        while True:
            with self._cond:
                while not (self._stopping or self._reading or self._batch or
                           any(j.cancelled for j in self._jobs)):
                    self._cond.wait()
                if self._stopping:
                    self._end_all()
                    return
                self._drop_cancelled()
                reading = self._reading[0] if self._reading else None
            try:
                if reading is not None:
                    self._read(reading)
                if self._batch:
                    self._step()
                self._flush()
            except Exception as exc:  # noqa: BLE001 - a bug must not end the loop silently
                self._fail_all(exc)

    def _drop_cancelled(self):
        """Remove cancelled jobs' readings and streams (under the lock)."""
        gone = [j for j in self._jobs if j.cancelled]
        if not gone:
            return
        self._jobs = [j for j in self._jobs if not j.cancelled]
        self._reading = [r for r in self._reading if not r.choices[0].job.cancelled]
        self._regroup([s for s in self._batch if not s.job.cancelled], [])
        for job in gone:
            job.left = 0

    def _read(self, reading):
        """Read a chunk of the first prompt; once read, its choices pick their first
        character and join the batch."""
        if not reading.read(PROMPT_CHUNK if self._batch else len(reading.ids)):
            return
        job = reading.choices[0].job
        state, events, joining = reading.stepper.state, [], []
        for stream in reading.choices:
            event = stream.take(reading.logits[0]) if job.request.max_tokens else \
                Event(stream.index, "", [], "length")
            if event is None or not event.finish:
                stream.state = state
                joining.append(stream)
            if reading.echo is not None:
                event = event or Event(stream.index, "", [])
                event.prompt_logprobs = reading.echo
            if event is not None:
                events.append(event)
        with self._cond:
            self._reading.remove(reading)
            if not job.cancelled:
                self._regroup(self._batch, joining)
        self._hand(job, events)

    def _step(self):
        """One step of every stream in the batch; done streams leave it."""
        batch = self._batch
        logits = self._stepper.step(np.array([s.next_id for s in batch], dtype=np.intp))
        by_job = {}
        for n, stream in enumerate(batch):
            event = stream.take(logits[n])
            if event is not None:
                by_job.setdefault(stream.job, []).append(event)
        with self._cond:
            if any(s.done for s in batch):
                self._regroup([s for s in batch if not s.done and not s.job.cancelled], [])
        for job, events in by_job.items():
            self._hand(job, events)

    def _hand(self, job, events):
        """Hold a job's events for the next flush (unless it was cancelled); forget the job
        once all its streams are done."""
        finished = sum(1 for e in events if e.finish)
        with self._cond:
            if job.cancelled:
                return
            job.left -= finished
            if job.left == 0 and job in self._jobs:
                self._jobs.remove(job)
        if events:
            self._urgent |= finished > 0 or job not in self._outbox and not job.started
            job.started = True
            self._outbox.setdefault(job, []).extend(events)

    def _flush(self, now=False):
        """Hand the held events over, if FLUSH_SECONDS have passed or some are urgent."""
        clock = time.monotonic()
        if not self._outbox or not (now or self._urgent or
                                    clock - self._flushed >= FLUSH_SECONDS):
            return
        outbox, self._outbox, self._urgent, self._flushed = self._outbox, {}, False, clock
        self.post(lambda: [job.deliver(events) for job, events in outbox.items()])

    def _regroup(self, keep, joining):
        """Make the batch `keep` + `joining` (under the lock): a new stepper of that many
        streams, the kept ones continuing from their columns, the joining from their state."""
        columns = {id(s): n for n, s in enumerate(self._batch)}
        old = self._stepper.state if self._stepper is not None and keep else None
        self._batch = [*keep, *joining]
        if not self._batch:
            self._stepper = None
            return
        self._stepper = self.served.stepper.resized(len(self._batch))
        kept = np.array([columns[id(s)] for s in keep], dtype=np.intp)
        self._stepper.state = _gathered(old, kept, [s.state for s in joining])
        for s in joining:
            s.state = None

    def _end_all(self):
        """The server is stopping: end every stream now, with what it has (under the lock)."""
        for job in self._jobs:
            if not job.cancelled:
                self._outbox.setdefault(job, []).extend(
                    s.finish_now() for s in job.streams if not s.done)
            job.left = 0
        self._jobs, self._reading, self._batch, self._stepper = [], [], [], None
        self._flush(now=True)

    def _fail_all(self, exc):
        """An unexpected error in the loop: every job gets it, and the loop starts afresh."""
        with self._cond:
            jobs, self._jobs, self._reading = self._jobs, [], []
            self._batch, self._stepper = [], None
        error = ApiError(500, f"generation failed: {exc}", type="server_error")
        self._outbox = {job: error for job in jobs if not job.cancelled}
        for job in jobs:
            job.left = 0
        self._flush(now=True)


def _gathered(old, kept, states):
    """A batch's state (per layer, a tuple of (H, N) arrays): the columns `kept` of the batch
    state `old` (None when none are kept), then each of the one-stream `states`."""
    shape = old or states[0]
    return [tuple(np.concatenate(([old[layer][a][:, kept]] if old else [])
                                 + [state[layer][a] for state in states], axis=1)
                  for a in range(len(arrays)))
            for layer, arrays in enumerate(shape)]
