"""`charrnn eval` through the command line: the full pass, and with --windows T the
transformer-style score (random windows from the zero state) beside it."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from charrnn.scoring import score, score_windows
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


# ----------------------------------------------------------------------------- --windows

TEXT = HELLO * 12  # 156 characters the model knows


def test_json_has_the_window_score_beside_the_full_pass(runs):
    Path("test.txt").write_text(TEXT, encoding="utf-8")
    result = run("eval", "hello", "test.txt", "--windows", 8, "--count", 20, "--seed", 3,
                 "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    model, vocab = trained()
    ids = vocab.encode(TEXT)
    total, scored = score(model, ids)
    assert report["nats_per_char"] == pytest.approx(total / scored)
    assert report["chars_scored"] == len(TEXT) - 1
    windows = report["windows"]
    expected = score_windows(model, ids, 8, 20, np.random.default_rng(3))
    assert windows["nats_per_char"] == pytest.approx(expected, rel=1e-6)
    assert windows["bits_per_char"] == pytest.approx(expected / np.log(2), rel=1e-6)
    assert {k: windows[k] for k in ("length", "count", "seed", "chars_scored", "partial")} == {
        "length": 8, "count": 20, "seed": 3, "chars_scored": 160, "partial": False}


def test_without_windows_the_json_says_none(runs):
    Path("test.txt").write_text(TEXT, encoding="utf-8")
    report = json.loads(run("eval", "hello", "test.txt", "--format", "json").stdout)
    assert report["windows"] is None


def test_the_table_shows_both_scores(runs):
    Path("test.txt").write_text(TEXT, encoding="utf-8")
    result = run("eval", "hello", "test.txt", "--windows", 5, "--count", 30)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    full = next(line for line in lines if line.startswith("nats/char"))
    at = next(i for i, line in enumerate(lines) if line.startswith("windows"))
    windows, which = lines[at], " ".join(lines[at + 1 :])
    assert "30 windows of 5 characters" in which and "(seed 0)" in which
    report = json.loads(run("eval", "hello", "test.txt", "--windows", 5, "--count", 30,
                            "--format", "json").stdout)
    assert f"{report['nats_per_char']:.4f}" in full
    assert f"{report['windows']['nats_per_char']:.4f}" in windows


def test_the_seed_fixes_the_windows(runs):
    Path("test.txt").write_text(TEXT, encoding="utf-8")
    def windows(*seed):
        result = run("eval", "hello", "test.txt", "--windows", 4, "--count", 10, *seed,
                     "--format", "json")
        return json.loads(result.stdout)["windows"]["nats_per_char"]

    assert windows() == windows("--seed", 0) == windows()
    assert windows("--seed", 1) == windows("--seed", 1) != windows()


def test_windows_longer_than_the_text_are_a_one_line_error(runs):
    Path("test.txt").write_text(TEXT, encoding="utf-8")
    result = run("eval", "hello", "test.txt", "--windows", len(TEXT))
    assert result.exit_code == 1
    error = result.stderr.splitlines()[-1]  # after the note naming the checkpoint used
    assert error.startswith("Error: windows of 156 characters need a text of at least 157")
    assert result.stderr.count("Error") == 1 and result.stdout == ""


@pytest.mark.parametrize("args", [
    ["--windows", "0"], ["--windows", "x"], ["--windows", "4", "--count", "0"],
    ["--count", "5"], ["--seed", "2"], ["--windows", "4", "--seed", "-1"],
])
def test_bad_window_options_are_usage_errors(runs, args):
    Path("test.txt").write_text(TEXT, encoding="utf-8")
    result = run("eval", "hello", "test.txt", *args)
    assert result.exit_code == 2 and result.stdout == ""


@pytest.mark.parametrize("cut_at", [0, 2])
def test_ctrl_c_during_the_windows_keeps_the_full_pass(runs, monkeypatch, cut_at):
    """Ctrl-C while the windows are read (here: a KeyboardInterrupt before chunk `cut_at`)
    still shows the full pass, and the windows scored so far (none for chunk 0), exit 130."""
    from charrnn import scoring

    real = scoring.window_steps

    def cut(*args, **kwargs):
        for i, step in enumerate(real(*args, **kwargs)):
            if i == cut_at:
                raise KeyboardInterrupt
            yield step

    monkeypatch.setattr(scoring, "window_steps", cut)
    Path("test.txt").write_text(TEXT, encoding="utf-8")
    args = ["eval", "hello", "test.txt", "--windows", 100, "--count", 500]  # 81 windows a chunk
    result = run(*args, "--format", "json")
    assert result.exit_code == 130 and "Aborted" not in result.stderr, result.output
    report = json.loads(result.stdout)
    assert report["partial"] is False and report["chars_scored"] == len(TEXT) - 1
    if cut_at:
        assert report["windows"]["partial"] is True
        assert report["windows"]["chars_scored"] == 2 * 81 * 100
    else:
        assert report["windows"] is None
    table = run(*args)
    assert table.exit_code == 130 and "nats/char" in table.stdout
    assert ("162 scored: partial, interrupted" if cut_at else "none scored: interrupted") \
        in " ".join(table.stdout.split())
