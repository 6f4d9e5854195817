"""Turning a model into text: priming, temperature / top-k / top-p / greedy sampling, the
streaming generator, the beam-search option rules (`check_beam`), and `LoadedModel`, what
`charrnn.load` returns. (A model's loss on a text is `charrnn.scoring`'s.)

How a sample is made (the same for the CLI, the Python API and the trainer's samples):
1. The state starts at zeros. A checkpoint made by `charrnn train` holds a short context, the
   end of a paragraph of the training text (see `sample_context`): it is fed first, one
   character at a time, and not printed. Then the prime is fed; the logits after its last
   character predict the first generated character. With no context and an empty prime, the
   model is fed one start character: the newline if the vocabulary has one, else the character
   with id 0 (the start character itself is not part of the output).
2. Each step turns the logits into probabilities: p = softmax(logits / temperature), computed
   in float64 after subtracting the maximum; top-k keeps the k most probable characters (all of
   those tied with the k-th), top-p then keeps the smallest set of most probable characters
   whose probability adds up to at least p; what is kept is renormalised. A vocabulary's
   U+FFFD, which stands for the characters it left out (`data.limit_vocab`), gets 0 first:
   it is never generated.
3. One uniform number u = rng.random() per stream and step picks the character whose interval
   of the cumulative distribution holds u, so a seed fixes the output. temperature 0 or
   top_k 1 picks the most probable character (argmax, the first on ties) without a draw, so
   `top_k=1` gives exactly the text of `temperature=0`.
4. The character is fed back, and so on: N samples run as one batch of N streams.
5. With stop texts (`charrnn.stops`), a sample ends as soon as its generated text ends with one
   of them, without it; the length is then the most it may have. In a batch each sample stops
   on its own (its stream keeps running, unread, so that the others' draws do not change):
   a sample with stop texts is the sample without them, cut.
Beam search (`charrnn.beam`) replaces steps 2 and 3 with the B most probable continuations.

A sample as data (`generate(..., records=True)`) is a dict: `sample` (its index), `prime`,
`text` (the generated part, without the stop text), `stop` (the stop text that ended it, or
None when the length ran out), `chars` (how many characters were generated, stop text
included), `nats_per_char` and `bits_per_char` (their mean negative log-probability under the
model's untempered distribution, as `scoring.score` and `charrnn eval` compute it; None when
nothing was generated), `seed`, and the options: `length`, `temperature`, `top_k`, `top_p`,
`beam`, `stops`; a sample cut short by Ctrl-C also has `interrupted` (true).
"""

import itertools
import math

import numpy as np

from charrnn.beam import log_softmax, search_cost
from charrnn.beam import search as beam_search
from charrnn.blas import single_threaded_blas
from charrnn.config import DEFAULT_TEMPERATURE, UNKNOWN_CHOICES
from charrnn.data import format_chars
from charrnn.errors import CharRNNError, CorpusError, fits_in_memory, refuse_oversized
from charrnn.stepper import Stepper
from charrnn.stops import Stops
from charrnn.units import bits

START_CHAR = "\n"  # fed first when there is no prime nor context (else the character with id 0)
CONTEXT_CHARS = 256  # length of the training-text context a checkpoint keeps for sampling


def check_options(length, temperature, top_k=None, top_p=None, num_samples=1, unknown="error",
                  beam=None):
    """Raise ValueError for option values that have no meaning (temperature None: the default,
    or none with a beam)."""
    if not isinstance(length, (int, np.integer)) or length < 0:
        raise ValueError(f"length must be an integer >= 0, not {length!r}")
    if temperature is not None and not temperature >= 0:  # also rejects NaN
        raise ValueError(f"temperature must be >= 0 (0 = greedy), not {temperature!r}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, not {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], not {top_p!r}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, not {num_samples!r}")
    if unknown not in UNKNOWN_CHOICES:
        raise ValueError(f"unknown must be one of {', '.join(UNKNOWN_CHOICES)}, not {unknown!r}")
    if beam is not None:
        check_beam(beam, temperature, top_k, top_p, num_samples)


PARAMETER_NAMES = {"beam": "beam", "temperature": "temperature", "top_k": "top_k",
                   "top_p": "top_p", "num_samples": "num_samples"}


