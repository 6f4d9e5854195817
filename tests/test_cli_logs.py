"""`charrnn logs`: the runs table, one or several runs' curves, JSON/CSV export, --plot,
--follow."""

import csv
import io
import json
import sys
import time

import pytest
from click.testing import CliRunner

from charrnn import lock, runlog, runs
from charrnn.cli import cli
from test_runs import make_records, write_run

WIDE = {"COLUMNS": "160", "NO_COLOR": None, "FORCE_COLOR": None, "TERM": "dumb"}


def logs(*args, env=None):
    return CliRunner().invoke(cli, ["logs", *map(str, args)], env={**WIDE, **(env or {})})


def metric_lines(run_dir):
    return [r for r in runlog.read_log(run_dir / "log.jsonl") if r["event"] in ("train", "eval")]


# ----------------------------------------------------------------------------- the table


def test_table_lists_runs_newest_first_with_status_and_numbers(tmp_path):
    write_run(tmp_path, "done", end="max_steps", wall="2024-01-01T10:00:00+00:00")
    write_run(tmp_path, "stopped", end="interrupted", wall="2024-01-02T10:00:00+00:00")
    write_run(tmp_path, "exploded", end="diverged", steps=100, wall="2024-01-03T10:00:00+00:00")
    write_run(tmp_path, "dead", end=None, cell="gru", wall="2024-01-04T10:00:00+00:00")
    result = logs("--out-dir", tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    rows = {line.split()[0]: line for line in lines if line.split()}
    assert [name for name in rows if name in ("done", "stopped", "exploded", "dead")] == \
        ["dead", "exploded", "stopped", "done"]
    assert "finished" in rows["done"] and "interrupted" in rows["stopped"]
    assert "diverged" in rows["exploded"] and "crashed" in rows["dead"]
    assert "gru 2×256" in rows["dead"] and "lstm 2×256" in rows["done"]
    info = runs.summarize(tmp_path / "exploded")
    assert f"{info.best_val_loss:.3f}" in rows["exploded"]
    assert f"{info.best_val_bpc:.3f}" in rows["exploded"]
    assert "805k" in rows["done"] and "2024-01-01" in rows["done"]
    assert result.stderr == ""


def test_table_shows_a_live_training_as_running(tmp_path):
    run_dir = write_run(tmp_path, "live", end=None)
    with lock.RunLock(run_dir):
        assert "running" in logs("--out-dir", tmp_path).stdout
        assert "running" in logs("--out-dir", tmp_path, "live").stdout
    assert "crashed" in logs("--out-dir", tmp_path).stdout


def test_table_rows_for_odd_runs_and_skips_non_runs(tmp_path):
    write_run(tmp_path, "noeval", eval_every=0, end=None)
    write_run(tmp_path, "empty", [])
    write_run(tmp_path, "torn", tail='{"event": "tra')
    (tmp_path / "notes").mkdir()
    result = logs("--out-dir", tmp_path)
    assert result.exit_code == 0 and result.stderr == ""
    assert {"noeval", "empty", "torn"} <= set(result.stdout.split())
    assert "notes" not in result.stdout
    assert "Traceback" not in result.output


def test_table_fits_a_narrow_terminal_by_dropping_columns(tmp_path):
    write_run(tmp_path, "shakespeare")
    result = logs("--out-dir", tmp_path, env={"COLUMNS": "60"})
    assert all(len(line) <= 60 for line in result.stdout.splitlines())
    assert "shakespeare" in result.stdout and "finished" in result.stdout
    assert "started" not in result.stdout


def test_no_runs_and_missing_out_dir(tmp_path):
    for out_dir in (tmp_path, tmp_path / "missing"):
        result = logs("--out-dir", out_dir)
        assert result.exit_code == 0
        assert result.stdout == ""
        assert "no runs in" in result.stderr and "charrnn train" in result.stderr
    assert "does not exist" in logs("--out-dir", tmp_path / "missing").stderr
    result = logs("--out-dir", tmp_path / "missing", "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []


def test_listing_as_json_and_csv(tmp_path):
    write_run(tmp_path, "a", wall="2024-01-01T10:00:00+00:00")
    write_run(tmp_path, "b", end=None, eval_every=0, wall="2024-01-02T10:00:00+00:00")
    result = logs("--out-dir", tmp_path, "--format", "json")
    data = json.loads(result.stdout)
    assert [d["name"] for d in data] == ["b", "a"]
    assert data[1]["status"] == "finished" and data[0]["best_val_loss"] is None
    assert data[1]["best_val_loss"] == pytest.approx(runs.summarize(tmp_path / "a").best_val_loss)
    rows = list(csv.DictReader(io.StringIO(logs("--out-dir", tmp_path, "--format", "csv").stdout)))
    assert [r["name"] for r in rows] == ["b", "a"] and rows[0]["status"] == "crashed"


# ----------------------------------------------------------------------------- one or more runs


def test_one_run_summary_and_chart(tmp_path):
    write_run(tmp_path, "shakespeare", steps=400)
    result = logs("--out-dir", tmp_path, "shakespeare")
    assert result.exit_code == 0, result.output
    out = result.stdout
    info = runs.summarize(tmp_path / "shakespeare")
    assert "shakespeare" in out and "finished" in out
    assert f"{info.best_val_loss:.3f} nats/char" in out
    assert "loss (nats/char)" in out and "step" in out
    assert "train" in out and "val" in out
    assert any("\u2800" < ch <= "\u28ff" for ch in out), "the curve is drawn in braille"
    assert "400" in out  # the x axis reaches the last step
    result = logs("--out-dir", tmp_path, "shakespeare", "--x", "time", "--lr", "--grad-norm")
    assert "time (training)" in result.stdout
    assert "learning rate" in result.stdout and "gradient norm" in result.stdout


def test_run_by_path_and_unknown_names(tmp_path):
    run_dir = write_run(tmp_path, "shakespeare")
    assert logs("--out-dir", tmp_path / "elsewhere", run_dir).exit_code == 0
    result = logs("--out-dir", tmp_path, "shakespear")
    assert result.exit_code == 1
    assert "no run named 'shakespear'" in result.stderr and "shakespeare" in result.stderr
    (tmp_path / "notes").mkdir()
    result = logs("--out-dir", tmp_path, "notes")
    assert result.exit_code == 1 and "is not a run" in result.stderr
    result = logs("--out-dir", tmp_path / "missing", "x")
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_two_runs_overlaid(tmp_path):
    write_run(tmp_path, "small", steps=300, start_loss=4.0)
    write_run(tmp_path, "large", steps=500, cell="gru")
    result = logs("--out-dir", tmp_path, "small", "large")
    assert result.exit_code == 0, result.output
    legend = [line for line in result.stdout.splitlines() if "small train" in line]
    assert legend and "large train" in legend[0] and "large val" in legend[0]
    assert "gru 2×256" in result.stdout and "lstm 2×256" in result.stdout  # the table


def test_torn_last_line_empty_log_and_no_eval(tmp_path):
    write_run(tmp_path, "torn", end=None, tail='{"event": "train", "step": 9')
    result = logs("--out-dir", tmp_path, "torn")
    assert result.exit_code == 0 and result.stderr == ""
    assert "crashed" in result.stdout
    write_run(tmp_path, "empty", [])
    result = logs("--out-dir", tmp_path, "empty")
    assert result.exit_code == 0 and "no data logged yet" in result.stdout
    write_run(tmp_path, "noeval", eval_every=0, end=None)
    result = logs("--out-dir", tmp_path, "noeval")
    assert result.exit_code == 0 and "no evaluation yet" in result.stdout


def test_bad_line_in_the_middle_warns_on_stderr(tmp_path):
    records = make_records()
    run_dir = write_run(tmp_path, "r", records[:5])
    with open(run_dir / "log.jsonl", "a") as f:
        f.write("oops\n" + "".join(json.dumps(r) + "\n" for r in records[5:]))
    result = logs("--out-dir", tmp_path, "r")
    assert result.exit_code == 0
    assert "skipped 1 unreadable line" in result.stderr


# ----------------------------------------------------------------------------- data export


def test_json_is_the_train_and_eval_records(tmp_path):
    run_dir = write_run(tmp_path, "r", tail='{"event": "eval", "st')
    result = logs("--out-dir", tmp_path, "r", "--format", "json")
    assert result.exit_code == 0 and result.stderr == ""
    assert json.loads(result.stdout) == metric_lines(run_dir)
    assert {r["event"] for r in json.loads(result.stdout)} == {"train", "eval"}


def test_csv_is_the_train_and_eval_records(tmp_path):
    run_dir = write_run(tmp_path, "r")
    result = logs("--out-dir", tmp_path, "r", "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    records = metric_lines(run_dir)
    assert len(rows) == len(records)
    assert list(rows[0])[:4] == ["event", "step", "epoch", "time"]
    for row, record in zip(rows, records):
        assert set(row) == set(runlog.record_columns(records))
        for key in row:
            if key in record:
                expected = record[key]
                assert (row[key] == expected if isinstance(expected, str)
                        else float(row[key]) == pytest.approx(expected))
            else:
                assert row[key] == ""


def test_json_of_two_runs_names_each_record(tmp_path):
    a, b = write_run(tmp_path, "a", steps=100), write_run(tmp_path, "b", steps=50)
    data = json.loads(logs("--out-dir", tmp_path, "a", "b", "--format", "json").stdout)
    expected = [{"run": "a", **r} for r in metric_lines(a)] + \
        [{"run": "b", **r} for r in metric_lines(b)]
    assert data == expected


# ----------------------------------------------------------------------------- output, plot, follow


def test_plain_output_without_a_terminal_or_with_no_color(tmp_path):
    write_run(tmp_path, "a")
    write_run(tmp_path, "b")
    forced = logs("--out-dir", tmp_path, "a", "b", env={"FORCE_COLOR": "1", "TERM": "xterm"})
    assert "\x1b[" in forced.stdout  # the check below can fail
    for env in ({}, {"NO_COLOR": "1"}):
        for args in ((), ("a",), ("a", "b")):
            result = logs("--out-dir", tmp_path, *args, env=env)
            assert result.exit_code == 0 and "\x1b" not in result.stdout
    no_color = logs("--out-dir", tmp_path, "a", "b", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[38" not in no_color.stdout  # no colour codes
    assert "○" in no_color.stdout and "□" in no_color.stdout  # runs told apart by markers


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch):
    write_run(tmp_path, "a")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = logs("--out-dir", tmp_path, "a", "--plot", tmp_path / "a.png")
    assert result.exit_code == 1
    assert result.stderr.strip() == \
        "Error: --plot needs matplotlib; install it with: pip install matplotlib"
    assert not (tmp_path / "a.png").exists()


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    write_run(tmp_path, "a")
    write_run(tmp_path, "b")
    result = logs("--out-dir", tmp_path, "a", "b", "--plot", tmp_path / "ab.png", "--lr")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ab.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_usage_errors(tmp_path):
    assert logs("--out-dir", tmp_path, "-f", "--format", "json").exit_code == 2
    assert logs("--out-dir", tmp_path, "--plot", tmp_path / "x.png").exit_code == 2


def test_follow_redraws_as_the_log_grows_and_exits_when_the_run_ends(tmp_path, monkeypatch):
    first = make_records(steps=100, end=None)
    run_dir = write_run(tmp_path, "r", first)
    more = [r for r in make_records(steps=300) if r["event"] != "start" and r["step"] > 100]
    held, calls = lock.RunLock(run_dir).acquire(), []

    def sleep(seconds):  # the training appends its records, then ends
        calls.append(seconds)
        if len(calls) == 1:
            with open(run_dir / "log.jsonl", "a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in more))
        else:
            held.release()

    monkeypatch.setattr(time, "sleep", sleep)
    result = logs("--out-dir", tmp_path, "r", "-f")
    assert result.exit_code == 0, result.output
    assert len(calls) == 2 and calls[0] == pytest.approx(1.0)
    assert "300 steps" in result.stdout and "finished" in result.stdout
    assert logs("--out-dir", tmp_path, "r", "-f").exit_code == 0  # not training: shown once
    assert len(calls) == 2


@pytest.mark.parametrize("args", [["r"], []])
def test_ctrl_c_while_following_exits_130(tmp_path, monkeypatch, args):
    run_dir = write_run(tmp_path, "r", make_records(steps=100, end=None))

    def sleep(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", sleep)
    with lock.RunLock(run_dir):
        result = logs("--out-dir", tmp_path, *args, "-f")
    assert result.exit_code == 130 and "Aborted" not in result.stderr, result.output
    assert "running" in result.stdout


def test_odd_values_in_a_log_never_give_a_traceback(tmp_path):
    records = [
        {"event": "start", "step": 0, "time": 0, "epoch": 0, "wall": "yesterday",
         "config": {"model": "lstm", "train": [1], "corpus": "[bold]x[/bold]",
                    "num_params": "many"}},
        {"event": "train", "step": "ten", "time": None, "epoch": 0.1, "loss": "NaN"},
        {"event": "train", "step": 10, "time": 1.0, "epoch": 0.1, "loss": float("nan")},
        {"event": "train", "step": 20, "time": 2.0, "epoch": 0.2, "loss": 2.5, "lr": True},
        {"event": "eval", "step": 20, "time": 2.0, "epoch": 0.2, "val_loss": None},
        {"no event": 1},
        {"event": "end", "step": 20, "reason": 3},
    ]
    write_run(tmp_path, "odd", records)
    for args in ((), ("odd",), ("odd", "--lr", "--grad-norm", "--x", "time")):
        result = logs("--out-dir", tmp_path, *args)
        assert result.exit_code == 0, result.output
        assert "odd" in result.stdout and "finished" in result.stdout
    assert "[bold]x[/bold]" in logs("--out-dir", tmp_path, "odd").stdout  # not read as markup
