"""Turning a model into text: priming, temperature / top-k / top-p / greedy sampling, the
streaming generator, and `score`, a model's loss on a text with carried state.

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
   whose probability adds up to at least p; what is kept is renormalised.
3. One uniform number u = rng.random() per stream and step picks the character whose interval
   of the cumulative distribution holds u, so a seed fixes the output. temperature 0 or
   top_k 1 picks the most probable character (argmax, the first on ties) without a draw, so
   `top_k=1` gives exactly the text of `temperature=0`.
4. The character is fed back, and so on: N samples run as one batch of N streams.
"""

import math

import numpy as np

from charrnn.data import format_chars
from charrnn.errors import CorpusError
from charrnn.blas import single_threaded_blas
from charrnn.stepper import Stepper

START_CHAR = "\n"  # fed first when there is no prime nor context (else the character with id 0)
CONTEXT_CHARS = 256  # length of the training-text context a checkpoint keeps for sampling
UNKNOWN_CHOICES = ("error", "skip")


def check_options(length, temperature, top_k=None, top_p=None, num_samples=1, unknown="error"):
    """Raise ValueError for option values that have no meaning."""
    if not isinstance(length, (int, np.integer)) or length < 0:
        raise ValueError(f"length must be an integer >= 0, not {length!r}")
    if not temperature >= 0:  # also rejects NaN
        raise ValueError(f"temperature must be >= 0 (0 = greedy), not {temperature!r}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, not {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], not {top_p!r}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, not {num_samples!r}")
    if unknown not in UNKNOWN_CHOICES:
        raise ValueError(f"unknown must be 'error' or 'skip', not {unknown!r}")


def memory_needed(model, num_samples, length):
    """Rough peak bytes of generating `num_samples` samples of `length` characters: the
    stepper's per-stream buffers, the picker's two float64 (N, V) rows, and the characters of
    every sample but the first, which the command line holds until the first is done."""
    cfg = model.config
    H, V, cell = cfg.hidden_size, cfg.vocab_size, model.cell
    per_stream = ((len(cell.states) * cfg.num_layers + 2 * cell.G + 2) * H * model.dtype.itemsize
                  + V * (8 + 16))
    return num_samples * per_stream + (num_samples - 1) * length * 8


def prime_ids(vocab, prime, unknown="error"):
    """The ids that warm up the state: the prime's, or the start character's if it is empty.

    A prime character the vocabulary lacks raises CorpusError naming it (unknown="error") or is
    dropped (unknown="skip"); a prime with nothing left counts as empty.
    """
    missing = vocab.unknown_chars(prime) if prime else ""
    if missing and unknown == "error":
        raise CorpusError(
            f"the prime has {len(missing)} character(s) the model does not know: "
            f"{format_chars(missing, 20)}; drop them with --unknown skip."
        )
    ids = vocab.encode(prime, unknown="skip") if prime else np.empty(0, dtype=vocab.dtype)
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

    def __init__(self, N, V, temperature, top_k=None, top_p=None):
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
            if self.greedy:
                self._ids[n] = row.argmax()
                continue
            z, cum = self._z[n], self._cum[n]
            np.subtract(row, row[row.argmax()], z)  # <= 0, so exp cannot overflow
            np.multiply(z, self._inv_temp, z)
            np.exp(z, z)
            if self.top_k is not None:
                kth = np.partition(z, z.size - self.top_k)[z.size - self.top_k]
                z[z < kth] = 0.0
            if self.top_p is not None:
                order = np.argsort(-z, kind="stable")  # most probable first; ties by id
                csum = np.cumsum(z[order])
                keep = csum.searchsorted(self.top_p * csum[-1]) + 1  # smallest set reaching p
                z[order[keep:]] = 0.0
            np.add.accumulate(z, 0, None, cum)  # np.cumsum's wrapper costs 3 us more
            total = float(cum[-1])
            # the first character whose cumulative sum exceeds u * total; keeping the target
            # below the total means it always lands on a character of non-zero probability
            target = min(u[n] * total, math.nextafter(total, 0.0))
            self._ids[n] = cum.searchsorted(target, side="right")
        return self._ids


