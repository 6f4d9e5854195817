"""`charrnn sample` through the command line; `runs` makes the checkpoints that
test_cli_eval.py and test_cli_info.py use too."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from charrnn.cli import cli
from charrnn.scoring import score
from test_sampling import CYRILLIC, HELLO, cycle, save_checkpoint, trained


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """checkpoints/hello (best.npz) and checkpoints/ru (latest.npz only) in the working dir."""
    monkeypatch.chdir(tmp_path)
    for name, text, fname in (("hello", HELLO, "best.npz"), ("ru", CYRILLIC, "latest.npz")):
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
        save_checkpoint(tmp_path / "checkpoints" / name / fname, text)
    return tmp_path / "checkpoints"


# ----------------------------------------------------------------------------- sample


def test_sample_prints_prime_then_exactly_length_chars_and_a_newline(runs):
    result = run("sample", "hello", "--temp", "0", "--length", "30", "--prime", "hel")
    assert result.exit_code == 0, result.output
    assert result.stdout == "hel" + cycle(HELLO, 3, 30) + "\n"
    assert result.stderr.startswith(f"using {Path('checkpoints/hello/best.npz')}")


def test_sample_finds_the_checkpoint_from_a_dir_a_file_or_nothing(runs):
    by_dir = run("sample", runs / "ru", "-n", "50", "--seed", "3")
    by_file = run("sample", runs / "ru" / "latest.npz", "-n", "50", "--seed", "3")
    assert by_dir.exit_code == by_file.exit_code == 0
    assert by_dir.stdout == by_file.stdout and len(by_dir.stdout) == 51
    assert "latest.npz" in by_dir.stderr
    newest = run("sample", "-n", "5")
    assert newest.exit_code == 0 and "using checkpoints" in newest.stderr


def test_no_runs_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("sample")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no runs") and "charrnn train" in result.stderr


def test_same_seed_same_output_and_top_k_1_is_greedy(runs):
    a = run("sample", "hello", "--seed", "7", "--temp", "1.3", "--top-p", "0.95", "-n", "300")
    b = run("sample", "hello", "--seed", "7", "--temp", "1.3", "--top-p", "0.95", "-n", "300")
    c = run("sample", "hello", "--seed", "8", "--temp", "1.3", "--top-p", "0.95", "-n", "300")
    assert a.stdout == b.stdout != c.stdout
    assert "(seed 7)" in a.stderr
    greedy = run("sample", "hello", "--temp", "0", "--prime", "hello w", "-n", "100")
    top1 = run("sample", "hello", "--top-k", "1", "--seed", "5", "--prime", "hello w", "-n", "100")
    assert greedy.stdout == top1.stdout == "hello w" + cycle(HELLO, 7, 100) + "\n"


def test_several_samples_are_separated_by_a_line(runs):
    result = run("sample", "hello", "--num-samples", "3", "-n", "40", "--prime", "he", "--seed", "1")
    assert result.exit_code == 0
    samples = result.stdout.split("\n---\n")
    assert len(samples) == 3 and result.stdout.endswith("\n")
    assert all(s.rstrip("\n").startswith("he") and len(s.rstrip("\n")) == 42 for s in samples)
    custom = run("sample", "hello", "--num-samples", "2", "-n", "5", "--separator", "=====")
    assert custom.stdout.count("\n=====\n") == 1


def test_unknown_prime_characters_exit_1_naming_them(runs):
    result = run("sample", "hello", "--prime", "héllo!")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines()[-1].startswith("Error: the prime has 2 character(s)")
    assert "'!', 'é'" in result.stderr and "--unknown skip" in result.stderr
    skipped = run("sample", "hello", "--prime", "hé!llo", "--unknown", "skip", "--temp", "0", "-n", "8")
    assert skipped.exit_code == 0
    assert skipped.stdout == "hé!llo" + cycle(HELLO, 5, 8) + "\n"
    assert "skipping 2 prime character(s)" in skipped.stderr


def test_cyrillic_run_with_a_cyrillic_prime(runs):
    result = run("sample", "ru", "--prime", "привет", "--temp", "0", "-n", "20")
    assert result.exit_code == 0, result.output
    assert result.stdout == "привет" + cycle(CYRILLIC, 6, 20) + "\n"


def test_prime_file(runs):
    Path("prime.txt").write_text("hello w", encoding="utf-8")
    result = run("sample", "hello", "--prime-file", "prime.txt", "--temp", "0", "-n", "10")
    assert result.stdout == "hello w" + cycle(HELLO, 7, 10) + "\n"
    both = run("sample", "hello", "--prime-file", "prime.txt", "--prime", "x")
    assert both.exit_code == 2 and "not both" in both.stderr


@pytest.mark.parametrize("args", [["--temp", "-1"], ["--top-p", "0"], ["--top-p", "1.5"],
                                  ["--length", "-5"], ["--top-k", "0"], ["--num-samples", "0"],
                                  ["--seed", "-3"], ["--unknown", "ignore"]])
def test_bad_option_values_are_usage_errors(runs, args):
    result = run("sample", "hello", *args)
    assert result.exit_code == 2 and result.stdout == ""
    assert "Invalid value" in result.stderr


def test_sample_streams_before_it_ends(runs):
    """The first characters reach a pipe while the process is still generating."""
    import charrnn

    root = Path(charrnn.__file__).parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "charrnn", "sample", "hello", "-n", "100000000", "--temp", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    try:
        first = proc.stdout.read(20)  # returns once 20 bytes have arrived
        assert proc.poll() is None  # 10^8 characters: far from done
        assert len(first) == 20
    finally:
        proc.kill()
        proc.wait()


def test_stop_texts_end_each_sample_and_are_not_printed(runs):
    result = run("sample", "hello", "--temp", "0", "--prime", "hel", "--stop", "or", "-n", "40")
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello w\n"
    escaped = run("sample", "hello", "--temp", "0", "--prime", "hel", "--stop", r"\x72ld",
                  "--stop", r"\n", "-n", "40")
    assert escaped.stdout == "hello wo\n"
    batch = run("sample", "hello", "--seed", "3", "--temp", "1.5", "--num-samples", "4",
                "--stop", "l", "-n", "40", "--prime", "x", "--unknown", "skip")
    assert batch.exit_code == 0, batch.output
    samples = batch.stdout.split("\n---\n")
    assert len(samples) == 4 and all("l" not in s for s in samples)
    assert len({len(s) for s in samples}) > 1  # each stopped on its own


def test_a_stop_text_the_model_cannot_write_is_a_warning(runs):
    result = run("sample", "hello", "--temp", "0", "--stop", "é!", "-n", "5")
    assert result.exit_code == 0 and len(result.stdout) == 6
    assert ("warning: --stop 'é!' can never occur: the model does not know '!', 'é'."
            in result.stderr)


def jsonl(result):
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("\n")
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_jsonl_prints_one_record_per_sample_with_its_log_probability(runs):
    args = ["sample", "hello", "--format", "jsonl", "--num-samples", "3", "--seed", "5", "-n",
            "40", "--prime", "he", "--stop", "d", "--temp", "1.2", "--top-k", "5"]
    records = jsonl(run(*args))
    assert [r["sample"] for r in records] == [0, 1, 2]
    model, vocab = trained()
    for r in records:
        generated = r["text"] + (r["stop"] or "")
        assert r["stop"] in ("d", None) and "d" not in r["text"]
        assert (r["prime"], r["seed"], r["temperature"], r["top_k"], r["top_p"], r["beam"],
                r["stops"], r["length"]) == ("he", 5, 1.2, 5, None, None, ["d"], 40)
        total = score(model, vocab.encode("he" + generated))[0]
        total -= score(model, vocab.encode("he"))[0]
        assert r["nats_per_char"] == pytest.approx(total / len(generated), rel=1e-4)
        assert r["bits_per_char"] == pytest.approx(r["nats_per_char"] / math.log(2))
    assert jsonl(run(*args)) == records  # the seed reproduces them
    text = run(*[a for a in args if a != "jsonl" and a != "--format"])
    assert text.stdout == "\n---\n".join("he" + r["text"] for r in records) + "\n"


def test_beam_search_prints_the_most_probable_continuations(runs):
    greedy = run("sample", "hello", "--temp", "0", "--prime", "hel", "-n", "30")
    beam1 = run("sample", "hello", "--beam", "1", "--prime", "hel", "-n", "30")
    assert beam1.exit_code == 0, beam1.output
    assert beam1.stdout == greedy.stdout and "(beam 1)" in beam1.stderr
    records = jsonl(run("sample", "hello", "--beam", "4", "--num-samples", "3", "--prime", "hel",
                        "-n", "12", "--format", "jsonl"))
    assert records[0]["text"] == cycle(HELLO, 3, 12)
    assert len({r["text"] for r in records}) == 3
    assert [r["nats_per_char"] for r in records] == sorted(r["nats_per_char"] for r in records)
    assert all(r["seed"] is None and r["beam"] == 4 for r in records)
    stopped = run("sample", "hello", "--beam", "4", "--prime", "hel", "--stop", "w", "-n", "30")
    assert stopped.stdout == "hello \n"
