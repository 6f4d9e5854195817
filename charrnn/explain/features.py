"""Per-character features of a text, the questions `charrnn explain --find` asks every unit:
is the reader inside quotes, how far into the line is it, is this a capital letter...

Each feature describes the moment right after a character is read, the moment a recurrent
state describes too: feature[i] is about text[:i + 1]. So the opening quote is inside the
quotes and the closing one is not, a newline is at line position 0, and a feature never
looks ahead. Everything is computed with whole-array numpy operations over the text's code
points; character classes (upper case, digit, ...) are Python's own `str` methods, asked once
per distinct character.
"""

import numpy as np

# name -> what it measures, in the order the finder lists them (also `charrnn explain --help`)
FEATURES = {
    "quotes": 'inside double quotes: after an opening " (or “) until its closing one',
    "brackets": "inside parentheses or brackets: more ( [ { than ) ] } so far (depth > 0)",
    "line_position": "characters read since the last newline (0 on the newline)",
    "word_start": "the first letter or digit of a word",
    "in_word": "a letter or digit (inside a word)",
    "uppercase": "an upper-case letter",
    "digit": "a digit",
    "whitespace": "a space, tab, newline or other white space",
    "sentence_end": "after . ! or ?: until the next character that is not white space",
    "indent": "indentation: leading spaces or tabs of the line so far",
}

_OPENERS, _CLOSERS = "([{", ")]}"
_SENTENCE_ENDS = ".!?"


def _classes(codepoints, tests):
    """{name: (n,) bool} for each `tests[name]`, a predicate on one character, asked once per
    distinct code point."""
    distinct, inverse = np.unique(codepoints, return_inverse=True)
    chars = [chr(c) for c in distinct]
    return {name: np.array([test(ch) for ch in chars], dtype=bool)[inverse]
            for name, test in tests.items()}


def _depth(steps):
    """The running depth of +1/-1/0 steps, never below 0 (a stray closer is ignored): the
    reflected walk W_t = max(0, W_{t-1} + steps_t), in closed form S_t - min(0, min_{s<=t} S_s)
    with S the cumulative sum."""
    S = np.cumsum(steps)
    return S - np.minimum(np.minimum.accumulate(S), 0)


def _last_index(mask):
    """(n,) the index of the last True of `mask` at or before each position, -1 if none."""
    return np.maximum.accumulate(np.where(mask, np.arange(mask.size), -1))


def text_features(text):
    """{name: (n,) float64} for every feature of FEATURES, n = len(text)."""
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)
    n = cps.size
    index = np.arange(n)
    is_ = _classes(cps, {
        "word": str.isalnum, "upper": str.isupper, "digit": str.isdigit, "space": str.isspace,
        "end": lambda c: c in _SENTENCE_ENDS,
    })
    newline = cps == ord("\n")
    blank = (cps == ord(" ")) | (cps == ord("\t"))

    straight = np.cumsum(cps == ord('"')) % 2 == 1  # an odd number of " so far
    curly = _depth((cps == 0x201C).astype(np.int64) - (cps == 0x201D))
    brackets = _depth(np.isin(cps, [ord(c) for c in _OPENERS]).astype(np.int64)
                      - np.isin(cps, [ord(c) for c in _CLOSERS]))

    last_newline = _last_index(newline)
    line_start = last_newline + 1  # the newline itself starts the next line
    line_position = index - last_newline  # (no newline yet: index + 1)

    previous_word = np.r_[False, is_["word"][:-1]]
    last_visible = _last_index(~is_["space"])
    sentence_end = (last_visible >= 0) & is_["end"][np.maximum(last_visible, 0)]

    # indentation: the blanks between the line's start and its first other character, or, while
    # the line has only blanks so far, all of them
    visible = ~blank & ~newline
    seen_visible = _last_index(visible) >= line_start
    line_id = np.cumsum(newline)
    segment_starts = np.flatnonzero(np.r_[True, line_id[1:] != line_id[:-1]])
    first_visible = np.minimum.reduceat(np.where(visible, index, n), segment_starts)
    indent = np.where(seen_visible, first_visible[line_id - line_id[0]] - line_start,
                      index - line_start + 1)

    values = {
        "quotes": straight | (curly > 0),
        "brackets": brackets > 0,
        "line_position": line_position,
        "word_start": is_["word"] & ~previous_word,
        "in_word": is_["word"],
        "uppercase": is_["upper"],
        "digit": is_["digit"],
        "whitespace": is_["space"],
        "sentence_end": sentence_end,
        "indent": indent,
    }
    return {name: values[name].astype(np.float64) for name in FEATURES}
