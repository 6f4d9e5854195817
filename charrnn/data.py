"""Text in, ids out: reading a corpus, the vocabulary, the train/val split, the truncated-BPTT
batch stream and the built-in demo corpus."""

import codecs
import os
import sys
import sysconfig
from pathlib import Path

import numpy as np

from charrnn import files
from charrnn.config import UNKNOWN_CHOICES
from charrnn.errors import CharRNNError, CorpusError

_N_CODEPOINTS = 0x110000  # every Unicode code point, surrogates included
_CHUNK = 1 << 22  # characters handled at a time: bounds the temporaries to ~50 MB
_WIDE_ENCODINGS = ("utf-16", "utf-32")  # codec families where NUL bytes are normal text
REPLACEMENT = "\ufffd"  # stands for every character a vocabulary lacks (see `limit_vocab`)
_DEMO_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3",
                   "turtledemo", "__pycache__"}


def read_text(path, encoding="utf-8", empty="charrnn needs text to learn from"):
    """Read a whole text file and return it as one str.

    The bytes are read once and decoded once with `encoding` (strict), without newline
    translation, so `\\r\\n` stays as it is in the file. One leading byte-order mark (U+FEFF)
    is dropped: it marks the encoding and is not part of the text.
    Every problem (missing, directory, unreadable, empty, binary, undecodable file, unknown
    encoding) raises CorpusError with one sentence naming the path; `empty` says, for an
    empty file, what the file was for.
    """
    codec = text_codec(encoding)
    name = str(path)
    if os.path.isdir(path):
        raise CorpusError(f"{name} is a directory, not a text file.")

    def refuse_binary(first):  # before the rest is read: /dev/zero is refused at once
        if not codec.name.startswith(_WIDE_ENCODINGS) and b"\0" in first:
            bom = _bom_encoding(first)
            if bom:
                raise CorpusError(f"{name} looks like {bom} text, not {codec.name}; pass it "
                                  f"with --encoding {bom}.")
            raise CorpusError(f"{name} looks like a binary file, not text (it contains NUL "
                              "bytes).")

    try:
        data = files.read_bounded(path, name, "use a smaller text file.", refuse_binary)
    except FileNotFoundError:
        raise CorpusError(f"{name} does not exist.") from None
    except PermissionError:
        raise CorpusError(f"{name} cannot be read: permission denied.") from None
    except OSError as e:
        raise CorpusError(f"{name} cannot be read: {e.strerror or e}.") from None
    try:
        text = data.decode(codec.name)
    except UnicodeDecodeError as e:
        where = (f"byte 0x{e.object[e.start]:02x} at offset {e.start}"
                 if isinstance(e.object, bytes) and e.start < len(e.object) else "its end")
        raise CorpusError(
            f"{name} is not valid {codec.name}: {where} cannot be decoded; if the file uses "
            "another encoding, pass it with --encoding (e.g. --encoding "
            f"{_guess_encoding(data, codec.name)})."
        ) from None
    except (UnicodeError, ValueError):  # codecs such as idna and punycode raise these
        raise CorpusError(f"{name} cannot be decoded as {codec.name}; if the file uses another "
                          "encoding, pass it with --encoding.") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text:
        raise CorpusError(f"{name} is empty; {empty}.")
    return text


def text_codec(encoding):
    """The `codecs.CodecInfo` of `encoding`, if it decodes bytes to text; CorpusError otherwise
    (an unknown name, a bytes-to-bytes codec such as 'base64', or 'undefined')."""
    try:
        codec = codecs.lookup(encoding)
        try:
            b"a".decode(codec.name)  # LookupError for codecs that do not make text
        except UnicodeDecodeError:  # a text codec that needs more bytes, such as utf-16
            pass
    except (LookupError, UnicodeError, ValueError):
        raise CorpusError(f"unknown encoding {encoding!r}; pass one Python knows for text, "
                          "such as utf-8, latin-1 or cp1252.") from None
    return codec


def _bom_encoding(data):
    """'utf-32' or 'utf-16' if `data` starts with that family's byte-order mark, else None."""
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def _guess_encoding(data, failed):
    """An encoding to suggest when `failed` could not decode `data`: the one its byte-order
    mark names, else utf-8 if that works, else latin-1 (which decodes any bytes)."""
    bom = _bom_encoding(data)
    if bom and not failed.startswith(bom):
        return bom
    if failed != "utf-8":
        try:
            data.decode("utf-8")
            return "utf-8"
        except UnicodeDecodeError:
            pass
    return "latin-1"


