"""Beam search: the most probable continuations of a prime, kept as one batch of B streams.

A continuation's score is the sum of the log-probabilities (untempered, float64) of its
characters. Each step extends every kept continuation by every character and keeps the B best
of those B V candidates; the streams then follow their chosen parents (`Stepper.select`) and
read the chosen characters. With B at least V^length nothing is ever dropped, so the best beam
is the most probable sequence of all; with B = 1 it is greedy sampling.

Ties are broken without randomness: candidates are ranked by score, then by the rank of the
continuation they extend (best first), then by character id; the first ranked wins.

With stop texts (`charrnn.stops`), a candidate that ends with one is finished: it leaves the
beam (the next-best candidates fill it back to B) and waits in a pool. Finished continuations
are compared by mean log-probability per character (stop text included), since a sum would
favour the shortest. The search ends when no continuation is left or at the maximum length;
continuations that reach the maximum length without stopping fill in, by score, when fewer than
the requested number have finished.
"""

from dataclasses import dataclass

import numpy as np

from charrnn.blas import single_threaded_blas


def log_softmax(logits):
    """(N, V) logits -> (N, V) float64 log-probabilities, computed stably."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
    return z


STEP_SECONDS_PER_CANDIDATE = 2.4e-7  # measured: a step's float64 work per candidate (B V)


def search_cost(model, width, length):
    """(bytes, seconds): rough peak memory and time of `search`, to refuse absurd requests up
    front. Memory: the backpointers (8 bytes per stream and step) and the candidates' float64
    scores (about four (width, V) arrays; with the stepper's per-stream buffers, which the
    caller adds, this is above the peak tracemalloc measured: 67 bytes per candidate for an
    LSTM 2×32 with 65 characters at beams of 20,000 to 300,000). Time, per step: every weight
    read once per stream (two flops each) at 20 GFLOP/s, the log-softmax, partition and sort
    of the width V candidates (STEP_SECONDS_PER_CANDIDATE each, measured on 2 busy cores:
    for a small model, most of the time), and about 100 us of calls."""
    V = model.config.vocab_size
    memory = width * length * 8 + 4 * width * V * 8
    seconds = length * (width * 2 * model.num_params / 2e10
                        + width * V * STEP_SECONDS_PER_CANDIDATE + 1e-4)
    return memory, seconds


@dataclass
class Beam:
    """One continuation found by `search`."""

    ids: np.ndarray  # (n,) the generated ids, stop text included
    stop: str | None  # the stop text it ended with, or None
    logp: float  # the sum of the log-probabilities of its characters

    @property
    def mean(self):
        """Mean log-probability per character (0 for an empty continuation)."""
        return self.logp / self.ids.size if self.ids.size else 0.0


def _best(values, k):
    """Indices of the k largest of the 1-D `values`, largest first, ties in index order."""
    if k < values.size:
        kth = np.partition(values, values.size - k)[values.size - k]
        candidates = np.flatnonzero(values >= kth)  # at least k, in index order
    else:
        candidates = np.arange(values.size)
    return candidates[np.argsort(-values[candidates], kind="stable")][:k]


def search(stepper, logits, length, count=1, stops=None, banned=None, progress=None):
    """The `count` best continuations of at most `length` characters, best first.

    stepper: a `Stepper` of B streams (B = the beam width), all in the state after the prime;
    logits: its (B, V) logits for the first character. stops: a `Stops` or None. banned: a
    character id never to generate (its candidates are dropped; the others keep their
    log-probabilities), or None. progress(1), if given, is called after each step.
    Returns a list of at most `count` `Beam`s, fewer when fewer distinct continuations exist
    (two finished ones are the same when they differ only in their stop text).
    """
    if length == 0:
        return [Beam(np.zeros(0, dtype=np.intp), None, 0.0)]
    B, V = logits.shape
    scores = np.zeros(1)  # of the kept continuations, best first: one, empty, to start
    parents = np.zeros((length, B), dtype=np.int32)  # at step t, the row each kept one extends
    chars = np.zeros((length, B), dtype=np.int32)  # and its character
    tails = stops.tails(B) if stops else None
    finished, last = [], []  # (step, parent row, character, logp, stop) of each candidate
    with single_threaded_blas():
        for t in range(length):
            n = scores.size
            flat = (scores[:, None] + log_softmax(logits[:n])).ravel()  # (n V,) row-major
            if banned is not None:
                flat[banned::V] = -np.inf
            ends = stops.finishing(tails[:n]).ravel() if stops else np.zeros(flat.size, np.int32)
            ranked = _best(flat, B + np.count_nonzero(ends))
            ranked = ranked[flat[ranked] > -np.inf]
            stopping = ends[ranked] != 0
            kept = ranked[~stopping][:B]
            # finished: the stopping candidates ranked above the last one kept
            for f in ranked[stopping & (np.cumsum(~stopping) < B)]:
                finished.append((t, *divmod(int(f), V), float(flat[f]), int(ends[f])))
            if progress is not None:
                progress(1)
            rows, picked = np.divmod(kept, V)
            parents[t, :kept.size], chars[t, :kept.size] = rows, picked
            scores = flat[kept]
            if t + 1 == length:
                last = [(t, int(r), int(c), float(s), 0) for r, c, s in zip(rows, picked, scores)]
            if kept.size == 0 or t + 1 == length:
                break
            follow, feed = np.zeros((2, B), dtype=np.intp)  # streams past the kept: unused
            follow[:kept.size], feed[:kept.size] = rows, picked
            stepper.select(follow)
            if stops:
                tails = tails[follow]
                stops.push(tails, feed)
            logits = stepper.step(feed)
    finished.sort(key=lambda f: -f[3] / (f[0] + 1))  # by mean log-probability; stable
    return _distinct(finished + last, parents, chars, count, stops)


def _distinct(candidates, parents, chars, count, stops):
    """The first `count` candidates whose texts (stop text left out) differ, as Beams."""
    beams, seen = [], set()
    for t, row, char, logp, stop in candidates:
        ids = np.empty(t + 1, dtype=np.intp)
        ids[t] = char
        for s in range(t - 1, -1, -1):  # follow the backpointers to the first character
            ids[s] = chars[s, row]
            row = parents[s, row]
        stop = stops.texts[stop - 1] if stop else None
        text = ids[: ids.size - len(stop or "")].tobytes()
        if text not in seen:
            seen.add(text)
            beams.append(Beam(ids, stop, logp))
            if len(beams) == count:
                break
    return beams
