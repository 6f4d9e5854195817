"""Stop texts: reading them from the command line, and finding where generated text ends with
one; what plain sampling, batches and beam search share.

A sample stops as soon as its generated characters end with one of its stop texts; the stop
text is not part of the sample's text. Only generated characters count: a stop text in the
prime, or one that begins in the prime and ends in the generated text, does not stop it (the
prime is printed before anything is generated, so none of it could be taken back). When
several stop texts end at the same character, the longest is the one that stopped the sample.
"""

import re

import numpy as np

_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.|$)", re.S)
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\"}


def unescape(text):
    """`text` with the escapes `charrnn.data.format_chars` writes read back: \\n, \\r, \\t, \\\\
    (a backslash), \\xHH, \\uHHHH and \\UHHHHHHHH. Any other backslash raises ValueError: a
    shell would otherwise let a mistyped escape through as two characters."""

    def replace(match):
        code = match.group(1)
        if code in _SIMPLE:
            return _SIMPLE[code]
        if len(code) > 1:
            value = int(code[1:], 16)
            if value < 0x110000:
                return chr(value)
        shown = "the escape \\" + code if code else "a lone \\ at the end"
        raise ValueError(f"cannot read {shown}; use \\n, \\r, \\t, \\\\, \\xHH, "
                         "\\uHHHH or \\UHHHHHHHH")

    return _ESCAPE.sub(replace, text)


class Stops:
    """The stop texts of a sampling request, as ids of a vocabulary.

    Each stream keeps the ids of its last `width` generated characters in one row of a `tails`
    array (-1 where nothing was generated yet, so the prime never matches); `finishing` reads
    which next character would complete a stop text, for every stream and character at once.
    Attributes: `texts` (the stop texts that can occur, shortest first), `unmatchable` (those
    with a character the vocabulary lacks: the model can never generate them), `given` (every
    text as given). False when no text can occur.
    """

    def __init__(self, vocab, texts=()):
        self.given = tuple(texts)
        for text in self.given:
            if not isinstance(text, str) or not text:
                raise ValueError(f"a stop text must be a non-empty str, not {text!r}")
        distinct = dict.fromkeys(self.given)
        self.unmatchable = tuple(t for t in distinct if vocab.unknown_chars(t))
        self.texts = tuple(sorted((t for t in distinct if t not in self.unmatchable),
                                  key=lambda t: (len(t), t)))  # the longest match is set last
        self._ids = [vocab.encode(t).astype(np.intp) for t in self.texts]
        self.width = max(map(len, self.texts), default=1) - 1
        self._V = vocab.size

    def __bool__(self):
        return bool(self.texts)

    def tails(self, n):
        """The tails of n streams that have generated nothing: (n, width), all -1."""
        return np.full((n, self.width), -1, dtype=np.intp)

    def push(self, tails, ids):
        """Append each stream's next id (ids (n,)) to its row of `tails`, in place."""
        if self.width:
            tails[:, :-1] = tails[:, 1:]
            tails[:, -1] = ids

    def finishing(self, tails):
        """(n, V) int: for stream r (row r of `tails`) and next character c, 1 + the index in
        `texts` of the stop text that c would complete (the longest), or 0."""
        out = np.zeros((tails.shape[0], self._V), dtype=np.int32)
        for k, ids in enumerate(self._ids, 1):
            prefix = ids[:-1]
            ready = np.all(tails[:, self.width - prefix.size:] == prefix, axis=1)
            out[ready, ids[-1]] = k
        return out

    def pending(self, text):
        """How many trailing characters of `text` could be the beginning of a stop text: a
        stream holds them back until the next characters decide."""
        return max((k for t in self.texts for k in range(len(t) - 1, 0, -1)
                    if text.endswith(t[:k])), default=0)