def check_beam(beam, temperature=None, top_k=None, top_p=None, num_samples=1,
               names=PARAMETER_NAMES):
    """The beam-search option rules, for the Python API and the command line alike: raise
    ValueError naming the options as `names` does (the parameters; the command line passes
    its flags). Beam search keeps the most probable continuations, so it takes no sampling
    option, and it finds at most `beam` of them."""
    if not isinstance(beam, (int, np.integer)) or beam < 1:
        raise ValueError(f"{names['beam']} must be an integer >= 1, not {beam!r}")
    if (temperature, top_k, top_p) != (None, None, None):
        raise ValueError(f"{names['beam']} keeps the most probable continuations; it does not "
                         f"combine with {names['temperature']}, {names['top_k']} or "
                         f"{names['top_p']}")
    if num_samples > beam:
        raise ValueError(f"{names['num_samples']} {num_samples} is more than {names['beam']} "
                         f"{beam} keeps; ask for at most that many")


RECORD_BYTES_PER_CHAR = 24  # a record's text while it grows (a list of str), joined, as JSON


def memory_needed(model, num_samples, length, records=False):
    """Rough peak bytes of generating `num_samples` samples of `length` characters: the
    stepper's per-stream buffers, the picker's two float64 (N, V) rows, and the characters of
    every sample but the first, which the command line holds until the first is done; as
    records (`generate(records=True)`), every sample's whole text, held until it is done."""
    cfg = model.config
    H, V, cell = cfg.hidden_size, cfg.vocab_size, model.cell
    per_stream = ((len(cell.states) * cfg.num_layers + 2 * cell.G + 2) * H * model.dtype.itemsize
                  + V * (8 + 16))
    held = num_samples * RECORD_BYTES_PER_CHAR if records else (num_samples - 1) * 8
    return num_samples * per_stream + held * length


BEAM_TIME_LIMIT = 600.0  # seconds: a beam search, which prints nothing until it is done, at most


def _beam_fits(model, beam, length):
    """Whether a beam search of `beam` streams over `length` characters fits this machine:
    its memory within the limit of `refuse_oversized`, its time within BEAM_TIME_LIMIT."""
    memory, seconds = search_cost(model, beam, length)
    return fits_in_memory(memory_needed(model, beam, 0) + memory) and seconds <= BEAM_TIME_LIMIT


def largest_beam(model, length, below):
    """The largest beam width under `below` that fits (`_beam_fits`), or 0 if none does."""
    lo, hi = 0, below - 1  # lo fits (0: trivially), the answer is in [lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _beam_fits(model, mid, length):
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_size(model, length, num_samples=1, beam=None, records=False):
    """Refuse up front (CharRNNError, one sentence) a request that cannot fit in memory (as
    records, every sample's text is held until it is done), or a beam search that would need
    more memory than the machine has or run for more than BEAM_TIME_LIMIT before printing
    anything; the message names the largest beam that fits."""
    if beam is None:
        stream = "" if not records else " as JSON records, each holding its whole text,"
        advice = ("ask for a smaller --length, or use --format text, which streams."
                  if records else "ask for fewer --num-samples or a smaller --length.")
        refuse_oversized(memory_needed(model, num_samples, length, records),
                         f"generating {num_samples:,} sample(s) of {length:,} characters"
                         f"{stream}", advice)
        return
    if _beam_fits(model, beam, length):
        return
    most = largest_beam(model, length, beam)
    advice = (f"the largest --beam that fits is {most:,}." if most
              else "ask for a smaller --length.")
    memory, seconds = search_cost(model, beam, length)
    what = f"beam search with --beam {beam:,} over {length:,} characters"
    refuse_oversized(memory_needed(model, beam, 0) + memory, what, advice)
    raise CharRNNError(f"{what} would take about {_duration(seconds)}, more than the limit "
                       f"of {_duration(BEAM_TIME_LIMIT)}; {advice}")


def _duration(seconds):
    """'40 minutes', '35 hours', '12 days': a rough duration for a message."""
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size or unit == "minutes":
            return f"{seconds / size:,.0f} {unit}"
    return ""  # pragma: no cover


