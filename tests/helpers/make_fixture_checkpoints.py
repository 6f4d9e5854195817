"""Write the checkpoints of tests/fixtures/, which pin down the checkpoint format a release reads.

Run it with the charrnn whose checkpoints must keep loading on the import path, from the
repository root, e.g. (a worktree of commit 67484f5, the format before the core was reshaped):

    PYTHONPATH=/work/base python tests/helpers/make_fixture_checkpoints.py

For each cell it trains a tiny model (hidden size 4) through the command line on the corpus of
`fixture_corpus`, FIRST_STEPS steps, stopping mid-epoch so that the file carries a training
state, optimizer state and a hidden state, and keeps its latest.npz as `<cell>.npz`. It then
resumes that run to RESUMED_STEPS and keeps the result as `<cell>-resumed.npz`, and records
what that charrnn's `info --format json` and a seeded `sample` print in `expected.json`.
tests/test_fixture_checkpoints.py checks that today's code reads, samples and resumes the
files the same way.
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

FIXTURES = Path(__file__).parents[1] / "fixtures"
FIRST_STEPS, RESUMED_STEPS = 5, 7
COMMON = ["--hidden-size", "4", "--batch-size", "2", "--seq-length", "8", "--warmup-steps", "0",
          "--lr-schedule", "constant", "--eval-every", "2", "--seed", "3", "--threads", "1", "-q"]
RUNS = {  # cell -> its other options: every optimizer but sgd, both dtypes, 1 and 2 layers
    "lstm": ["--num-layers", "2", "--dropout", "0.2"],
    "gru": ["--num-layers", "1", "--optimizer", "rmsprop", "--dtype", "float64"],
    "rnn": ["--num-layers", "2", "--optimizer", "adagrad", "--dropout", "0"],
}
SAMPLE = ["--seed", "1", "-n", "60", "--prime", "the "]


def fixture_corpus(path):
    """Write the corpus the fixtures were trained on (about 400 characters, 3 paragraphs)."""
    words = "the cat sat on a mat and the dog ran to it".split()
    lines = [" ".join(words[(3 * i + j) % len(words)] for j in range(6)) for i in range(15)]
    paragraphs = ["\n".join(lines[i:i + 5]) for i in range(0, 15, 5)]
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path


def _invoke(args):
    from click.testing import CliRunner

    from charrnn.cli import cli

    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exit_code != 0:
        sys.exit(f"charrnn {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result.stdout


def main():
    import charrnn

    print(f"writing fixtures with charrnn {charrnn.__version__} from {charrnn.__file__}")
    FIXTURES.mkdir(exist_ok=True)
    expected = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = fixture_corpus(Path(tmp) / "corpus.txt")
        out = Path(tmp) / "runs"
        for cell, options in RUNS.items():
            run = out / cell
            _invoke(["train", corpus, "--cell", cell, *options, *COMMON, "--out-dir", out,
                     "--name", cell, "--max-steps", FIRST_STEPS])
            first = FIXTURES / f"{cell}.npz"
            shutil.copy(run / "latest.npz", first)
            _invoke(["train", corpus, "--resume", run, "--max-steps", RESUMED_STEPS, "-q"])
            shutil.copy(run / "latest.npz", FIXTURES / f"{cell}-resumed.npz")
            info = json.loads(_invoke(["info", first, "--format", "json"]))
            del info["checkpoint"]  # a path in the temporary directory
            expected[cell] = {"info": info, "sample": _invoke(["sample", first, *SAMPLE])}
            print(f"{cell}: {first.stat().st_size:,} bytes")
    (FIXTURES / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False)
                                            + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
