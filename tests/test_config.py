"""config.py's parse_duration: the forms --time-limit reads, and those it refuses."""

import pytest

from charrnn.config import parse_duration
from helpers.train_helpers import make_corpus, train


@pytest.mark.parametrize("text, seconds", [
    ("90", 90), ("90s", 90), ("10m", 600), ("1h", 3600), ("2.5h", 9000), ("0.5m", 30),
    ("1h30m", 5400), ("1h30", 5400),  # a number after a unit counts in the next smaller one
    ("10m30", 630), ("1h30m15", 5415), ("1h30m15s", 5415), ("1h15s", 3615), (" 1H ", 3600),
    (".5h", 1800),
])
def test_durations_it_reads(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", [
    "10m10m", "1h1h", "30s30s",  # a repeated unit
    "30m1h", "10s5m",  # units out of order
    "10s5", "1h30m15s4",  # a number after seconds has no smaller unit
    "", "0", "0s", ".", "1.2.3", "h", "1hm", "1h-30", "-5m", "inf", "nan", "1e3", "²", "١٠",
    "1 h", "5d",
])
def test_durations_it_refuses(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_the_command_line_reads_1h30_as_ninety_minutes_and_refuses_a_repeated_unit(tmp_path):
    corpus = make_corpus(tmp_path / "c.txt", chars=500)
    result = train(corpus, "--time-limit", "10m10m", "--out-dir", tmp_path / "runs")
    assert result.exit_code == 2 and "each unit once" in result.stderr
    assert not (tmp_path / "runs").exists()
    result = train(corpus, "--time-limit", "1h30", "--max-steps", 1, "--hidden-size", 8,
                   "--num-layers", 1, "--dropout", 0, "--out-dir", tmp_path / "runs", "-q")
    assert result.exit_code == 0, result.stderr
    from helpers.train_helpers import events
    [run] = (tmp_path / "runs").iterdir()
    assert events(run, "start")[0]["config"]["train"]["time_limit"] == 5400