def prime_ids(vocab, prime, unknown="error"):
    """The ids that warm up the state: the prime's, or the start character's if it is empty.

    A prime character the vocabulary lacks raises CorpusError naming it (unknown="error"), is
    dropped (unknown="skip"), or is read as U+FFFD (unknown="replace", for a vocabulary that
    has it: `data.limit_vocab`); a prime with nothing left counts as empty.
    """
    missing = vocab.unknown_chars(prime) if prime else ""
    replaceable = vocab.replacement is not None
    if missing and (unknown == "error" or (unknown == "replace" and not replaceable)):
        lacks = "" if unknown == "error" else ", and it has no U+FFFD to stand for them"
        replace = ", or read them as U+FFFD with --unknown replace" if replaceable else ""
        raise CorpusError(
            f"the prime has {len(missing)} character(s) the model does not know{lacks}: "
            f"{format_chars(missing, 20)}; drop them with --unknown skip{replace}."
        )
    ids = (vocab.encode(prime, unknown="replace" if unknown == "replace" else "skip") if prime
           else np.empty(0, dtype=vocab.dtype))
    if ids.size == 0:
        start = vocab.encode(START_CHAR, unknown="skip")
        ids = start if start.size else np.zeros(1, dtype=vocab.dtype)
    return ids


def sample_context(vocab, ids, length=CONTEXT_CHARS):
    """A piece of training text to run the model over before the prime, as a str.

    The model learns with its state carried from batch to batch, so it almost never sees the
    all-zero state it would start from; from zeros its first characters are poor (after
    "ROMEO:" a Shakespeare model put 35% on "S" and 0% on a newline; after 256 characters of
    text ending at a paragraph break, 99.7% on the newline). The trainer saves the last
    `length` characters of the training text that end at its last paragraph break (blank line),
    else at a line break, else anywhere, and sampling reads them first, without printing them.
    ids: the training text's ids (1-D).
    """
    tail = np.asarray(ids[-16 * length:])
    end = tail.size
    newline = vocab.encode(START_CHAR, unknown="skip")
    if newline.size:
        breaks = np.flatnonzero(tail == newline[0]) + 1
        paragraphs = breaks[np.isin(breaks - 2, breaks - 1)]  # a newline right after a newline
        ends = paragraphs if paragraphs.size else breaks
        if ends.size:
            end = int(ends[-1])
    return vocab.decode(tail[max(0, end - length):end])


class Picker:
    """Chooses the next character of N streams from their logits, with reused buffers.

    Works row by row on 1-D arrays: for the usual handful of streams that is faster than
    numpy's axis-wise reductions, which cost several microseconds each on a (1, V) array.
    """

    def __init__(self, N, V, temperature, top_k=None, top_p=None, banned=None):
        """banned: a character id never to pick (U+FFFD, see `data.Vocab`), or None."""
        self.banned = banned
        # below 1e-200, 1/temperature could overflow: such a temperature is greedy anyway
        self.greedy = temperature < 1e-200 or top_k == 1
        self._inv_temp = 0.0 if self.greedy else 1.0 / temperature
        self.top_k = top_k if top_k is not None and top_k < V else None  # k >= V keeps all
        self.top_p = top_p if top_p is not None and top_p < 1 else None
        self._z = np.empty((N, V))  # float64 scaled logits, then unnormalised probabilities
        self._cum = np.empty((N, V))
        self._ids = np.empty(N, dtype=np.intp)

    def pick(self, logits, u):
        """logits (N, V); u (N,) uniform numbers in [0, 1) (None when greedy). Returns (N,) ids,
        a buffer that the next call overwrites."""
        for n, row in enumerate(logits):
            z, cum = self._z[n], self._cum[n]
            if self.greedy:
                if self.banned is not None:
                    row = z  # a copy to mask: the logits are the caller's
                    np.copyto(z, logits[n])
                    z[self.banned] = -np.inf
                self._ids[n] = row.argmax()
                continue
            np.subtract(row, row[row.argmax()], z)  # <= 0, so exp cannot overflow
            np.multiply(z, self._inv_temp, z)
            np.exp(z, z)
            if self.banned is not None:
                z[self.banned] = 0.0
            if self.top_k is not None:
                kth = np.partition(z, z.size - self.top_k)[z.size - self.top_k]
                z[z < kth] = 0.0
            if self.top_p is not None:
                order = np.argsort(-z, kind="stable")  # most probable first; ties by id
                csum = np.cumsum(z[order])
                keep = csum.searchsorted(self.top_p * csum[-1]) + 1  # smallest set reaching p
                z[order[keep:]] = 0.0
            np.add.accumulate(z, 0, None, cum)  # cheaper per call than np.cumsum's wrapper
            total = float(cum[-1])
            # the first character whose cumulative sum exceeds u * total; keeping the target
            # below the total means it always lands on a character of non-zero probability
            target = min(u[n] * total, math.nextafter(total, 0.0))
            self._ids[n] = cum.searchsorted(target, side="right")
        return self._ids