def generate(model, vocab, length, temperature=0.8, top_k=None, top_p=None, prime="", rng=None,
             num_samples=1, unknown="error", context=""):
    """Stream `length` generated characters of `num_samples` samples.

    Returns an iterator yielding, per generated position, a tuple of `num_samples` characters
    (one per sample); the prime is not repeated. The N samples run as one batch through the
    model. `rng` is a numpy Generator, or a seed for one (None: fresh entropy). Bad option
    values raise ValueError, unknown prime characters CorpusError (see `prime_ids`) — both here,
    before the first character, as does the warm-up on the prime. `context` (see
    `sample_context`) is read before the prime and not printed.
    """
    check_options(length, temperature, top_k, top_p, num_samples, unknown)
    ids = prime_ids(vocab, prime, unknown)
    context_ids = vocab.encode(context, unknown="skip") if context else ids[:0]
    if context_ids.size:  # read first, not printed; it ends at a line break: no start character
        ids = np.concatenate([context_ids, ids if prime else ids[:0]])
    rng = np.random.default_rng(rng)
    stepper = Stepper(model, num_samples)
    batch = np.empty(num_samples, dtype=np.intp)
    with single_threaded_blas():
        for i in ids:
            batch.fill(i)
            logits = stepper.step(batch)
    picker = Picker(num_samples, vocab.size, temperature, top_k, top_p)
    return _stream(stepper, picker, logits, vocab.chars, length, rng)


def _stream(stepper, picker, logits, chars, length, rng, block=1024):
    """The generating loop. While it is open, BLAS runs single-threaded in this process (set
    once for the whole stream: setting it per character would cost more than a step).
    Uniform numbers are drawn `block` steps at a time: the same numbers, in the same order, as
    one draw per step, for a fraction of the calls."""
    N = stepper.N
    with single_threaded_blas():
        for i in range(length):
            if picker.greedy:
                u = None
            elif i % block == 0:
                us = rng.random((min(block, length - i), N))
                u = us[0]
            else:
                u = us[i % block]
            ids = picker.pick(logits, u)
            yield tuple([chars[j] for j in ids])
            if i + 1 < length:
                logits = stepper.step(ids)


def sample_text(model, vocab, length, **options):
    """The prime plus `length` generated characters, per sample: a list of `num_samples` str.

    Takes the options of `generate`.
    """
    columns = list(generate(model, vocab, length, **options))
    prime = options.get("prime", "")
    n = options.get("num_samples", 1)
    return [prime + "".join(col[s] for col in columns) for s in range(n)]


class Sampler:
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

    def generate(self, length=500, temperature=0.8, prime="", seed=None, top_k=None, top_p=None,
                 unknown="error"):
        """Yield `length` generated characters one at a time (not the prime).

        seed: an int (same seed and options, same text), a numpy Generator, or None for fresh
        entropy. temperature 0 is greedy; see the module docstring for top_k and top_p.
        """
        stream = generate(self.model, self.vocab, length, temperature=temperature, top_k=top_k,
                          top_p=top_p, prime=prime, rng=seed, unknown=unknown,
                          context=self.training.sample_context if self.training else "")
        return (chars[0] for chars in stream)

    def sample(self, length=500, temperature=0.8, prime="", seed=None, top_k=None, top_p=None,
               unknown="error"):
        """The prime followed by `length` generated characters, as one str."""
        return prime + "".join(self.generate(length, temperature, prime, seed, top_k, top_p,
                                             unknown))


def score(model, ids, chunk=256, progress=None):
    """The summed cross-entropy (nats) of predicting ids[1:] from ids[:-1], and its count.

    One stream from the zero state, carried across windows of `chunk` characters: every
    character is predicted from all the text before it, exactly as sampling would.
    `progress(n)`, if given, is called with the number of characters each window scored.
    """
    total = scored = 0
    for total, done in score_steps(model, ids, chunk):
        if progress is not None:
            progress(done - scored)
        scored = done
    return total, scored


def score_steps(model, ids, chunk=256):
    """`score`, one window at a time: yields (summed nats, characters scored) so far after
    each window, so that an interrupted evaluation still has what it scored."""
    ids = np.asarray(ids)
    n = ids.size - 1
    if n < 1:
        raise CorpusError("the text needs at least 2 characters the model knows to be scored.")
    state = model.init_state(1)
    total = 0.0
    with single_threaded_blas():  # one stream: products of matrices by single columns
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            x = ids[start:stop][None, :]
            y = ids[start + 1 : stop + 1][None, :]
            loss, state = model.loss(x, y, state)
            total += float(loss) * (stop - start)
            yield total, stop
