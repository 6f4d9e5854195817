"""Training throughput (characters/second) and peak memory: charrnn's numpy engine, charrnn's
torch engine (`--engine torch`, on the CPU) and the same model in plain PyTorch.

Each measurement runs in its own subprocess (so peak RSS is that configuration's alone): a
warm-up, then timed training steps (forward, backward, global-norm clipping and an Adam update),
excluding start-up; at least --steps steps and --min-seconds seconds. The kinds alternate,
round after round, so that all see the same machine load; the table reports the median
chars/s of the rounds, and the median (and range) of each round's ratios: ours / torch (the
numpy engine against plain PyTorch), engine / torch (charrnn's torch engine, which adds
optim.py's update rules in tensor ops, float64 clipping norms and the trainer's finiteness
checks, against plain PyTorch's nn module and torch.optim) and auto / torch (`--engine
auto`'s pick, after its own measurement of both engines, whose time and pick are reported).

    python benchmarks/bench_train.py                  # every configuration, 3 rounds
    python benchmarks/bench_train.py --config lstm-256 --rounds 5 --json

    python benchmarks/bench_train.py --kinds ours,engine  # without plain PyTorch
    python benchmarks/bench_train.py --kinds engine,auto,torch --threads 1

torch is optional (`pip install 'charrnn[torch]'`); without it only the numpy engine is measured.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {  # name: (cell, hidden, layers, batch, seq)
    "lstm-256": ("lstm", 256, 2, 64, 100),  # the headline
    "lstm-128": ("lstm", 128, 2, 32, 64),
    "lstm-512": ("lstm", 512, 2, 64, 100),
    "gru-256": ("gru", 256, 2, 64, 100),
    "rnn-256": ("rnn", 256, 2, 64, 100),
}
VOCAB = 65  # tiny-shakespeare's
RATIOS = {"ratio": ("ours", "torch"), "engine_ratio": ("engine", "torch"),
          "auto_ratio": ("auto", "torch"), "ours_vs_engine": ("ours", "engine")}
KINDS = ("ours", "engine", "auto", "torch")  # numpy engine, charrnn's torch engine,
# --engine auto's pick (after its own measurement), plain PyTorch


def peak_rss_mb():
    """Peak resident memory of this process plus its live children (charrnn's worker
    processes): an upper bound on what the configuration held at once. Read from /proc's
    VmHWM, which starts afresh at exec; getrusage's maxrss does not, and would count the
    memory of a parent that had imported torch."""
    def hwm_kb(pid):
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))

    if not os.path.exists("/proc/self/status"):  # not Linux: this process only
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total = hwm_kb("self")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                total += hwm_kb(stat.parent.name)
        except (OSError, StopIteration, ValueError):
            continue  # gone meanwhile
    return total / 1024


def run_ours(cell, H, L, N, T, steps, warmup, threads, min_seconds):
    import numpy as np

    from charrnn.model import CharRNN, ModelConfig
    from charrnn.optim import Adam, clip_grad_norm
    from charrnn.engines.parallel import Parallel, default_threads

    model = CharRNN(ModelConfig(cell, VOCAB, H, L, dropout=0.0), seed=0)
    # as `charrnn train` runs it: its --threads, else the trainer's own choice
    par = Parallel(model, threads or default_threads(cell, H, N))
    opt = Adam(model.params)
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, (N, T))
    y = rng.integers(0, VOCAB, (N, T))
    carried = [model.init_state(N)]

    def step():
        loss, grads, carried[0] = par.loss_and_grads(x, y, carried[0])
        clip_grad_norm(grads, 5.0)
        opt.step(model.params, grads, 1e-3)

    return timed_steps(step, steps, warmup, min_seconds), peak_rss_mb()


def _train_config(cell, H, L, N, T, threads):
    from charrnn.config import TrainConfig

    return TrainConfig(cell=cell, hidden_size=H, num_layers=L, dropout=0.0, batch_size=N,
                       seq_length=T, seed=0, optimizer="adam", grad_clip=5.0, threads=threads)


def run_engine(cell, H, L, N, T, steps, warmup, threads, min_seconds, name="torch"):
    """charrnn's engine `name` (default: the torch engine, on the CPU), stepped as the trainer
    steps it."""
    import numpy as np

    from charrnn.engines import make_engine
    from charrnn.model import CharRNN

    if name == "torch":
        import torch

        torch.set_num_threads(threads or os.cpu_count())
    cfg = _train_config(cell, H, L, N, T, threads)
    engine = make_engine(name, CharRNN(cfg.model_config(VOCAB), seed=0), cfg, "cpu")
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, (N, T))
    y = rng.integers(0, VOCAB, (N, T))
    times = timed_steps(lambda: engine.step(x, y, 1e-3), steps, warmup, min_seconds)
    rss = peak_rss_mb()
    engine.close()
    return times, rss


def run_auto(cell, H, L, N, T, steps, warmup, threads, min_seconds):
    """`--engine auto`: its measurement (fresh, not from the cache: timed), then its pick,
    stepped as the trainer steps it."""
    import tempfile

    from charrnn.engines import auto

    cfg = _train_config(cell, H, L, N, T, threads)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        choice = auto.choose(cfg, VOCAB, cache=auto.SpeedCache(Path(tmp) / "speeds.json"))
        seconds = time.perf_counter() - start
    times, rss = run_engine(cell, H, L, N, T, steps, warmup, threads, min_seconds, choice.engine)
    return times, rss, {"pick": choice.engine, "measure_seconds": round(seconds, 2)}


def run_torch(cell, H, L, N, T, steps, warmup, threads, min_seconds):
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(threads or os.cpu_count())
    rnn_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
    embed = torch.nn.Embedding(VOCAB, VOCAB)  # one-hot input: an identity-sized lookup
    with torch.no_grad():
        embed.weight.copy_(torch.eye(VOCAB))
    embed.weight.requires_grad_(False)
    rnn = rnn_cls(VOCAB, H, L, batch_first=True)
    head = torch.nn.Linear(H, VOCAB)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, VOCAB, (N, T), generator=g)
    y = torch.randint(0, VOCAB, (N, T), generator=g)
    carried = [None]

    def step():
        out, state = rnn(embed(x), carried[0])
        carried[0] = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()

    return timed_steps(step, steps, warmup, min_seconds), peak_rss_mb()


def timed_steps(step, steps, warmup, min_seconds):
    """Durations of `step()` calls after `warmup` untimed ones: at least `steps` of them, and
    more until `min_seconds` have passed (a short measurement is at the mercy of one burst of
    load on a shared machine)."""
    for _ in range(warmup):
        step()
    times, start = [], time.perf_counter()
    while len(times) < steps or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def worker(args):
    cell, H, L, N, T = CONFIGS[args.config]
    run = {"ours": run_ours, "engine": run_engine, "auto": run_auto, "torch": run_torch}[args.worker]
    times, rss, *extra = run(cell, H, L, N, T, args.steps, args.warmup, args.threads,
                             args.min_seconds)
    print(json.dumps({"chars_per_sec": N * T / statistics.median(times), "peak_rss_mb": rss,
                      **(extra[0] if extra else {})}))


def measure(kind, config, args):
    cmd = [sys.executable, __file__, "--worker", kind, "--config", config,
           "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--min-seconds", str(args.min_seconds)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def have_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", action="append", choices=sorted(CONFIGS), help="default: all")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=3.0,
                    help="time steps for at least this long per measurement")
    ap.add_argument("--threads", type=int, default=None, help="worker threads (ours) / torch threads")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--kinds", default=None,
                    help="comma-separated among ours,engine,auto,torch [default: all there are]")
    ap.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.config = args.config[0]
        return worker(args)
    kinds = args.kinds.split(",") if args.kinds else \
        ["ours"] + (["engine", "auto", "torch"] if have_torch() else [])
    unknown = set(kinds) - set(KINDS)
    if unknown:
        ap.error(f"unknown kinds: {', '.join(sorted(unknown))}; choose among {', '.join(KINDS)}")
    results = {}
    for config in args.config or list(CONFIGS):
        runs = {k: [] for k in kinds}
        for _ in range(args.rounds):
            for kind in kinds:
                runs[kind].append(measure(kind, config, args))
        row = {}
        for kind in kinds:
            row[kind] = statistics.median(r["chars_per_sec"] for r in runs[kind])
            row[kind + "_rss_mb"] = statistics.median(r["peak_rss_mb"] for r in runs[kind])
            row[kind + "_all"] = [round(r["chars_per_sec"]) for r in runs[kind]]
            if kind == "auto":
                row["auto_picks"] = [r["pick"] for r in runs[kind]]
                row["auto_measure_seconds"] = [r["measure_seconds"] for r in runs[kind]]
        # the ratio of each round's pair, measured a few seconds apart
        for name, (a, b) in RATIOS.items():
            if a in runs and b in runs:
                ratios = [o["chars_per_sec"] / t["chars_per_sec"] for o, t in zip(runs[a], runs[b])]
                row[name] = statistics.median(ratios)
                row[name + "_all"] = [round(r, 3) for r in ratios]
        results[config] = row
        if not args.json:
            line = f"{config:10s}"
            for kind in kinds:
                line += f"  {kind} {row[kind]:9,.0f} chars/s RSS {row[kind + '_rss_mb']:4.0f} MB"
            for name in RATIOS:
                if name in row:
                    line += (f"  {name} {row[name]:.2f} ({min(row[name + '_all']):.2f}–"
                             f"{max(row[name + '_all']):.2f})")
            if "auto_picks" in row:
                line += (f"  auto picked {','.join(row['auto_picks'])} (measured in "
                         f"{statistics.median(row['auto_measure_seconds']):.1f} s)")
            print(line, flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