def generate(model, vocab, length, temperature=None, top_k=None, top_p=None, prime="", rng=None,
             num_samples=1, unknown="error", context="", stop=(), beam=None, records=False,
             progress=None):
    """Generate `num_samples` samples of `length` characters at most, as a stream.

    By default returns an iterator yielding, per generated position, a tuple of `num_samples`
    str, what each sample adds to its text there (the prime is not repeated): one character,
    or with stop texts (`stop`, see `charrnn.stops`) "" while characters are held back (they
    might begin a stop text), the held characters with the next when they do not, and "" after
    the sample stopped. Joined, a sample's strings are its text. With records=True it yields
    instead one dict per sample (see the module docstring), in order, each as soon as that
    sample and those before it are done.

    The N samples run as one batch through the model. `temperature` None is the default
    (DEFAULT_TEMPERATURE). `rng` is a numpy Generator, or a seed for one (None: fresh entropy;
    with records=True a fresh seed, which the records give). `context` (see `sample_context`)
    is read before the prime and not printed. `beam`=B returns the `num_samples` (at most B)
    best continuations found by beam search (`charrnn.beam`; no temperature, top_k, top_p)
    instead, computed before this returns; `progress(1)` is called after each of its steps.
    Bad option values raise ValueError, unknown prime characters CorpusError (see
    `prime_ids`) and oversized requests CharRNNError (see `check_size`), all here, before the
    first character, as does the warm-up on the prime.
    """
    check_options(length, temperature, top_k, top_p, num_samples, unknown, beam)
    stops = Stops(vocab, stop)
    check_size(model, length, num_samples, beam, records)
    if records and rng is None and beam is None:
        rng = int(np.random.SeedSequence().entropy % 2**32)
    options = {"seed": int(rng) if isinstance(rng, (int, np.integer)) and beam is None else None,
               "length": length, "temperature": None, "top_k": top_k, "top_p": top_p,
               "beam": beam, "stops": list(stops.given)}
    stepper, logits = _primed(model, vocab, prime, unknown, context, beam or num_samples)
    banned = vocab.replacement if vocab.size > 1 else None  # never generated
    if beam is not None:
        found = beam_search(stepper, logits, length, num_samples, stops, banned, progress)
        samples = [_record(n, prime, vocab.decode(b.ids[: b.ids.size - len(b.stop or "")]),
                           b.stop, -b.logp, b.ids.size, options) for n, b in enumerate(found)]
        return iter(samples) if records else itertools.zip_longest(
            *(s["text"] for s in samples), fillvalue="")
    if temperature is None:
        temperature = DEFAULT_TEMPERATURE
    options["temperature"] = temperature
    picker = Picker(num_samples, vocab.size, temperature, top_k, top_p, banned)
    picks = _picks(stepper, picker, logits, length, np.random.default_rng(rng))
    if not stops and not records:  # the fast path: each sample gets one character a step
        chars = vocab.chars
        return (tuple([chars[j] for j in ids]) for _, ids in picks)
    tracker = _Tracker(num_samples, vocab.chars, stops, length, scored=records)
    return _records(picks, tracker, prime, options) if records else _released(picks, tracker)


def warmup_ids(vocab, prime, unknown="error", context=""):
    """(context ids, prime ids): what a sample reads, in that order, before its first
    character: the context (see `sample_context`), then the prime's ids; without a context,
    an empty prime reads the start character instead (see `prime_ids`). The context is the
    same for every sample of a checkpoint, so a server reads it once."""
    ids = prime_ids(vocab, prime, unknown)
    context_ids = vocab.encode(context, unknown="skip") if context else ids[:0]
    if context_ids.size:  # it ends at a line break: no start character
        return context_ids, ids if prime else ids[:0]
    return context_ids, ids


