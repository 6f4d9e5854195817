"""What a new user meets walking through the README: resuming with a budget, an 80-column
terminal, shell completion, where runs live, and the small things (eval without FILE, the
chart's labels, info's learning rate and epoch, "1 step")."""

import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from charrnn import charts
from charrnn import train as train_module
from charrnn.cli import cli
from charrnn.ui import TrainProgress
from test_hostile_input import assert_refused
from test_runs import make_records, write_run
from helpers.train_helpers import TINY, events, files_snapshot, load, make_corpus, train


def invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


@pytest.fixture
def corpus(tmp_path):
    return make_corpus(tmp_path / "c.txt")


# ----------------------------------------------------------------------------- resume + budget


def _stopped_by_default_time_limit(corpus, out, monkeypatch):
    monkeypatch.setattr("charrnn.cli.train.DEFAULT_TIME_LIMIT", 0.3)
    assert train(corpus, *TINY, "--out-dir", out, "-q").exit_code == 0
    assert events(out / "c", "end")[-1]["reason"] == "time_limit"


def _stopped_by_own_time_limit(corpus, out, monkeypatch):
    assert train(corpus, *TINY, "--time-limit", "0.3s", "--out-dir", out, "-q").exit_code == 0


def _interrupted_under_default_time_limit(corpus, out, monkeypatch):
    class StopAt3(train_module.Reporter):
        def update(self, step, *args):
            if step == 3:
                os.kill(os.getpid(), 2)

    train_module.train(corpus, dict(hidden_size=16, batch_size=4, seq_length=16),
                       out_dir=out, reporter=StopAt3(), default_time_limit=3600.0)
    assert events(out / "c", "end")[-1]["reason"] == "interrupted"


@pytest.mark.parametrize("stopped", [_stopped_by_default_time_limit, _stopped_by_own_time_limit,
                                     _interrupted_under_default_time_limit])
def test_a_budget_given_on_resume_replaces_the_one_that_stopped_the_run(tmp_path, corpus,
                                                                        monkeypatch, stopped):
    out = tmp_path / "runs"
    stopped(corpus, out, monkeypatch)
    step = load(out / "c" / "latest.npz").training.step
    result = train("--resume", out / "c", "--max-steps", step + 5)
    assert result.exit_code == 0, result.stderr
    assert load(out / "c" / "latest.npz").training.step == step + 5
    assert events(out / "c", "end")[-1]["reason"] == "max_steps"
    saved = load(out / "c" / "latest.npz").training.train_config
    assert saved.max_steps == step + 5 and saved.time_limit is None
    if stopped is not _stopped_by_own_time_limit or True:
        assert "--max-steps replaces the --time-limit" in result.stderr


def test_a_budget_that_did_not_stop_the_run_stays(tmp_path, corpus):
    out = tmp_path / "runs"
    assert train(corpus, *TINY, "--max-steps", 4, "--time-limit", "1h", "--out-dir", out,
                 "-q").exit_code == 0
    assert train("--resume", out / "c", "--epochs", 50, "-q").exit_code == 0
    saved = load(out / "c" / "latest.npz").training.train_config
    assert (saved.max_steps, saved.time_limit, saved.epochs) == (None, 3600.0, 50)


# ----------------------------------------------------------------------------- 80 columns


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("budget", [{"max_steps": 25}, {"time_limit": 0.5}])
def test_training_output_fits_the_terminal(tmp_path, corpus, monkeypatch, columns, budget):
    monkeypatch.setenv("COLUMNS", str(columns))
    screen = FakeTerminal()
    options = dict(hidden_size=16, batch_size=4, seq_length=16, warmup_steps=0, eval_every=10,
                   **budget)
    train_module.train(corpus, options, out_dir=tmp_path / "runs",
                       reporter=TrainProgress(screen))
    lines = re.split(r"[\r\n]", screen.getvalue())
    for line in lines:  # a longer line is one word (a path), which no wrapping can break
        assert len(line) <= columns or " " not in line.strip(), line
    bars = [line for line in lines if line.startswith("train ")]
    assert bars and all(line.count("step") <= (1 if "time_limit" in budget else 0)
                        for line in bars)
    assert any("chars/s" in line for line in bars)
    header = lines[:4]
    assert header[0].startswith("training run 'c' in")
    # under a minute: the size rule's tiny preset, with the given hidden size
    assert any(line.startswith("model   lstm 1×16") for line in lines)
    assert any(line.startswith("size    1×16, dropout") and "(--hidden-size as given)" in
               " ".join((line + " " + next(iter(lines[lines.index(line) + 1:]), "")).split())
               for line in lines)


# ----------------------------------------------------------------------------- completion


