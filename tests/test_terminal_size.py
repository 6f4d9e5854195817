"""What charrnn prints to a terminal of 80×24 fits it (issue 29, items 2 and 3): each command
runs inside a pseudo-terminal of that size, and no line left on the screen (colour codes
removed, carriage-return redraws resolved) is wider than 80 columns; `logs -f` fits the
terminal's height; a Ctrl-C leaves no '^C' and no second bar.
"""

import re

import pytest

from charrnn import terminal
from tests.helpers.terminal import run_in_terminal, screen_lines, too_wide
from tests.helpers.train_helpers import TINY, make_corpus, train

# an out-dir whose absolute paths are far wider than 80 columns
DEEP = ("a_rather_long_directory_name_for_the_runs_of_this_test/"
        "and_another_level_of_nesting_below_it")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished tiny runs with evaluations, under a deep out-dir: (out_dir, corpus)."""
    root = tmp_path_factory.mktemp("terminal")
    corpus = make_corpus(root / "corpus.txt", chars=6000)
    out = root / DEEP
    for name in ("first", "a-second-run-with-a-rather-long-name"):
        result = train(corpus, *TINY, "--max-steps", 30, "--eval-every", 5, "--out-dir", out,
                       "--name", name)
        assert result.exit_code == 0, result.stderr
    return out, corpus


def test_the_shared_wrap_breaks_at_spaces_and_long_paths_after_a_slash():
    text = "done (max steps) after 30 steps: best validation loss 2.1 nats/char (3.0 bits/char)."
    wrapped = terminal.wrap(text, 40).splitlines()
    assert all(len(line) <= 40 for line in wrapped)
    assert " ".join(w.strip() for w in wrapped) == text  # broken only at spaces
    path = "/very/long/" + "/".join(["component"] * 12)
    pieces = terminal.wrap(f"next: charrnn sample {path}", 30).splitlines()
    assert all(len(line) <= 30 for line in pieces)
    assert all(line.endswith("/") for line in pieces[1:-1])
    assert terminal.wrap(text, None) == text  # not a terminal: as it is


def test_train_lines_fit_80_columns(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt", chars=6000)
    code, out = run_in_terminal(["train", str(corpus), *TINY, "--max-steps", "20",
                                 "--eval-every", "10", "--out-dir", str(tmp_path / DEEP)],
                                cwd="/")
    assert code == 0, out
    lines = screen_lines(out)
    assert any(line.startswith("done (max steps)") for line in lines), out
    assert any(line.startswith("checkpoints: best.npz and latest.npz in") for line in lines)
    assert too_wide(out) == []


def test_ctrl_c_leaves_no_caret_and_one_bar(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt", chars=6000)
    code, out = run_in_terminal(["train", str(corpus), *TINY, "--max-steps", "100000",
                                 "--eval-every", "100000", "--out-dir", str(tmp_path / DEEP)],
                                cwd="/", interrupt_after="chars/s")
    assert code == 130, out
    lines = screen_lines(out)
    assert not any("^" in line for line in lines), out
    assert sum(1 for line in lines if line.startswith("train ")) == 1, out
    assert any("Resume with: charrnn train --resume" in line for line in lines), out
    assert too_wide(out) == []


def test_explain_legend_and_gradient_flow_fit_80_columns(runs):
    out_dir, corpus = runs
    for env in ({}, {"NO_COLOR": "1"}):
        code, out = run_in_terminal(["explain", str(out_dir / "first"), str(corpus),
                                     "--gradient-flow", "--window", "20", "--windows", "4",
                                     "--with-text"], env=env, cwd="/")
        assert code == 0, out
        assert too_wide(out) == []
        lines = screen_lines(out)
        start = next(i for i, line in enumerate(lines) if line.startswith("surprise, nats"))
        end = next(i for i, line in enumerate(lines) if "nats/char, " in line)
        legend = lines[start:end]
        labels = re.findall(r"(?:^|\s)(<0\.5|[\d.]+\+?)(?=\s|$)", " ".join(legend))
        assert labels == ["<0.5", "0.5", "1", "1.5", "2", "3", "4", "6+"], legend
        swatch = r"[▁-█] " if env else r"   \S"  # a bar, or a coloured (blank) cell
        for line in legend[1:]:  # a continuation starts with a swatch, never a bare label
            assert re.match(swatch, line), legend
        assert any(line.startswith("gradient flow") for line in lines)


def test_two_run_chart_legend_fits_80_columns(runs):
    out_dir, _ = runs
    for x in ("step", "time"):
        code, out = run_in_terminal(["logs", "first", "a-second-run-with-a-rather-long-name",
                                     "--out-dir", str(out_dir), "--x", x], cwd="/")
        assert code == 0, out
        assert too_wide(out) == []
        legend = [line for line in screen_lines(out)
                  if re.search(r"[━─] \S+ (train|val)$", line)]
        assert len(legend) >= 2, out
        for line in legend:  # every entry keeps its line glyph: none is cut from its label
            assert re.fullmatch(r"(\s*(━━━|─.─) \S+ (train|val))+", line), line


def test_logs_follow_fits_24_rows(runs):
    out_dir, _ = runs
    code, out = run_in_terminal(["logs", "first", "--out-dir", str(out_dir), "-f"], cwd="/")
    assert code == 0, out
    lines = screen_lines(out)
    last = max(i for i, line in enumerate(lines) if line.startswith("╭─"))
    frame = lines[last:]
    while frame and not frame[-1]:
        frame.pop()
    assert len(frame) <= 23, "\n".join(frame)
    assert any("└" in line for line in frame), "\n".join(frame)  # the chart's axis is in view
    assert any("─●─ val" in line for line in frame)
    assert too_wide(out) == []


def test_logs_list_says_which_columns_it_left_out(runs):
    out_dir, _ = runs
    code, out = run_in_terminal(["logs", "--out-dir", str(out_dir)], cwd="/", columns=60)
    assert code == 0, out
    text = " ".join(screen_lines(out))
    assert "left out for want of width: started" in text
    assert too_wide(out, 60) == []


def test_the_last_x_label_of_a_chart_stays_inside_its_width():
    from rich.console import Console

    from charrnn.charts import LineChart, Series

    xs = [float(x) for x in range(0, 5401, 60)]  # ends on a tick labelled 1h30m
    chart = LineChart([Series("train", xs, [1 + 1 / (1 + x) for x in xs], "#4e9cff")],
                      "loss", x_kind="time")
    console = Console(width=80, file=None, color_system=None, record=True)
    with console.capture() as capture:
        console.print(chart)
    lines = capture.get().splitlines()
    assert any(line.split()[-2:] == ["1h", "1h30m"] for line in lines if line.strip()), \
        "\n".join(lines)  # the last label on the line of the others, not wrapped below
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
