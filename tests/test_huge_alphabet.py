"""Texts with thousands of distinct characters: `--min-count` / `--max-vocab` map the rare ones
to U+FFFD (`data.limit_vocab`), which sampling never generates and primes may read
(`--unknown replace`); training, sampling, eval and resume on such a run."""

import collections
import json

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.cli import cli
from charrnn.data import REPLACEMENT, Vocab, encode_corpus, limit_vocab
from charrnn.errors import CorpusError
from charrnn.stepper import Stepper
from helpers.train_helpers import TINY, events, load, train

DISTINCT = 5000


def zipf_text(n=30_000, seed=0):
    """Every one of DISTINCT CJK characters once, then n more drawn from a Zipf law over
    them, a newline after every 40 characters."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, DISTINCT + 1)
    draws = rng.choice(DISTINCT, size=n, p=weights / weights.sum())
    codes = np.concatenate([np.arange(DISTINCT), draws]) + 0x4E00
    chars = [chr(c) for c in codes]
    return "".join(ch + ("\n" if i % 40 == 39 else "") for i, ch in enumerate(chars))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("cjk") / "zipf.txt"
    path.write_text(zipf_text(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def counts(corpus):
    return collections.Counter(corpus.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- the library


def test_limit_vocab_leaves_out_the_rare_and_keeps_the_frequent():
    text = "aaaabbbccd" + REPLACEMENT + "e"
    vocab, ids = encode_corpus(text)
    for min_count, max_vocab, chars, left_out in [
            (None, None, "abcde" + REPLACEMENT, ""),
            (2, None, "abc" + REPLACEMENT, "de"),
            (None, 3, "ab" + REPLACEMENT, "cde"),
            (3, 9, "ab" + REPLACEMENT, "cde"),
            (None, 6, "abcde" + REPLACEMENT, "")]:
        kept, kept_ids, out, occurrences = limit_vocab(vocab, ids, min_count, max_vocab)
        assert (kept.chars, out) == (chars, left_out)
        assert occurrences == sum(text.count(c) for c in left_out)
        expected = "".join(c if c in chars else REPLACEMENT for c in text)
        assert kept.decode(kept_ids) == expected  # the text's own U+FFFD is the same character
    plain, plain_ids = encode_corpus("aab")
    assert limit_vocab(plain, plain_ids, None, 2)[0] is plain  # fits: nothing left out
    ties, tie_ids = encode_corpus("ccbbaad")
    assert limit_vocab(ties, tie_ids, None, 3)[0].chars == "ab" + REPLACEMENT  # smaller first
    with pytest.raises(CorpusError, match="--min-count 9 leaves out every character"):
        limit_vocab(plain, plain_ids, 9)


def test_a_vocabulary_with_a_replacement_reads_unknown_characters_as_it():
    vocab = Vocab("ab" + REPLACEMENT)
    assert vocab.replacement == 2 and Vocab("ab").replacement is None
    assert vocab.decode(vocab.encode("axb", unknown="replace")) == "a" + REPLACEMENT + "b"
    with pytest.raises(CorpusError, match="no U\\+FFFD to stand for them: 'x'"):
        Vocab("ab").encode("axb", unknown="replace")
    assert Vocab("ab").encode("ab", unknown="replace").tolist() == [0, 1]


# ----------------------------------------------------------------------------- a run


def sample(*args):
    return CliRunner().invoke(cli, ["sample", *map(str, args)])


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    """A run trained with --min-count 5 on the Zipf text, and what train printed."""
    out = tmp_path_factory.mktemp("runs")
    result = train(corpus, *TINY, "--min-count", "5", "--max-steps", "40", "--out-dir", out,
                   "--name", "cjk", "--seed", "1", "--lr", "1e-2")
    assert result.exit_code == 0, result.output
    return out / "cjk", result


def test_min_count_keeps_the_characters_seen_that_often(run, counts):
    run_dir, result = run
    vocab = load(run_dir / "latest.npz").vocab
    frequent = {c for c, n in counts.items() if n >= 5}
    assert set(vocab.chars) == frequent | {REPLACEMENT} and vocab.replacement is not None
    left_out = DISTINCT + 1 - len(frequent)
    occurrences = sum(n for n in counts.values() if n < 5)
    assert (f"note: {left_out:,} rare character(s) map to U+FFFD, {occurrences:,} of the "
            f"text's {sum(counts.values()):,} characters") in result.stderr
    (start,) = events(run_dir, "start")
    assert start["vocab_limit"] == {"left_out_chars": left_out,
                                    "left_out_occurrences": occurrences}
    assert start["config"]["train"]["min_count"] == 5


def test_max_vocab_keeps_the_most_frequent(corpus, counts, tmp_path):
    result = train(corpus, *TINY, "--max-vocab", "300", "--max-steps", "2", "--out-dir",
                   tmp_path, "--name", "top", "-q")
    assert result.exit_code == 0, result.output
    vocab = load(tmp_path / "top" / "latest.npz").vocab
    ranked = sorted(counts, key=lambda c: (-counts[c], c))
    assert vocab.size == 300 and set(vocab.chars) == set(ranked[:299]) | {REPLACEMENT}


def test_the_replacement_is_likely_but_never_sampled(run):
    run_dir, _ = run
    ckpt = load(run_dir / "latest.npz")
    logits = Stepper(ckpt.model).step(ckpt.vocab.encode("\n"))[0].astype(np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    assert p[ckpt.vocab.replacement] > p.mean()  # it has learned that U+FFFD is common
    assert p[ckpt.vocab.replacement] * 6000 > 3  # so the mask is what keeps it out of these:
    hot = sample(run_dir, "--temp", "2", "-n", "3000", "--seed", "1", "--num-samples", "2")
    assert hot.exit_code == 0, hot.output
    assert len(hot.stdout) > 6000 and REPLACEMENT not in hot.stdout
    for args in (["--temp", "0"], ["--beam", "3", "--num-samples", "3"]):
        result = sample(run_dir, *args, "-n", "200", "--format", "jsonl")
        records = [json.loads(line) for line in result.stdout.splitlines()]
        assert records and all(REPLACEMENT not in r["text"] for r in records)


def test_an_unknown_prime_character_may_be_read_as_the_replacement(run):
    run_dir, _ = run
    rare = chr(0x4E00 + DISTINCT - 1)  # drawn once or so: left out
    refused = sample(run_dir, "--prime", rare + "x", "-n", "5")
    assert refused.exit_code == 1
    assert "or read them as U+FFFD with --unknown replace" in refused.stderr
    replaced = sample(run_dir, "--prime", rare, "-n", "5", "--unknown", "replace", "--seed", "2")
    assert replaced.exit_code == 0, replaced.output
    assert replaced.stdout.startswith(rare) and len(replaced.stdout) == 7
    assert "reading as U+FFFD 1 prime character(s)" in replaced.stderr


def test_eval_reads_unknown_characters_as_the_replacement_and_resume_continues(run, corpus):
    run_dir, _ = run
    result = CliRunner().invoke(cli, ["eval", str(run_dir), str(corpus), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["chars_replaced"] > 1000 and report["chars_skipped"] == 0
    assert 0 < report["nats_per_char"] < np.log(load(run_dir / "latest.npz").vocab.size)
    resumed = train("--resume", run_dir, "--max-steps", "45", "-q")
    assert resumed.exit_code == 0, resumed.output
    assert load(run_dir / "latest.npz").training.step == 45
    refused = train("--resume", run_dir, "--min-count", "2", "-q")
    assert refused.exit_code == 1 and "cannot resume with --min-count 2" in refused.stderr


def test_a_huge_alphabet_without_the_options_gets_a_hint(corpus, tmp_path):
    result = train(corpus, *TINY, "--max-steps", "1", "--out-dir", tmp_path)
    assert result.exit_code == 0, result.output
    hints = [line for line in result.stderr.splitlines() if line.startswith("hint:")]
    assert hints == [f"hint: the text has {DISTINCT + 1:,} distinct characters; --min-count N "
                     "maps those seen fewer than N times to one replacement character, for a "
                     "smaller, faster model."]


def test_a_model_without_a_replacement_refuses_to_read_primes_as_one(tmp_path):
    from test_sampling import save_checkpoint

    path = save_checkpoint(tmp_path / "m.npz")
    result = sample(path, "--prime", "héllo", "--unknown", "replace")
    assert result.exit_code == 1
    assert "and it has no U+FFFD to stand for them: 'é'" in result.stderr
