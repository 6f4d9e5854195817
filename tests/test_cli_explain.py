"""`charrnn explain` through the command line, its terminal rendering and its HTML page (as
text; tests/test_explain_html.py opens the page in a browser). Bad input is in the table of
tests/test_hostile_input.py."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console

from charrnn.explain import html as explain_html
from charrnn.explain import view as explain_view
from charrnn.charts import LineChart, Series
from charrnn.cli import cli
from test_sampling import HELLO, save_checkpoint

TEXT = HELLO * 30


def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "100", **(env or {})})


@pytest.fixture
def ckpt(tmp_path):
    return save_checkpoint(tmp_path / "hello.npz", HELLO, cell="gru")


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "hello.txt"
    path.write_text(TEXT + "QQ", encoding="utf-8")  # two characters the model never saw
    return path


def test_per_character_losses_average_to_what_eval_reports(ckpt, text_file):
    scored = run("eval", ckpt, text_file, "--format", "json")
    explained = run("explain", ckpt, text_file, "--format", "json")
    assert scored.exit_code == explained.exit_code == 0, explained.stderr
    a, b = json.loads(scored.stdout), json.loads(explained.stdout)
    assert b["nats_per_char"] == pytest.approx(a["nats_per_char"], rel=1e-5, abs=1e-6)
    assert b["chars_predicted"] == a["chars_scored"] and b["chars_skipped"] == 2
    assert b["nats"][0] is None and len(b["nats"]) == len(b["text"]) == len(TEXT)
    assert np.mean(b["nats"][1:]) == pytest.approx(b["nats_per_char"])
    assert "skipped 2 character(s) the model does not know: 'Q'" in explained.stderr


def test_the_default_view_is_the_text_with_bars_and_a_summary(ckpt, text_file):
    result = run("explain", ckpt, text_file)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0] == "hello world, " * 7 + "hello "  # wrapped after a space, in 100 columns
    assert set(lines[1]) <= set(explain_view.BARS) and len(lines[1]) == len(lines[0])
    words = " ".join(result.stdout.split())  # the summary wraps at 100 columns
    assert re.search(r" \d\.\d{4} nats/char, \d\.\d{4} bits/char over 389 predicted characters "
                     r"\(2 unknown skipped\); most surprising: «", words)
    assert result.stderr.startswith("using ") and "\x1b[" not in result.stdout


def test_colour_goes_to_the_background_in_a_terminal(ckpt):
    from charrnn import explain

    model, vocab = _model(ckpt)
    e = explain.explain(model, vocab, TEXT[:60])
    console = Console(width=80, force_terminal=True, color_system="truecolor", record=True)
    console.print(explain_view.terminal_view(e))
    out = console.export_text(styles=True)
    assert "48;2;" in out  # a 24-bit background colour
    assert not any(set(line) <= set(explain_view.BARS + " ") and line.strip()
                   for line in console.export_text().split("\n"))  # no bar lines in colour


def _model(ckpt):
    from charrnn import checkpoint

    c = checkpoint.load(ckpt)
    return c.model, c.vocab


def test_top_k_lists_the_span_with_the_next_character_in_brackets(ckpt):
    result = run("explain", ckpt, "--text", "hello world", "--top-k", "3", "--span", "2:5")
    assert result.exit_code == 0, result.stderr
    rows = result.stdout.split("the 3 most probable next characters, positions 2:5\n")[1]
    rows = rows.strip().split("\n")[1:]
    assert [r.split()[:2] for r in rows] == [["2", "l"], ["3", "l"], ["4", "o"]]
    assert "[l]" in rows[0] and "[o]" in rows[1] and "[␣]" in rows[2]


def test_a_unit_colours_the_text_and_states_its_range(ckpt, text_file):
    result = run("explain", ckpt, text_file, "--unit", "1:3", "--gate", "z", "--format", "json")
    assert result.exit_code == 0, result.stderr
    (unit,) = json.loads(result.stdout)["units"]
    assert unit["option"] == "--unit 1:3 --gate z" and len(unit["values"]) == len(TEXT)
    assert 0 <= unit["min"] <= unit["max"] <= 1  # a sigmoid gate
    view = run("explain", ckpt, text_file, "--unit", "1:3", "--gate", "z")
    assert view.stdout.startswith(f"layer 1 z[3] (gate): from {unit['min']:.3g} to "
                                  f"{unit['max']:.3g}")
    assert "colours centred on 0.5" in view.stdout


def test_the_analyses_in_the_terminal(ckpt, text_file):
    result = run("explain", ckpt, text_file, "--find", "--saturation", "--gradient-flow",
                 "--window", "30", "--windows", "5")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "units that track a feature of the text" in out
    assert re.search(r"^whitespace +[+-]0\.\d{3} +layer \d h\[\d+\] +--unit \d:\d+ --state h",
                     out, re.M)
    assert "gate saturation" in out and re.search(r"^ +1 +z +\d+\.\d% ", out, re.M)
    assert "mean over 5 windows of 30 characters" in out
    assert "k (steps back from the last position)" in out
    assert re.search(r"^ +0 +h +\S+ +\S+ +(\d+|> 29)$", out, re.M)


def test_json_holds_every_section_asked_for(ckpt, text_file):
    result = run("explain", ckpt, text_file, "--format", "json", "--top-k", "2", "--find",
                 "--find-top", "1", "--saturation", "--gradient-flow", "--window", "20")
    data = json.loads(result.stdout)
    assert data["checkpoint"] == str(ckpt)
    assert data["top_k"]["start"] == 0 and data["top_k"]["end"] == 40
    assert len(data["top_k"]["chars"]) == 40 and len(data["top_k"]["probs"][0]) == 2
    assert [m["feature"] for m in data["finder"]][:3] == ["quotes", "brackets", "line_position"]
    assert all(len(m["units"]) <= 1 for m in data["finder"])
    assert {(s["layer"], s["gate"]) for s in data["saturation"]} == {
        (layer, g) for layer in (0, 1) for g in "rzn"}
    flow = data["gradient_flow"]
    assert flow["window"] == 20 and flow["windows"] == 19 and len(flow["starts"]) == 19
    assert [(n["layer"], n["state"]) for n in flow["norms"]] == [(0, "h"), (1, "h")]
    assert all(len(n["norm"]) == 20 for n in flow["norms"])


def test_html_writes_one_page_and_prints_nothing(ckpt, text_file, tmp_path):
    page = tmp_path / "page.html"
    result = run("explain", ckpt, text_file, "--html", page)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and f"wrote {page}" in result.stderr
    html = page.read_text(encoding="utf-8")
    assert "__CHARRNN" not in html and not re.search(r"(src|href)=\"(?!data:)", html)
    both = run("explain", ckpt, text_file, "--html", page, "--format", "json")
    assert json.loads(both.stdout)["top_k"]["k"] == 5


def test_nothing_in_the_text_can_end_the_pages_script(tmp_path):
    from charrnn import explain
    from charrnn.data import Vocab
    from charrnn.model import CharRNN, ModelConfig

    text = 'a</script><script>alert("x")</script>\u2028 & <!-- b'
    vocab = Vocab(text)
    model = CharRNN(ModelConfig("lstm", vocab.size, 8, 1))
    e = explain.explain(model, vocab, text, **explain_html.page_options(model.config, len(text)),
                        window=10)
    page = explain_html.render(e, "</title><script>", "model")
    assert page.count("</script>") == page.count("<script")
    data = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    decoded = json.loads(data.group(1))
    assert decoded["text"] == text and decoded["title"] == "</title><script>"


def test_a_log_scale_chart_has_ticks_at_powers_of_ten():
    series = [Series("g", list(range(50)), [10.0 ** (-k / 10) for k in range(50)], "#4e9cff")]
    console = Console(width=60, record=True, color_system=None)
    console.print(LineChart(series, "norms", log_y=True, x_name="k"))
    labels = re.findall(r"^ *(\S+) ┤", console.export_text(), re.M)
    assert labels == ["1", "0.1", "0.01", "0.001", "1e-4", "1e-5"]
