"""Shared by the `charrnn train` tests: generated corpora, tiny-model options, running the CLI."""

import random

import numpy as np
from click.testing import CliRunner

from charrnn import checkpoint
from charrnn.cli import cli
from charrnn.runlog import read_log

# A model small enough that 40 steps take a fraction of a second; its layers and dropout given
# too, so that the size rule (tests/test_sizing.py) leaves it alone; on the numpy engine, which
# the trainer's tests patch and compare against (--engine auto's choice has its own tests).
TINY = ["--hidden-size", "16", "--num-layers", "2", "--dropout", "0.1", "--batch-size", "4",
        "--seq-length", "16", "--warmup-steps", "0", "--engine", "numpy"]
WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly hex "
         "nymphs and jackdaws love my big sphinx of quartz").split()


def make_corpus(path, chars=4000, seed=0, words=WORDS, newline="\n"):
    """Write a deterministic text of about `chars` characters: random words, lines of 8."""
    rng = random.Random(seed)
    lines, n = [], 0
    while n < chars:
        line = " ".join(rng.choice(words) for _ in range(8))
        lines.append(line)
        n += len(line) + len(newline)
    path.write_text(newline.join(lines) + newline, encoding="utf-8", newline="")
    return path


def train(*args, env=None):
    """Invoke `charrnn train ARGS` in-process; returns click's Result (stdout/stderr apart)."""
    return CliRunner().invoke(cli, ["train", *map(str, args)], env=env)


def events(run_dir, event=None):
    records = read_log(run_dir / "log.jsonl")
    return [r for r in records if event is None or r["event"] == event]


def load(path):
    return checkpoint.load(path)


def assert_same_arrays(a, b):
    """Every weight, optimizer array and carried state of checkpoints a and b bit-identical."""
    assert a.model.params.keys() == b.model.params.keys()
    for k in a.model.params:
        assert np.array_equal(a.model.params[k], b.model.params[k]), k
    assert a.optim.keys() == b.optim.keys()
    for k in a.optim:
        assert np.array_equal(a.optim[k], b.optim[k]), k
    assert (a.state is None) == (b.state is None)
    for layer_a, layer_b in zip(a.state or (), b.state or ()):
        for x, y in zip(layer_a, layer_b):
            assert np.array_equal(x, y)


def files_snapshot(directory):
    """{relative path: (bytes, mtime_ns)} of every file under `directory`."""
    return {p.relative_to(directory): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def all_finite(ckpt):
    arrays = [*ckpt.model.params.values(), *ckpt.optim.values()]
    arrays += [a for layer in ckpt.state or () for a in layer]
    return all(np.isfinite(a).all() for a in arrays if a.dtype.kind == "f")
