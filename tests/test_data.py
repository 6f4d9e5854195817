"""Tests of charrnn.data: reading corpora, the vocabulary, the split, batches, the demo corpus."""

import numpy as np
import pytest

from charrnn.data import (BatchStream, Vocab, demo_corpus, encode_corpus, fit_batch_shape,
                          format_chars, read_text, split_train_val)
from charrnn.errors import CharRNNError, CorpusError

MIXED = "привет мир 你好 🙂\r\nhello\n"


def chars_without_surrogates(n):
    """n distinct characters, skipping the surrogate block."""
    return "".join(chr(c) for c in range(n + 2048) if not 0xD800 <= c < 0xE000)[:n]


# ---- read_text -------------------------------------------------------------------------

def write(tmp_path, data, name="corpus.txt"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_read_text_keeps_crlf_and_unicode(tmp_path):
    path = write(tmp_path, MIXED.encode("utf-8"))
    assert read_text(path) == MIXED


def test_read_text_drops_one_leading_bom(tmp_path):
    path = write(tmp_path, "\ufeff\ufeffabc".encode("utf-8"))
    assert read_text(path) == "\ufeffabc"


def test_read_text_other_encodings(tmp_path):
    assert read_text(write(tmp_path, "café".encode("latin-1")), encoding="latin-1") == "café"
    # NUL bytes are normal in UTF-16, and its byte-order mark is not part of the text
    assert read_text(write(tmp_path, MIXED.encode("utf-16")), encoding="utf-16") == MIXED
    assert read_text(write(tmp_path, b"\xff\xfea\x00"), encoding="utf-16-le") == "a"


def test_read_text_invalid_bytes_names_byte_offset_and_encoding_option(tmp_path):
    path = write(tmp_path, b"abc\n" * 10 + b"\xff rest")
    with pytest.raises(CorpusError) as err:
        read_text(path)
    message = str(err.value)
    assert str(path) in message
    assert "not valid utf-8" in message
    assert "byte 0xff at offset 40" in message
    assert "--encoding latin-1" in message


def test_read_text_suggests_utf16_for_a_utf16_file(tmp_path):
    path = write(tmp_path, "hello".encode("utf-16"))
    with pytest.raises(CorpusError, match="--encoding utf-16"):
        read_text(path)


def test_read_text_missing_file(tmp_path):
    with pytest.raises(CorpusError, match="nope.txt does not exist"):
        read_text(tmp_path / "nope.txt")


def test_read_text_directory(tmp_path):
    with pytest.raises(CorpusError, match="is a directory"):
        read_text(tmp_path)


def test_read_text_unreadable(tmp_path, monkeypatch):
    path = write(tmp_path, b"secret")

    def denied(path, *args):
        raise PermissionError(13, "Permission denied", str(path))

    # file modes do not stop root, so the refusal is simulated
    monkeypatch.setattr("charrnn.files.os.open", denied)
    with pytest.raises(CorpusError, match="corpus.txt cannot be read: permission denied"):
        read_text(path)


@pytest.mark.parametrize("data", [b"", "\ufeff".encode("utf-8")])
def test_read_text_empty(tmp_path, data):
    path = write(tmp_path, data)
    with pytest.raises(CorpusError, match="corpus.txt is empty"):
        read_text(path)


def test_read_text_binary(tmp_path):
    path = write(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", name="image.png")
    with pytest.raises(CorpusError, match="image.png looks like a binary file"):
        read_text(path)


def test_read_text_unknown_encoding(tmp_path):
    path = write(tmp_path, b"abc")
    with pytest.raises(CorpusError, match="unknown encoding 'foo'"):
        read_text(path, encoding="foo")
    with pytest.raises(CorpusError, match="unknown encoding 'base64'"):
        read_text(path, encoding="base64")


# ---- Vocab -----------------------------------------------------------------------------

def test_vocab_sorted_unique_and_round_trip():
    vocab = Vocab.from_text(MIXED)
    assert vocab.chars == "".join(sorted(set(MIXED)))
    assert len(vocab) == vocab.size == len(set(MIXED))
    assert "🙂" in vocab.chars and "你" in vocab.chars  # one character each
    ids = vocab.encode(MIXED)
    assert ids.shape == (len(MIXED),) and ids.dtype == np.uint8
    assert vocab.decode(ids) == MIXED
    assert vocab.decode(ids.tolist()) == MIXED
    assert vocab.chars[ids[MIXED.index("🙂")]] == "🙂"


def test_vocab_lone_surrogate_round_trip():
    text = "a\ud800b"
    vocab = Vocab(text)
    assert vocab.decode(vocab.encode(text)) == text
    assert Vocab.from_json(vocab.to_json()) == vocab


@pytest.mark.parametrize("n, dtype", [(1, np.uint8), (256, np.uint8), (257, np.uint16),
                                      (65536, np.uint16), (65537, np.uint32)])
def test_vocab_dtype(n, dtype):
    chars = chars_without_surrogates(n)
    vocab = Vocab(chars)
    assert vocab.size == n and vocab.dtype == np.dtype(dtype)
    ids = vocab.encode(chars[::-1])
    assert ids.dtype == dtype and ids[0] == n - 1
    assert vocab.decode(ids) == chars[::-1]


def test_vocab_empty_is_a_corpus_error():
    with pytest.raises(CorpusError, match="empty"):
        Vocab("")


def test_vocab_unknown_characters():
    vocab = Vocab("abc ")
    text = "a\x07b é\x07"
    assert vocab.unknown_chars(text) == "\x07é"
    with pytest.raises(CorpusError) as err:
        vocab.encode(text)
    assert "2 character(s) that are not in the vocabulary" in str(err.value)
    assert r"'\x07'" in str(err.value) and "'é'" in str(err.value)
    assert vocab.decode(vocab.encode(text, unknown="skip")) == "ab "
    assert vocab.unknown_chars("abc") == ""


def test_format_chars_escapes_invisible_characters_and_counts_the_rest():
    assert format_chars("a\n'\\\x00\u2028é") == (
        "'a', '\\n', \"'\", '\\\\', '\\x00', '\\u2028', 'é'")
    assert format_chars("a\n\\\x00é", quoted=False) == "a\\n\\\\\\x00é"
    assert format_chars("abcdef", 2) == "'a', 'b' and 4 more"
    assert format_chars("abcdef", 3, quoted=False) == "abc and 3 more"
    assert format_chars("ab", 2) == "'a', 'b'" and format_chars("") == ""


def test_vocab_decode_rejects_out_of_range_ids():
    with pytest.raises(ValueError):
        Vocab("ab").decode([0, 2])


def test_vocab_json_round_trip_and_equality():
    vocab = Vocab(MIXED)
    obj = vocab.to_json()
    assert obj == sorted(ord(c) for c in set(MIXED))
    assert all(type(c) is int for c in obj)
    assert Vocab.from_json(obj) == vocab
    assert Vocab("ab") != Vocab("abc")
    assert Vocab("ba") == Vocab("aabb")


def test_an_extended_vocabulary_keeps_every_id_and_its_order():
    vocab = Vocab("cab")
    bigger = vocab.extended("b€a\nzz")
    assert bigger.chars == "abc\nz€"  # new characters after the old, in code-point order
    assert bigger.encode("abc").tolist() == [0, 1, 2] and bigger.encode("z\n").tolist() == [4, 3]
    assert vocab.extended("ab") is vocab
    assert Vocab.from_json(bigger.to_json()) == bigger and bigger != Vocab(bigger.chars)
    assert bigger.unknown_chars("x€") == "x"


@pytest.mark.parametrize("obj", [[], [97, 98, 97], [97, 97], ["a"], [1.5], [-1], [0x110000],
                                 [98, -1], {}])
def test_vocab_from_json_rejects_garbage(obj):
    with pytest.raises(CorpusError, match="saved vocabulary"):
        Vocab.from_json(obj)


def test_encode_corpus_matches_vocab_encode():
    text = MIXED * 3
    vocab, ids = encode_corpus(text)
    assert vocab == Vocab(text)
    assert ids.dtype == np.uint8
    np.testing.assert_array_equal(ids, vocab.encode(text))


def test_encode_corpus_grows_dtype_across_chunks(monkeypatch):
    # small chunks, so new characters keep turning up and the id dtype is widened mid-pass
    monkeypatch.setattr("charrnn.data._CHUNK", 100)
    text = "zyx" * 50 + chars_without_surrogates(300)[::-1] + "abc" * 50
    vocab, ids = encode_corpus(text)
    assert vocab == Vocab(text) and vocab.size == 300
    assert ids.dtype == np.uint16
    np.testing.assert_array_equal(ids, vocab.encode(text))
    assert vocab.decode(ids) == text


def test_encode_corpus_empty():
    with pytest.raises(CorpusError, match="empty"):
        encode_corpus("")


# ---- split_train_val -------------------------------------------------------------------

def test_split_sizes_and_views():
    ids = np.arange(100, dtype=np.uint8)
    train, val = split_train_val(ids, 0.1)
    assert len(train) == 90 and len(val) == 10
    assert train.base is ids and val.base is ids
    np.testing.assert_array_equal(np.concatenate([train, val]), ids)
    train, val = split_train_val(ids, 0.025)  # 2.5 rounds down to 2
    assert len(val) == 2
    train, val = split_train_val(ids, 0)
    assert len(train) == 100 and len(val) == 0


def test_split_too_short_corpus():
    with pytest.raises(CorpusError, match="has only 1 character; charrnn needs at least 2"):
        split_train_val(np.zeros(1, np.uint8), 0)


def test_split_too_short_validation():
    with pytest.raises(CorpusError) as err:
        split_train_val(np.zeros(10, np.uint8), 0.1)
    assert "10 characters" in str(err.value) and "--val-fraction 0" in str(err.value)


def test_split_too_short_training():
    with pytest.raises(CorpusError, match="leaves 1 for training"):
        split_train_val(np.zeros(3, np.uint8), 0.9)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_split_fraction_out_of_range(fraction):
    with pytest.raises(CharRNNError, match="--val-fraction must be"):
        split_train_val(np.zeros(100, np.uint8), fraction)


# ---- fit_batch_shape -------------------------------------------------------------------

def test_fit_batch_shape_unchanged():
    assert fit_batch_shape(6401, 64, 100) == (64, 100, None)


def test_fit_batch_shape_reduces_batch_size():
    batch, length, warning = fit_batch_shape(1000, 64, 100)
    assert (batch, length) == (9, 100)
    assert warning == ("the training text (1,000 characters) is too short for batch size 64 × "
                       "sequence length 100; using batch size 9 × sequence length 100.")
    assert fit_batch_shape(6400, 64, 100)[:2] == (63, 100)


def test_fit_batch_shape_shortens_sequence():
    batch, length, warning = fit_batch_shape(50, 64, 100)
    assert (batch, length) == (1, 49)
    assert "using batch size 1 × sequence length 49" in warning
    assert BatchStream(np.arange(50), batch, length).steps_per_epoch == 1


def test_fit_batch_shape_needs_two_characters():
    with pytest.raises(CorpusError, match="only 1 character"):
        fit_batch_shape(1, 1, 1)


# ---- BatchStream -----------------------------------------------------------------------

def test_batch_stream_shapes_and_steps():
    ids = np.arange(1000, dtype=np.uint16)
    stream = BatchStream(ids, 4, 10)  # S = 249 per stream -> 24 batches, 9 columns dropped
    assert (stream.batch_size, stream.seq_length, stream.steps_per_epoch) == (4, 10, 24)
    x, y = stream.batch(23)
    assert x.shape == y.shape == (4, 10)
    assert x.dtype == y.dtype == np.intp
    with pytest.raises(IndexError):
        stream.batch(24)


def test_batch_stream_rows_are_contiguous_streams():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, size=1003).astype(np.uint8)
    n, t = 4, 7
    stream = BatchStream(ids, n, t)
    s = (len(ids) - 1) // n
    xs, ys = zip(*(stream.batch(k) for k in range(stream.steps_per_epoch)))
    x_all, y_all = np.concatenate(xs, axis=1), np.concatenate(ys, axis=1)
    for row in range(n):
        # batch k + 1 continues where batch k ended in every row
        np.testing.assert_array_equal(x_all[row], ids[row * s: row * s + x_all.shape[1]])
        # targets are the inputs shifted by one in the original ids
        np.testing.assert_array_equal(y_all[row], ids[row * s + 1: row * s + 1 + x_all.shape[1]])


def test_batch_stream_is_stateless_and_returns_copies():
    ids = np.arange(200, dtype=np.uint8)
    stream = BatchStream(ids, 2, 5)
    x1, _ = stream.batch(3)
    stream.batch(7)
    x1[:] = -1
    x2, _ = stream.batch(3)
    np.testing.assert_array_equal(x2, [[15, 16, 17, 18, 19], [114, 115, 116, 117, 118]])


def test_batch_stream_too_short():
    with pytest.raises(CorpusError, match="too short for batch size 4 × sequence length 10"):
        BatchStream(np.arange(40), 4, 10)
    with pytest.raises(CorpusError, match="too short"):
        BatchStream(np.arange(0), 1, 1)
    with pytest.raises(CharRNNError, match="at least 1"):
        BatchStream(np.arange(40), 0, 10)


# ---- demo_corpus -----------------------------------------------------------------------

def test_demo_corpus_deterministic_and_close_to_target():
    text, description = demo_corpus(50_000)
    assert 0.99 * 50_000 <= len(text) <= 50_000
    assert (text, description) == demo_corpus(50_000)
    assert description.startswith(f"demo corpus: {len(text):,} characters from ")
    assert "standard library" in description
    assert text.startswith("# ---- ") and "def " in text
    assert "/test/" not in text and "site-packages" not in text
