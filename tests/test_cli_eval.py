"""`charrnn eval` through the command line."""

import json
import math
from pathlib import Path

import pytest

from charrnn.scoring import score
from test_cli_sample import run, runs  # noqa: F401 (runs: a fixture)
from test_sampling import HELLO, trained


def test_eval_reports_loss_counts_and_skipped_characters(runs):
    text = (HELLO * 10) + "é€" + HELLO
    Path("test.txt").write_text(text, encoding="utf-8")
    result = run("eval", "hello", "test.txt", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    model, vocab = trained()
    ids = vocab.encode(text, unknown="skip")
    whole, _ = model.loss(ids[None, :-1], ids[None, 1:], model.init_state(1))
    assert report["chars_skipped"] == 2 and report["unknown_chars"] == "é€"
    assert report["chars_scored"] == len(text) - 2 - 1
    assert report["nats_per_char"] == pytest.approx(float(whole), rel=1e-4)
    assert report["nats_per_char"] == pytest.approx(score(model, ids)[0] / report["chars_scored"])
    assert report["bits_per_char"] == pytest.approx(report["nats_per_char"] / math.log(2))
    assert report["perplexity"] == pytest.approx(math.exp(report["nats_per_char"]))
    table = run("eval", "hello", "test.txt")
    assert "bits/char" in table.stdout and "unknown to the model: é€" in table.stdout


def test_eval_without_a_run_uses_the_newest(runs):
    Path("t.txt").write_text("привет", encoding="utf-8")
    result = run("eval", "t.txt", "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["chars_scored"] == 5


def test_eval_needs_two_known_characters(runs):
    Path("t.txt").write_text("hé", encoding="utf-8")
    result = run("eval", "hello", "t.txt")
    assert result.exit_code == 1 and "at least 2 characters" in result.stderr
    missing = run("eval", "hello", "nope.txt")
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
    assert run("eval").exit_code == 2