def _primed(model, vocab, prime, unknown, context, N):
    """A Stepper of N streams that has read the context and the prime (or the start
    character), and its (N, V) logits for the first generated character."""
    ids = np.concatenate(warmup_ids(vocab, prime, unknown, context))
    stepper = Stepper(model, N)
    batch = np.empty(N, dtype=np.intp)
    with single_threaded_blas():
        for i in ids:
            batch.fill(i)
            logits = stepper.step(batch)
    return stepper, logits


def _picks(stepper, picker, logits, length, rng, block=1024):
    """The generating loop: yields, per position, the (N, V) logits and the (N,) ids picked
    from them (buffers that the next position overwrites), then feeds the ids back.
    While it is open, BLAS runs single-threaded in this process (set once for the whole stream:
    setting it per character would cost more than a step)."""
    draws = None if picker.greedy else uniforms(rng, length, stepper.N, block)
    with single_threaded_blas():
        for i in range(length):
            ids = picker.pick(logits, None if draws is None else next(draws))
            yield logits, ids
            if i + 1 < length:
                logits = stepper.step(ids)


def uniforms(rng, length, N, block=1024):
    """The uniform numbers a sample of `length` characters draws from `rng` (N samples: an (N,)
    row a position), one row per position: drawn `block` positions at a time, the same
    numbers in the same order as one draw per position, for a fraction of the calls. What
    every non-greedy sampler draws, so that a seed gives the same text everywhere."""
    for i in range(length):
        if i % block == 0:
            us = rng.random((min(block, length - i), N))
        yield us[i % block]


class _Tracker:
    """What each of N samples has generated: the text it released, the characters it holds
    back (they may begin a stop text), the log-probability of its characters (if `scored`),
    and whether, and on which stop text, it ended."""

    def __init__(self, N, chars, stops, length, scored):
        self.chars, self.stops, self.length, self.scored = chars, stops, length, scored
        self.texts = [[] for _ in range(N)]  # released pieces
        self.held = [""] * N
        self.stop = [None] * N
        self.done = np.full(N, length == 0)
        self.logp = np.zeros(N)  # float64 sums over each sample's characters
        self.count = np.zeros(N, dtype=np.int64)
        self.tails = stops.tails(N)
        self.position = 0
        self._rows = np.arange(N)

    def add(self, logits, ids):
        """Take the ids (N,) picked from logits (N, V) at the next position; return the tuple
        of what each sample releases there."""
        self.position += 1
        last = self.position == self.length
        live = ~self.done
        self.count += live
        if self.scored:
            self.logp += np.where(live, log_softmax(logits)[self._rows, ids], 0.0)
        hits = self.stops.finishing(self.tails)[self._rows, ids] if self.stops else None
        self.stops.push(self.tails, ids)
        out = []
        for n, j in enumerate(ids.tolist()):
            if not live[n]:
                out.append("")
                continue
            text = self.held[n] + self.chars[j]
            keep = 0
            if hits is not None and hits[n]:
                self.stop[n] = self.stops.texts[hits[n] - 1]
                text = text[: -len(self.stop[n])]  # held back until now: never released
                self.done[n] = True
            elif self.stops and not last:
                keep = self.stops.pending(text)
            self.held[n] = text[len(text) - keep:]
            out.append(text[: len(text) - keep])
            self.texts[n].append(out[-1])
        if last:
            self.done[:] = True
        return tuple(out)

    def record(self, n, prime, options):
        """Sample n as data (see the module docstring)."""
        return _record(n, prime, "".join(self.texts[n]), self.stop[n], -self.logp[n],
                       self.count[n], options)


def _record(n, prime, text, stop, nats, chars, options):
    """A sample as data: index n, the prime, its text, the stop text that ended it (or None),
    the summed negative log-probability `nats` of its `chars` characters, and the options."""
    per_char = float(nats) / int(chars) if chars else None
    return {"sample": n, "prime": prime, "text": text, "stop": stop, "chars": int(chars),
            "nats_per_char": per_char,
            "bits_per_char": None if per_char is None else bits(per_char), **options}


