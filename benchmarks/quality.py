"""Model quality in a fixed time: train with the default options, report the validation curve.

    python benchmarks/quality.py ../shared/data/tinyshakespeare.txt [--time-limit 10m] [-- extra train options]

Runs `charrnn train CORPUS --time-limit T` into a temporary out-dir, then prints every
evaluation (step, minutes, val loss in nats/char and bits/char) and the best validation loss.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("--time-limit", default="10m")
    ap.add_argument("--json", action="store_true", help="print the curve as JSON")
    ap.add_argument("extra", nargs="*", help="more `charrnn train` options (after --)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "charrnn", "train", args.corpus, "--time-limit", args.time_limit,
               "--out-dir", out, "--name", "quality", "--quiet", *args.extra]
        subprocess.run(cmd, check=True)
        records = [json.loads(line) for line in (Path(out) / "quality" / "log.jsonl").open()]
    evals = [r for r in records if r["event"] == "eval"]
    speeds = [r["chars_per_sec"] for r in records if r["event"] == "train"]
    config = next(r["config"] for r in records if r["event"] == "start")
    best = min(r["val_loss"] for r in evals)
    if args.json:
        print(json.dumps({"best_val_loss": best, "config": config, "evals": evals}, indent=2))
        return
    print(f"{'step':>6} {'min':>6} {'val nats':>9} {'val bpc':>8}")
    for r in evals:
        print(f"{r['step']:6d} {r['time'] / 60:6.1f} {r['val_loss']:9.4f} {r['val_bpc']:8.4f}")
    speeds.sort()
    print(f"best validation loss {best:.4f} nats/char ({best / 0.6931471805599453:.4f} bits/char); "
          f"median {speeds[len(speeds) // 2]:,.0f} chars/s; model {config['model']}")


if __name__ == "__main__":
    main()
