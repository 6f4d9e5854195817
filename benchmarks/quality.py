"""Model quality by budget and corpus: a grid of `charrnn train` runs with the default options.

    python benchmarks/quality.py CORPUS... [--budgets 2m 10m 30m 60m] [--baseline]
        [--out quality.md] [-- extra train options]

Each cell of the grid is `charrnn train CORPUS --time-limit BUDGET` in a temporary out-dir,
sized by the rule of `charrnn.sizing` (`--size auto`, the default). `--baseline` adds, for
each cell, a run with the fixed default of earlier releases (`--size small --dropout 0.1`:
LSTM 2×256). Prints and writes (`--out`) a Markdown table: corpus, its characters, budget, the
size chosen and why, steps, training speed (median characters/s) and the best validation loss
in nats and bits per character. Runs are sequential and take the sum of the budgets (plus
evaluations); not part of CI.

`--max-steps` in the extra options replaces the clock: then BUDGET only sizes the model and
the grid measures what that many steps reach, whatever else the machine is doing.
"""

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

OLD_DEFAULT = ["--size", "small", "--dropout", "0.1"]


def run(corpus, budget, extra):
    """Train once; (start event, train events, eval events) of its log."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "charrnn", "train", corpus, "--time-limit", budget,
               "--out-dir", out, "--name", "quality", "--quiet", *extra]
        subprocess.run(cmd, check=True)
        records = [json.loads(line) for line in (Path(out) / "quality" / "log.jsonl").open()]
    pick = lambda event: [r for r in records if r["event"] == event]  # noqa: E731
    return pick("start")[0], pick("train"), pick("eval")


def row(corpus, budget, label, start, trains, evals):
    model = start["config"]["model"]
    why = start.get("sizing", {}).get("why", label)
    speeds = sorted(r["chars_per_sec"] for r in trains) or [math.nan]
    best = min((r["val_loss"] for r in evals), default=math.nan)
    steps = trains[-1]["step"] if trains else 0
    return (f"| {Path(corpus).name} | {start['config']['train_chars']:,} | {budget} | "
            f"{model['num_layers']}×{model['hidden_size']}, dropout {model['dropout']:g} | "
            f"{why} | {steps:,} | {speeds[len(speeds) // 2]:,.0f} | {best:.4f} | "
            f"{best / math.log(2):.4f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpora", nargs="+", metavar="CORPUS")
    ap.add_argument("--budgets", nargs="+", default=["2m", "10m", "30m", "60m"])
    ap.add_argument("--baseline", action="store_true",
                    help="also run the old fixed default (LSTM 2×256, dropout 0.1)")
    ap.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    ap.add_argument("extra", nargs="*", help="more `charrnn train` options (after --)")
    args = ap.parse_args()
    lines = ["| corpus | train chars | budget | model | why | steps | chars/s | best val nats | "
             "bits |", "|---|---:|---|---|---|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    variants = [("auto", [])] + ([("old default", OLD_DEFAULT)] if args.baseline else [])
    for corpus in args.corpora:
        for budget in args.budgets:
            for label, options in variants:
                lines.append(row(corpus, budget, label, *run(corpus, budget, [*options,
                                                                                *args.extra])))
                print(lines[-1], flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