def _released(picks, tracker):
    """What each sample releases at each position (see `_Tracker.add`), until all are done."""
    for logits, ids in picks:
        yield tracker.add(logits, ids)
        if tracker.done.all():
            return


def _records(picks, tracker, prime, options):
    """Yield the samples' records in order, each once it and those before it are done. On
    Ctrl-C (KeyboardInterrupt while generating) the samples not yet yielded are yielded as
    they stand, marked "interrupted": true, before the interruption goes on: what was
    generated is not lost, as in text mode."""
    n, N = 0, tracker.done.size
    try:
        for _ in itertools.chain(_released(picks, tracker), [None]):
            while n < N and tracker.done[n]:
                yield tracker.record(n, prime, options)
                n += 1
    except KeyboardInterrupt:
        for k in range(n, N):
            yield {**tracker.record(k, prime, options), "interrupted": True}
        raise


def sample_text(model, vocab, length, **options):
    """The prime plus the generated text, per sample: a list of `num_samples` str.

    Takes the options of `generate`, except records.
    """
    columns = list(generate(model, vocab, length, **options))
    prime = options.get("prime", "")
    n = len(columns[0]) if columns else options.get("num_samples", 1)
    return [prime + "".join(col[s] for col in columns) for s in range(n)]


class LoadedModel:
    """A model with its vocabulary, ready to write text; what `charrnn.load` returns.

        model = charrnn.load("checkpoints/shakespeare")
        print(model.sample(200, temperature=0.7, prime="ROMEO:", seed=1))
        for ch in model.generate(1000):
            print(ch, end="", flush=True)

    Attributes: `model` (CharRNN), `vocab` (Vocab), `config` (ModelConfig), `training` (the
    checkpoint's `TrainingState`: .step, .epoch, .best_val_loss, ...; None for a bare model),
    `path` (the file loaded).
    """

    def __init__(self, model, vocab, training=None, path=None):
        self.model, self.vocab = model, vocab
        self.training = training
        self.path = path

    @property
    def config(self):
        return self.model.config

    def __repr__(self):
        c = self.config
        return (f"<charrnn model: {c.num_layers}x{c.hidden_size} {c.cell}, "
                f"{self.vocab.size} characters{f', from {self.path}' if self.path else ''}>")

    def generate(self, length=500, temperature=None, prime="", seed=None, top_k=None, top_p=None,
                 unknown="error", stop=(), beam=None, records=False, num_samples=1):
        """Yield the generated characters one at a time (not the prime): `length` of them, or
        fewer when a stop text (`stop`, a sequence of str) ends the sample.

        seed: an int (same seed and options, same text), a numpy Generator, or None for fresh
        entropy. temperature 0 is greedy (None: DEFAULT_TEMPERATURE); see the module docstring
        for top_k and top_p. beam=B: the most probable text beam search finds (`charrnn.beam`).
        records=True yields instead one dict per sample (see the module docstring), for
        `num_samples` samples.
        """
        if num_samples != 1 and not records:
            raise ValueError("num_samples other than 1 needs records=True")
        stream = generate(self.model, self.vocab, length, temperature=temperature, top_k=top_k,
                          top_p=top_p, prime=prime, rng=seed, unknown=unknown,
                          context=self.training.sample_context if self.training else "",
                          stop=stop, beam=beam, records=records, num_samples=num_samples)
        return stream if records else (ch for pieces in stream for ch in pieces[0])

    def sample(self, length=500, temperature=None, prime="", seed=None, top_k=None, top_p=None,
               unknown="error", stop=(), beam=None):
        """The prime followed by the generated text, as one str."""
        return prime + "".join(self.generate(length, temperature, prime, seed, top_k, top_p,
                                             unknown, stop, beam))

    def explain(self, text, **options):
        """What the model makes of `text`: a `charrnn.explain.Explanation` of numpy arrays
        (per-character nats, top-k predictions, activations, finder, gate saturation,
        gradient flow). Takes the options of `charrnn.explain.explain`."""
        from charrnn.explain import explain

        return explain(self.model, self.vocab, text, **options)
