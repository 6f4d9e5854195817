"""Up-front limits of charrnn/sampling.py (`check_size`, which `generate` and so `charrnn
sample` run before the first character): a beam search beyond this machine's memory or time is
refused in one sentence naming the largest beam that fits; a length whose JSON records would
not fit in memory is refused (text mode streams); and Ctrl-C in the middle of records yields
what was generated, marked interrupted, as text mode prints what it had."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import checkpoint, errors, sampling
from charrnn.beam import search_cost
from charrnn.cli import cli
from charrnn.errors import CharRNNError
from charrnn.stepper import Stepper
from test_sampling import random_model

GIB = 2**30


def test_a_beam_of_three_million_for_50_characters_is_refused_with_the_largest_that_fits():
    """The issue's case: a 2×32 model, --beam 3000000 -n 50 ran for more than 300 s."""
    model, vocab = random_model(V=65, H=32, layers=2)
    with pytest.raises(CharRNNError) as err:
        sampling.generate(model, vocab, 50, beam=3_000_000)
    message = str(err.value)
    assert message.startswith("beam search with --beam 3,000,000 over 50 characters would take "
                              "about ") and "more than the limit of 10 minutes" in message
    most = int(message.rsplit("the largest --beam that fits is ", 1)[1].rstrip(".")
               .replace(",", ""))
    assert 1 <= most < 3_000_000 and "\n" not in message
    assert search_cost(model, most, 50)[1] <= sampling.BEAM_TIME_LIMIT
    assert search_cost(model, most + 1, 50)[1] > sampling.BEAM_TIME_LIMIT
    sampling.check_size(model, 50, beam=most)  # the one it names is accepted


def test_the_time_estimate_counts_the_work_per_candidate():
    """Most of a small model's beam step is the log-softmax, partition and sort of its B V
    candidates (measured: about 240 ns each on this machine's busy cores), not its weights."""
    model, _ = random_model(V=65, H=32, layers=2)
    _, seconds = search_cost(model, 3_000_000, 50)
    assert seconds > 50 * 3_000_000 * 65 * 1e-7


def test_a_beam_beyond_memory_names_the_limit_and_the_largest_beam(monkeypatch):
    model, vocab = random_model(V=65, H=32, layers=2)
    monkeypatch.setattr(errors, "_physical_memory", lambda: GIB)
    with pytest.raises(CharRNNError) as err:
        sampling.check_size(model, 50, beam=300_000)
    message = str(err.value)
    assert "of memory, more than the 0.8 GiB limit (80% of this machine's 1.0 GiB)" in message
    most = int(message.rsplit("is ", 1)[1].rstrip(".").replace(",", ""))
    sampling.check_size(model, 50, beam=most)
    with pytest.raises(CharRNNError):
        sampling.check_size(model, 50, beam=most + 1)


def test_a_length_no_beam_can_search_says_to_shorten_it():
    model, _ = random_model()
    with pytest.raises(CharRNNError, match="ask for a smaller --length"):
        sampling.check_size(model, 10**9, beam=1)


# ----------------------------------------------------------------------------- jsonl


def test_a_huge_length_as_records_is_refused_and_as_text_streams():
    model, vocab = random_model()
    n = 99999999999999999999
    with pytest.raises(CharRNNError) as err:
        sampling.generate(model, vocab, n, records=True)
    assert str(err.value).startswith(f"generating 1 sample(s) of {n:,} characters as JSON "
                                     "records, each holding its whole text, needs about ")
    assert str(err.value).endswith("use --format text, which streams.")
    stream = sampling.generate(model, vocab, n, rng=1)  # text: streamed, nothing held
    assert len([next(stream) for _ in range(5)]) == 5


def test_sample_jsonl_with_a_huge_length_is_one_line(tmp_path):
    model, vocab = random_model()
    path = tmp_path / "m.npz"
    checkpoint.save(path, checkpoint.Checkpoint(model=model, vocab=vocab))
    result = CliRunner().invoke(cli, ["sample", str(path), "-n", "99999999999999999999",
                                      "--format", "jsonl"])
    assert result.exit_code == 1 and result.stdout == ""
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "as JSON records" in error and result.stderr.endswith(error + "\n")


def interrupt_after(monkeypatch, steps):
    """Ctrl-C after `steps` generated characters: the stepper's step raises."""
    real, calls = Stepper.step, []

    def step(self, ids):
        calls.append(1)
        if len(calls) > steps:
            raise KeyboardInterrupt
        return real(self, ids)

    monkeypatch.setattr(Stepper, "step", step)


def test_ctrl_c_yields_the_records_as_they_stand(monkeypatch):
    model, vocab = random_model()
    interrupt_after(monkeypatch, 40)  # the priming reads one character first
    records = sampling.generate(model, vocab, 1000, rng=3, num_samples=2, records=True)
    got = []
    with pytest.raises(KeyboardInterrupt):
        for r in records:
            got.append(r)
    assert [r["sample"] for r in got] == [0, 1]
    assert all(r["interrupted"] is True and r["stop"] is None for r in got)
    assert all(r["chars"] == len(r["text"]) == 40 for r in got)
    monkeypatch.undo()
    whole = sampling.generate(model, vocab, 1000, rng=3, num_samples=2, records=True)
    assert [r["text"][:40] for r in whole] == [r["text"] for r in got]  # the same draws


def test_sample_jsonl_ctrl_c_prints_what_was_generated_and_exits_130(tmp_path, monkeypatch):
    model, vocab = random_model()
    path = tmp_path / "m.npz"
    checkpoint.save(path, checkpoint.Checkpoint(model=model, vocab=vocab))
    interrupt_after(monkeypatch, 30)
    result = CliRunner().invoke(cli, ["sample", str(path), "-n", "500", "--format", "jsonl",
                                      "--seed", "1"])
    assert result.exit_code == 130
    (line,) = result.stdout.splitlines()
    record = json.loads(line)
    assert record["interrupted"] is True and len(record["text"]) == 30  # as in the library
    assert np.isfinite(record["nats_per_char"])