def complete(args, incomplete, env=None):
    """What `charrnn ARGS INCOMPLETE<TAB>` offers in bash: (type, value) pairs."""
    words = ["charrnn", *args, incomplete]
    result = CliRunner().invoke(cli, [], prog_name="charrnn", env={
        "_CHARRNN_COMPLETE": "bash_complete", "COMP_WORDS": " ".join(words),
        "COMP_CWORD": str(len(words) - 1), **(env or {})})
    return [tuple(line.split(",", 1)) for line in result.stdout.splitlines()]


COMPLETIONS = [  # (args, incomplete, expected items, items that must not be there)
    (["sample"], "", {("file", ""), ("plain", "shakespeare"), ("plain", "short")}, set()),
    (["sample"], "sh", {("file", "sh"), ("plain", "shakespeare"), ("plain", "short")}, set()),
    (["sample"], "sha", {("file", "sha"), ("plain", "shakespeare")}, {("plain", "short")}),
    (["sample"], "./sh", {("file", "./sh")}, {("plain", "shakespeare")}),
    (["info"], "s", {("file", "s"), ("plain", "short")}, set()),
    (["eval"], "s", {("file", "s"), ("plain", "short")}, set()),
    (["eval", "short"], "te", {("file", "te")}, set()),
    (["logs"], "", {("plain", "shakespeare"), ("plain", "short")}, set()),
    (["logs", "short"], "sha", {("plain", "shakespeare")}, set()),
    (["train", "--resume"], "sh", {("file", "sh"), ("plain", "shakespeare")}, set()),
    (["train"], "corp", {("file", "corp")}, {("plain", "shakespeare")}),
    (["sample", "--prime-file"], "pri", {("file", "pri")}, set()),
    (["logs", "short", "--plot"], "a.p", {("file", "a.p")}, set()),
    (["train", "--out-dir"], "ru", {("dir", "ru")}, set()),
    (["sample", "--out-dir", "elsewhere"], "", {("file", "")}, {("plain", "short")}),
]


@pytest.mark.parametrize("args, incomplete, expected, absent", COMPLETIONS)
def test_completion_offers_run_names_and_keeps_paths(tmp_path, args, incomplete, expected,
                                                      absent):
    for name in ("shakespeare", "short"):
        write_run(tmp_path / "runs", name)
    (tmp_path / "elsewhere").mkdir()
    items = set(complete(args, incomplete, env={"CHARRNN_HOME": str(tmp_path / "runs")}))
    assert expected <= items, items
    assert not absent & items, items
    if ("file", incomplete) in items:  # bash's script needs the file item first
        assert complete(args, incomplete,
                        env={"CHARRNN_HOME": str(tmp_path / "runs")})[0][0] == "file"


# ----------------------------------------------------------------------------- where runs live


def test_charrnn_home_is_where_runs_live(tmp_path, corpus, monkeypatch):
    monkeypatch.chdir(tmp_path)
    home = {"CHARRNN_HOME": str(tmp_path / "home")}
    assert invoke("train", corpus, *TINY, "--max-steps", 2, "-q", env=home).exit_code == 0
    assert (tmp_path / "home" / "c" / "latest.npz").is_file()
    assert not (tmp_path / "checkpoints").exists()
    # a 2-step run's end is evaluated, so it has a best.npz to sample from (test_run_end.py)
    assert "home/c/best.npz" in invoke("sample", "-n", 3, env=home).stderr
    assert re.search(r"^c\s+finished", invoke("logs", env=home).stdout, re.M)
    assert invoke("info", "c", env=home).exit_code == 0
    assert invoke("train", "--resume", "c", "--max-steps", 3, "-q", env=home).exit_code == 0
    assert invoke("logs", "c", "--out-dir", tmp_path / "home").exit_code == 0  # the option wins


@pytest.mark.parametrize("args", [["sample"], ["info"], ["eval", "x.txt"], ["sample", "nope"],
                                  ["train", "--resume", "nope"], ["logs", "nope"]])
