"""`charrnn.explain` reads a text exactly as `charrnn eval` scores it, also for a model whose
vocabulary has U+FFFD (`--max-vocab`, `--min-count`): the characters it lacks are read as
U+FFFD, not skipped, so that explain's per-character losses average to eval's score; and its
memory estimate counts no more top-k predictions than the vocabulary has."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import checkpoint, errors, explain
from charrnn.cli import cli
from charrnn.data import REPLACEMENT, Vocab
from charrnn.errors import CharRNNError
from charrnn.model import CharRNN, ModelConfig

CHARS = "abcdefgh .\n"
TEXT = "a bad cafe. a deaf bee; fed a hag!\n" * 20  # ';', '!' are not in the vocabulary


@pytest.fixture
def replacing_model(tmp_path):
    """A model whose vocabulary has U+FFFD, as `--max-vocab` makes it."""
    vocab = Vocab(CHARS + REPLACEMENT)
    model = CharRNN(ModelConfig("lstm", vocab.size, 12, 2), seed=2)
    rng = np.random.default_rng(2)
    for p in model.params.values():
        p[...] = rng.standard_normal(p.shape) * 0.6
    path = tmp_path / "m.npz"
    checkpoint.save(path, checkpoint.Checkpoint(model=model, vocab=vocab))
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    return path, text, model, vocab


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "100"})


def test_explain_reads_unknown_characters_as_u_fffd_as_eval_does(replacing_model):
    path, text, _, _ = replacing_model
    scored = run("eval", path, text, "--format", "json")
    explained = run("explain", path, text, "--format", "json")
    assert scored.exit_code == explained.exit_code == 0, explained.stderr
    a, b = json.loads(scored.stdout), json.loads(explained.stdout)
    assert b["chars_predicted"] == a["chars_scored"] == len(TEXT) - 1
    assert b["nats_per_char"] == pytest.approx(a["nats_per_char"], rel=1e-5)
    assert np.mean(b["nats"][1:]) == pytest.approx(a["nats_per_char"], rel=1e-5)
    assert b["chars_skipped"] == 0 and b["chars_replaced"] == 40
    assert b["text"] == TEXT.replace(";", REPLACEMENT).replace("!", REPLACEMENT)


def test_the_library_reads_the_same_text_as_eval(replacing_model):
    _, _, model, vocab = replacing_model
    e = explain.explain(model, vocab, TEXT)
    assert (e.skipped, e.replaced, e.unknown_chars) == (0, 40, "!;")
    assert e.ids.size == len(TEXT) and (e.ids == vocab.replacement).sum() == 40


def test_a_model_without_u_fffd_still_skips(replacing_model):
    _, _, _, _ = replacing_model
    vocab = Vocab(CHARS)
    model = CharRNN(ModelConfig("gru", vocab.size, 8, 1), seed=1)
    e = explain.explain(model, vocab, TEXT)
    assert (e.skipped, e.replaced) == (40, 0) and REPLACEMENT not in e.text


# ----------------------------------------------------------------------------- memory estimate


def test_top_k_is_capped_at_the_vocabulary_before_the_memory_estimate(replacing_model,
                                                                      monkeypatch):
    """--top-k 10000 with 12 characters needs what --top-k 12 needs: the check must not refuse
    a text that fits (it said 149 GiB for a 43-character vocabulary)."""
    _, _, model, vocab = replacing_model
    text = TEXT * 10
    need = explain.memory_needed(model.config, len(text), vocab.size)
    monkeypatch.setattr(errors, "_physical_memory", lambda: int(need * 2))  # fits, at 80%
    e = explain.explain(model, vocab, text, top_k=10_000)
    assert e.top_ids.shape == (len(text), vocab.size)


def test_the_memory_message_names_the_limit_that_applies(replacing_model, monkeypatch):
    _, _, model, vocab = replacing_model
    monkeypatch.setattr(errors, "_physical_memory", lambda: 2**20 * 5)  # 5 MiB
    with pytest.raises(CharRNNError) as err:
        explain.explain(model, vocab, TEXT * 400, top_k=5)
    message = str(err.value)
    assert "more than the 0.0 GiB limit (80% of this machine's 0.0 GiB)" in message
    monkeypatch.setattr(errors, "_physical_memory", lambda: 2**30 * 23.5)
    with pytest.raises(CharRNNError) as err:
        errors.refuse_oversized(2**30 * 20, "explaining", "explain less.")
    assert str(err.value) == ("explaining needs about 20.0 GiB of memory, more than the 18.8 "
                              "GiB limit (80% of this machine's 23.5 GiB); explain less.")