def _codepoint_chunks(text):
    """Yield (start, code points) for consecutive slices of `text`.

    The code points are a read-only (n,) uint32 array of at most _CHUNK elements; lone
    surrogates pass through as their own code points.
    """
    for start in range(0, len(text), _CHUNK):
        raw = text[start:start + _CHUNK].encode("utf-32-le", "surrogatepass")
        yield start, np.frombuffer(raw, dtype="<u4")


def _chars(codepoints):
    """The str whose characters are the given code points (any integer array)."""
    return np.asarray(codepoints).astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")


def _present(text):
    """A (0x110000,) bool table: True at each code point that occurs in `text`."""
    seen = np.zeros(_N_CODEPOINTS, dtype=bool)
    for _, cps in _codepoint_chunks(text):
        seen[cps] = True
    return seen


def _id_dtype(size):
    """The smallest unsigned integer dtype that holds the ids 0 .. size - 1."""
    for dtype in (np.uint8, np.uint16):
        if size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.uint32)


class Vocab:
    """The characters a model knows; a character's id is its position in `chars`.

    Built from a text, the characters are sorted by code point. `extended` appends characters
    after the existing ones, so that every character keeps its id (fine-tuning on a new text):
    such a vocabulary is no longer sorted, and its saved form (`to_json`) keeps the order.
    A vocabulary that holds REPLACEMENT (U+FFFD) lets it stand for every character it lacks
    (`--min-count`, `--max-vocab`; a U+FFFD of the text itself is the same character): such a
    text encodes with unknown="replace", and sampling never generates it.
    Attributes: `chars` (str, unique, in id order), `size` (== len), `dtype` (the smallest
    unsigned dtype that holds every id: uint8 up to 256 characters, uint16 up to 65,536, else
    uint32), `replacement` (the id of REPLACEMENT, or None).
    """

    def __init__(self, chars):
        """Build the vocabulary of the distinct characters of `chars` (any str, any length)."""
        self._set(np.flatnonzero(_present(chars)).astype(np.uint32))

    def _set(self, codepoints):
        """Take `codepoints` ((size,) distinct uint32) as the characters, in id order."""
        if codepoints.size == 0:
            raise CorpusError("cannot build a vocabulary from an empty text.")
        self._codepoints = codepoints  # (size,) uint32, id -> code point
        self._lut = np.full(_N_CODEPOINTS, -1, dtype=np.int32)  # code point -> id, -1 unknown
        self._lut[codepoints] = np.arange(codepoints.size, dtype=np.int32)
        self.chars = _chars(codepoints)
        self.size = int(codepoints.size)
        self.dtype = _id_dtype(self.size)
        found = int(self._lut[ord(REPLACEMENT)])
        self.replacement = found if found >= 0 else None

    @classmethod
    def _in_order(cls, codepoints):
        """The vocabulary of these distinct code points, in this order."""
        vocab = cls.__new__(cls)
        vocab._set(np.asarray(codepoints, dtype=np.uint32))
        return vocab

    def extended(self, text):
        """This vocabulary with the characters of `text` it lacks appended, in code-point
        order: every character it had keeps its id."""
        new = self.unknown_chars(text)
        if not new:
            return self
        added = np.frombuffer(new.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        return Vocab._in_order(np.concatenate([self._codepoints, added]))

    @classmethod
    def from_text(cls, text):
        """The vocabulary of every character that occurs in `text`."""
        return cls(text)

    def __len__(self):
        return self.size

    def __eq__(self, other):
        if not isinstance(other, Vocab):
            return NotImplemented
        return self.chars == other.chars

    def __hash__(self):
        return hash(self.chars)

    def __repr__(self):
        return f"Vocab(size={self.size})"

    def encode(self, text, unknown="error"):
        """The ids of the characters of `text` as a (len(text),) array of `self.dtype`.

        unknown="error" raises CorpusError naming the characters not in the vocabulary;
        unknown="skip" drops them (the result is then shorter than the text); unknown="replace"
        encodes them as REPLACEMENT (CorpusError if the vocabulary has none).
        """
        if unknown not in UNKNOWN_CHOICES:
            raise ValueError(f"unknown must be one of {', '.join(UNKNOWN_CHOICES)}, not "
                             f"{unknown!r}")
        out = np.empty(len(text), dtype=self.dtype)
        end = 0
        for _, cps in _codepoint_chunks(text):
            ids = self._lut[cps]  # (n,) int32, -1 for unknown characters
            known = ids >= 0
            if not known.all():
                if unknown == "error" or (unknown == "replace" and self.replacement is None):
                    missing = self.unknown_chars(text)
                    lacks = "" if unknown == "error" else ", and no U+FFFD to stand for them"
                    raise CorpusError(f"the text contains {len(missing)} character(s) that are "
                                      f"not in the vocabulary{lacks}: "
                                      f"{format_chars(missing, 20)}.")
                ids = ids[known] if unknown == "skip" else np.where(known, ids, self.replacement)
            out[end:end + ids.size] = ids
            end += ids.size
        return out[:end]

    def unknown_chars(self, text):
        """The sorted distinct characters of `text` that are not in the vocabulary (a str)."""
        seen = _present(text)
        seen[self._codepoints] = False
        return _chars(np.flatnonzero(seen))

    def decode(self, ids):
        """The text of `ids` (any integer array or sequence of ids in [0, size))."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(f"ids must be in [0, {self.size}), got {ids.min()}..{ids.max()}")
        return _chars(self._codepoints[ids])

    def to_json(self):
        """The code points of the characters, in id order, as a list of ints (JSON-safe for
        any character, lone surrogates included)."""
        return self._codepoints.tolist()

    @classmethod
    def from_json(cls, obj):
        """The vocabulary saved by `to_json`: a non-empty list of distinct code points, in id
        order (increasing, unless it was `extended`). Anything else raises CorpusError (the
        ids would not mean what they meant)."""
        codepoints = np.asarray(obj) if isinstance(obj, list) else np.empty(0)
        if (codepoints.ndim != 1 or codepoints.size == 0 or codepoints.dtype.kind not in "iu"
                or codepoints.min() < 0 or codepoints.max() >= _N_CODEPOINTS
                or np.unique(codepoints).size != codepoints.size):
            raise CorpusError("the saved vocabulary is not a non-empty list of distinct "
                              "Unicode code points.")
        return cls._in_order(codepoints)


def format_chars(chars, limit=None, quoted=True):
    """`chars` written out for the user, every invisible one escaped as Python writes it (\\n,
    \\x00, \\u2028, and \\\\ for the backslash): each quoted, comma-separated ('a', '\\n'),
    or run together (a\\n) if not `quoted`; at most `limit` of them, then ' and N more'."""
    shown = [repr(c) if quoted else repr(c)[1:-1] for c in chars[:limit]]
    more = f" and {len(chars) - limit} more" if limit is not None and len(chars) > limit else ""
    return (", " if quoted else "").join(shown) + more


def encode_corpus(text):
    """The vocabulary of `text` and its ids, a (len(text),) array of `vocab.dtype`.

    One chunked pass over the code points: ids are first handed out in order of first
    appearance (growing the id dtype when needed) and renumbered by code point at the end,
    so a 100 MB text needs no array of 4-byte code points for the whole text.
    """
    if not text:
        raise CorpusError("the corpus is empty; charrnn needs text to learn from.")
    lut = np.full(_N_CODEPOINTS, -1, dtype=np.int32)  # code point -> provisional id
    first_seen = []  # (k,) uint32 arrays: code points in order of provisional id
    n_seen = 0
    out = np.empty(len(text), dtype=np.uint8)
    for start, cps in _codepoint_chunks(text):
        ids = lut[cps]
        fresh = ids < 0
        if fresh.any():
            new = np.unique(cps[fresh])
            lut[new] = np.arange(n_seen, n_seen + new.size, dtype=np.int32)
            first_seen.append(new)
            n_seen += new.size
            if _id_dtype(n_seen) != out.dtype:
                out = out.astype(_id_dtype(n_seen))
            ids[fresh] = lut[cps[fresh]]
        out[start:start + cps.size] = ids
    # renumber: provisional id -> rank of its code point
    provisional = np.concatenate(first_seen)
    rank = np.empty(n_seen, dtype=out.dtype)
    rank[np.argsort(provisional)] = np.arange(n_seen)
    for start in range(0, out.size, _CHUNK):
        part = out[start:start + _CHUNK]
        part[:] = rank[part]
    return Vocab(_chars(np.sort(provisional))), out


def limit_vocab(vocab, ids, min_count=None, max_vocab=None):
    """Leave the rare characters out of a text's vocabulary: REPLACEMENT stands for them.

    vocab, ids: what `encode_corpus` returns. Left out are the characters that occur fewer
    than `min_count` times, and those beyond the `max_vocab` - 1 most frequent of the rest
    (ties: the smaller code point first), so that the vocabulary, REPLACEMENT included, has at
    most `max_vocab` characters. Returns (vocab, ids, left_out, occurrences): the vocabulary
    (sorted by code point, with REPLACEMENT if anything was left out), the ids in it, the
    characters left out (a str; a U+FFFD of the text is not counted) and how many times they
    occur. Unchanged (left_out "") when nothing is left out.
    """
    counts = np.bincount(ids, minlength=vocab.size)  # (V,)
    keep = counts >= (min_count or 1)
    if vocab.replacement is not None:
        keep[vocab.replacement] = True  # never left out
    if keep.all() and (max_vocab is None or vocab.size <= max_vocab):
        return vocab, ids, "", 0
    if vocab.replacement is not None:
        keep[vocab.replacement] = False  # added back below, in one of the max_vocab places
    if max_vocab is not None:
        order = np.argsort(-counts, kind="stable")  # most frequent first; ties by id
        keep[order[np.cumsum(keep[order]) > max_vocab - 1]] = False
    if not keep.any():
        raise CorpusError(f"--min-count {min_count} leaves out every character of the text; "
                          "use a smaller --min-count.")
    kept_chars = vocab.decode(np.flatnonzero(keep))
    kept = Vocab(kept_chars + REPLACEMENT)
    remap = np.full(vocab.size, kept.replacement, dtype=kept.dtype)  # old id -> new id
    remap[keep] = kept.encode(kept_chars)
    left_out = np.flatnonzero(~keep)
    left_out = left_out[left_out != vocab.replacement]
    return kept, remap[ids], vocab.decode(left_out), int(counts[left_out].sum())


def _require_two(n, what):
    """Raise CorpusError unless `what` has at least 2 characters (one input, one target)."""
    if n < 2:
        raise CorpusError(f"{what} has only {n} character{'' if n == 1 else 's'}; "
                          "charrnn needs at least 2 to learn anything.")


def split_train_val(ids, val_fraction):
    """Split ids into (train, val): val is the last `val_fraction` of them, rounded down.

    Both are views of `ids` (no copy). val_fraction in [0, 1); 0 gives an empty val.
    CorpusError if either non-empty part would have fewer than 2 characters.
    """
    if not 0 <= val_fraction < 1:
        raise CharRNNError(f"--val-fraction must be at least 0 and less than 1, "
                           f"not {val_fraction}.")
    n = len(ids)
    _require_two(n, "the corpus")
    n_val = int(n * val_fraction)
    if val_fraction > 0 and n_val < 2:
        raise CorpusError(f"the corpus has {n:,} characters, so --val-fraction {val_fraction} "
                          f"leaves {n_val} for validation (at least 2 are needed); use "
                          "--val-fraction 0 or more text.")
    if n - n_val < 2:
        raise CorpusError(f"the corpus has {n:,} characters, so --val-fraction {val_fraction} "
                          f"leaves {n - n_val} for training (at least 2 are needed); use a "
                          "smaller --val-fraction or more text.")
    return ids[:n - n_val], ids[n - n_val:]


def _require_positive(batch_size, seq_length):
    """Raise CharRNNError unless both batch dimensions are at least 1."""
    if batch_size < 1 or seq_length < 1:
        raise CharRNNError("batch size and sequence length must be at least 1.")


def fit_batch_shape(n_ids, batch_size, seq_length):
    """(batch_size, seq_length, warning) that give at least one batch per epoch on n_ids ids.

    Unchanged (warning None) when (n_ids - 1) // batch_size >= seq_length. Otherwise the
    sequence length is kept and the batch size reduced to (n_ids - 1) // seq_length; if that
    is 0, batch size 1 and sequence length n_ids - 1. The warning is one sentence for the user.
    """
    _require_positive(batch_size, seq_length)
    _require_two(n_ids, "the training text")
    if (n_ids - 1) // batch_size >= seq_length:
        return batch_size, seq_length, None
    new_batch, new_length = (n_ids - 1) // seq_length, seq_length
    if new_batch < 1:
        new_batch, new_length = 1, n_ids - 1
    warning = (f"the training text ({n_ids:,} characters) is too short for batch size "
               f"{batch_size} × sequence length {seq_length}; using batch size {new_batch} × "
               f"sequence length {new_length}.")
    return new_batch, new_length, warning


class BatchStream:
    """The truncated-BPTT batches of one epoch over a 1-D id array.

    The ids are cut into `batch_size` contiguous streams of S = (len(ids) - 1) // batch_size
    characters; stream n has inputs ids[n*S : n*S + S] and targets ids[n*S+1 : n*S + S + 1].
    Batch k is columns [k*T, (k+1)*T) of every stream (T = seq_length), so batch k + 1
    continues each row of batch k and the hidden state can be carried across batches.
    The remainder is dropped. batch(k) depends on k alone, which makes resuming exact.
    """

    def __init__(self, ids, batch_size, seq_length):
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"ids must be 1-D, got shape {ids.shape}")
        _require_positive(batch_size, seq_length)
        self.batch_size = int(batch_size)
        self.seq_length = int(seq_length)
        stream_length = max(ids.size - 1, 0) // self.batch_size
        self.steps_per_epoch = stream_length // self.seq_length
        if self.steps_per_epoch == 0:
            raise CorpusError(
                f"the training text ({ids.size:,} characters) is too short for batch size "
                f"{batch_size} × sequence length {seq_length}; it needs at least "
                f"{batch_size * seq_length + 1:,} characters.")
        used = self.batch_size * stream_length
        self._inputs = ids[:used].reshape(self.batch_size, stream_length)  # (N, S) view
        self._targets = ids[1:used + 1].reshape(self.batch_size, stream_length)  # (N, S) view

    def batch(self, k):
        """Batch k (0 <= k < steps_per_epoch) as (x, y): two fresh (batch_size, seq_length)
        np.intp arrays, y[n, t] being the character that follows x[n, t]."""
        if not 0 <= k < self.steps_per_epoch:
            raise IndexError(f"batch {k} is outside 0..{self.steps_per_epoch - 1}")
        cols = slice(k * self.seq_length, (k + 1) * self.seq_length)
        return self._inputs[:, cols].astype(np.intp), self._targets[:, cols].astype(np.intp)


def validation_stream(ids, batch_size, seq_length):
    """The `BatchStream` that evaluates `ids` (the validation split): the training batch shape,
    shrunk as `fit_batch_shape` does when the split is short; None for fewer than 2 ids."""
    if ids.size < 2:
        return None
    return BatchStream(ids, *fit_batch_shape(ids.size, batch_size, seq_length)[:2])


def demo_corpus(target_chars=1_000_000):
    """The built-in demo corpus: (text, one-line description), with no download.

    About `target_chars` characters (at most that many, at least 99% of it when the
    installation has enough) of this interpreter's own standard-library Python source:
    `*.py` files under sysconfig's stdlib path taken whole, in order of relative path,
    skipping site-/dist-packages, tests, idlelib, lib2to3, turtledemo and files that are not
    valid UTF-8; a file that would overshoot the target is passed over. Each file is preceded
    by a comment line naming it. Deterministic for a given Python installation.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    pieces, total = [], 0
    for rel in _stdlib_sources(root):
        if total >= 0.99 * target_chars:
            break
        try:
            source = (root / rel).read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        piece = f"# ---- {rel} ----\n{source}" + ("" if source.endswith("\n") else "\n")
        if total + len(piece) <= target_chars:
            pieces.append(piece)
            total += len(piece)
    if not pieces:
        raise CorpusError(f"no Python standard-library sources found under {root} to build "
                          "the demo corpus; pass a text file to train on instead.")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    description = (f"demo corpus: {total:,} characters from {len(pieces)} files of the "
                   f"Python {version} standard library ({root})")
    return "".join(pieces), description


def _stdlib_sources(root):
    """Relative POSIX paths of the demo corpus candidates under `root`, sorted."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _DEMO_SKIP_DIRS]
        rel_folder = Path(folder).relative_to(root)
        found.extend((rel_folder / f).as_posix() for f in files if f.endswith(".py"))
    return sorted(found)