def test_no_runs_says_where_it_looked_and_how_to_look_elsewhere(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert_refused(result, 1, [f"({tmp_path / 'checkpoints'})", "--out-dir or CHARRNN_HOME"])


# ----------------------------------------------------------------------------- small things


@pytest.fixture
def trained(tmp_path, corpus):
    out = tmp_path / "runs"
    result = train(corpus, *TINY, "--max-steps", 7, "--eval-every", 3, "--out-dir", out)
    assert result.exit_code == 0, result.stderr
    return out / "c"


@pytest.mark.parametrize("what", ["name", "directory", "checkpoint"])
def test_eval_of_a_run_without_a_file_asks_for_the_text(trained, monkeypatch, what):
    monkeypatch.chdir(trained.parent.parent)
    arg = {"name": "c", "directory": "runs/c", "checkpoint": "runs/c/best.npz"}[what]
    result = invoke("eval", arg, "--out-dir", "runs")
    assert_refused(result, 2, [f"{arg} is a run or checkpoint", "give the text file"])


def test_one_step_is_singular(tmp_path, corpus):
    result = train(corpus, *TINY, "--max-steps", 1, "--out-dir", tmp_path / "runs")
    assert "after 1 step," in result.stderr and "1 steps" not in result.stderr
    shown = invoke("logs", "c", "--out-dir", tmp_path / "runs").stdout
    assert "1 step," in shown and "1 steps" not in shown


def test_info_shows_the_learning_rate_in_force_and_one_epoch(trained):
    table = invoke("info", trained)
    report = json.loads(invoke("info", trained, "--format", "json").stdout)
    assert "learning_rate=0.003" in table.stdout and "learning_rate=None" not in table.stdout
    assert report["training"]["learning_rate"] == 0.003
    epochs = re.search(r"^epochs\s+(\S+)", table.stdout, re.M).group(1)
    assert epochs == f"{report['training']['epoch']:.2f}" != "0.00"
    assert report["training"]["epoch"] == load(trained / "best.npz").training.epoch_float


@pytest.mark.parametrize("x, data", [("step", range(0, 2805, 10)), ("time", range(0, 600, 3)),
                                     ("step", range(3, 40))])
@pytest.mark.parametrize("width", [80, 100, 137])
def test_chart_x_labels_sit_under_their_ticks(x, data, width):
    series = [charts.Series("train", list(data), [1 + 1 / (v + 1) for v in data], "red")]
    console = Console(width=width, color_system=None)
    with console.capture() as captured:
        console.print(charts.LineChart(series, "loss", x_kind=x, height=6))
    assert _labels_under_ticks(captured.get().splitlines()), captured.get()


def test_a_single_run_image_is_titled_with_its_run(tmp_path, monkeypatch):
    write_run(tmp_path, "shakespeare")
    drawn = {}
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", type("M", (), {}))
    monkeypatch.setattr(charts, "save_image", lambda path, specs, x, title="":
                        drawn.update(path=path, title=title))
    result = invoke("logs", "shakespeare", "--out-dir", tmp_path, "--plot", tmp_path / "a.png")
    assert result.exit_code == 0, result.output
    assert drawn["title"] == "shakespeare"


def _labels_under_ticks(lines):
    """Whether each x label of a rendered chart (its lines) is centred on a tick."""
    axis = next(i for i, line in enumerate(lines) if "└" in line)
    ticks = [i for i, ch in enumerate(lines[axis]) if ch == "┬"]
    labels = [(m.start(), m.end()) for m in re.finditer(r"\S+", lines[axis + 1])]
    return len(labels) >= 2 and all(any(abs((a + b - 1) / 2 - t) <= 1 for t in ticks)
                                    for a, b in labels)


def test_readme_example_tables_match_todays_output():
    """README's `charrnn logs` table has the columns the code prints (those that fit its width:
    the first of DROP_ORDER dropped), its run panel the code's fields, its chart the labels
    under their ticks; and the venv note comes before `pip install .`."""
    from charrnn.ui import DROP_ORDER, RUN_COLUMNS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    table = re.search(r"`charrnn logs`:\n\n```text\n(.*?)```", readme, re.S).group(1)
    shown = table.splitlines()[1].split()
    columns = [h.split("\n")[-1] for h, _, _ in RUN_COLUMNS]
    dropped = [c for c in columns if c not in shown]
    assert shown == [c for c in columns if c not in dropped]
    first = [h.split("\n")[-1] for h in DROP_ORDER[:len(dropped)]]  # the first dropped
    assert sorted(dropped) == sorted(first)
    if dropped:  # and the table says so, in the order they were dropped
        assert f"left out for want of width: {', '.join(first)}" in " ".join(table.split())
    panel = re.search(r"--height 10`.*?\n\n```text\n(.*?)```", readme, re.S).group(1)
    fields = re.findall(r"^│ (\w[\w ]*?)  ", panel, re.M)
    assert fields == ["model", "size", "corpus", "training", "progress", "best val",
                      "last val", "last train", "started", "engine", "ended"]
    assert re.search(r"│ progress +[\d,]+ steps, [\d.]+ epochs", panel)
    assert _labels_under_ticks(panel.splitlines())
    quick = readme.index("## Quick start")
    assert readme.index("python3 -m venv", quick) < readme.index("pip install .", quick)
