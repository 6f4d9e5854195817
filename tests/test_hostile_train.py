"""Hostile cases of `charrnn train` (issue 29): SIGHUP, a missing CHARRNN_HOME, run names,
escape sequences and Python's None in messages, option changes that diverge on resume."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import charrnn
from helpers.processes import finish, wait_until
from helpers.train_helpers import TINY, events, load, make_corpus, train

ENV = {**os.environ, "PYTHONPATH": str(Path(charrnn.__file__).parents[1])}


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_sighup_saves_and_ends_the_run_like_sigterm(tmp_path, engine):
    """The terminal closed: the step finishes, latest.npz is saved, the log has its end, and
    the exit code is the shell's for SIGHUP (129)."""
    if engine == "torch":
        pytest.importorskip("torch")
    corpus = make_corpus(tmp_path / "c.txt")
    run = tmp_path / "runs" / "hup"
    proc = subprocess.Popen(
        [sys.executable, "-m", "charrnn", "train", str(corpus), *TINY, "--max-steps", "100000",
         "--checkpoint-every", "100000", "--eval-every", "100000", "--engine", engine,
         "--out-dir", str(run.parent), "--name", run.name, "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    wait_until(lambda: (run / "log.jsonl").exists() and events(run, "train"), proc)
    proc.send_signal(signal.SIGHUP)
    stdout, stderr = finish(proc)
    assert proc.returncode == 128 + signal.SIGHUP, stderr
    assert "Traceback" not in stderr and stdout == ""
    end = events(run)[-1]
    assert (end["event"], end["reason"]) == ("end", "interrupted")
    assert load(run / "latest.npz").training.step == end["step"] >= 10


def test_a_resume_whose_new_rate_diverges_at_once_keeps_the_run_as_it_was(tmp_path):
    """`--resume RUN --lr 1e308` diverges at its first step: latest.npz stays byte for byte as
    it was (the run's own learning rate), the message says so, and a plain resume trains."""
    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    assert train(corpus, *TINY, "--max-steps", 5, "--out-dir", out, "--name", "r",
                 "-q").exit_code == 0
    before = (out / "r" / "latest.npz").read_bytes()
    result = train("--resume", out / "r", "--lr", "1e308", "--max-steps", 10, "--engine", "numpy",
                   "-q")
    assert result.exit_code == 1
    assert "is as it was, with the run's own options" in result.stderr
    assert (out / "r" / "latest.npz").read_bytes() == before
    assert events(out / "r", "end")[-1]["reason"] == "diverged"
    result = train("--resume", out / "r", "--max-steps", 10, "--engine", "numpy", "-q")
    assert result.exit_code == 0, result.stderr
    latest = load(out / "r" / "latest.npz").training
    assert latest.step == 10 and latest.train_config.learning_rate is None


@pytest.mark.parametrize("how", ["CHARRNN_HOME", "--out-dir"])
def test_a_missing_runs_directory_is_created_and_said(tmp_path, how):
    corpus = make_corpus(tmp_path / "c.txt", chars=600)
    home = tmp_path / "nonexistent" / "deep" / "home"
    args = [corpus, *TINY, "--max-steps", 1, "--name", "r"]
    result = train(*args, env={"CHARRNN_HOME": str(home)}) if how == "CHARRNN_HOME" else \
        train(*args, "--out-dir", home)
    assert result.exit_code == 0, result.stderr
    assert f"note: the runs directory did not exist; created it:\n        {home}\n" in \
        result.stderr
    assert (home / "r" / "latest.npz").is_file()
    again = train(corpus, *TINY, "--max-steps", 1, "--name", "r2", "--out-dir", home)
    assert again.exit_code == 0 and "did not exist" not in again.stderr
    assert result.stderr.index("training run 'r'") < result.stderr.index("did not exist")


def test_escape_sequences_in_charrnn_home_are_shown_escaped(tmp_path):
    corpus = make_corpus(tmp_path / "c.txt", chars=600)
    home = tmp_path / "a\x1b[31mred"
    result = train(corpus, *TINY, "--max-steps", 1, "--name", "r",
                   env={"CHARRNN_HOME": str(home)})
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stderr and "a\\x1b[31mred" in result.stderr
    result = train(corpus, *TINY, "--max-steps", 1, "--name", "r",
                   env={"CHARRNN_HOME": str(home)})  # an error naming the path
    assert result.exit_code == 1 and "\x1b" not in result.stderr


@pytest.mark.parametrize("name", ["*", "?", "$HOME", "-dash", "a b", "semi;colon", "q'uote"])
def test_run_names_outside_the_rule_are_refused(tmp_path, name):
    corpus = make_corpus(tmp_path / "c.txt", chars=600)
    result = train(corpus, *TINY, "--max-steps", 1, "--out-dir", tmp_path / "runs", "--name",
                   name)
    assert result.exit_code == 1
    assert "invalid run name" in result.stderr and "not starting with '-'" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_messages_about_options_never_show_python_none(tmp_path):
    corpus = make_corpus(tmp_path / "c.txt", chars=600)
    out = tmp_path / "runs"
    assert train(corpus, *TINY, "--max-steps", 2, "--out-dir", out, "--name", "r",
                 "-q").exit_code == 0
    refused = train("--resume", out / "r", "--min-count", 2)
    assert refused.exit_code == 1
    assert "the run was trained with no --min-count" in refused.stderr
    resumed = train("--resume", out / "r", "--engine", "numpy", "--max-steps", 3, "--patience", 3,
                    "--time-limit", "1h30")
    assert resumed.exit_code == 0, resumed.stderr
    assert "note: patience changes from none to 3." in resumed.stderr
    assert "note: time-limit changes from no limit to 90m." in resumed.stderr
    from click.testing import CliRunner

    from charrnn.cli import cli
    info = CliRunner().invoke(cli, ["info", str(out / "r")])
    assert info.exit_code == 0 and "min_count=none" in info.stdout
    for text in (refused.stderr, resumed.stderr, info.stdout):
        assert "None" not in text


@pytest.mark.parametrize("option", ["--init-from", "--resume"])
def test_an_empty_run_name_is_not_the_current_directory(tmp_path, option, monkeypatch):
    corpus = make_corpus(tmp_path / "c.txt", chars=600)
    monkeypatch.chdir(tmp_path)
    result = train(corpus, *TINY, option, "", "--out-dir", tmp_path / "runs")
    assert result.exit_code == 1
    assert "an empty RUN|CKPT names no run" in result.stderr and "'.'" not in result.stderr
    assert not (tmp_path / "runs").exists()
