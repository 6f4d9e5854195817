"""Training throughput (characters/second) and peak memory: charrnn vs the same model in PyTorch.

Each measurement runs in its own subprocess (so peak RSS is that configuration's alone): a
warm-up, then timed training steps (forward, backward, global-norm clipping and an Adam update),
excluding start-up. charrnn and torch alternate, round after round, so that both see the same
machine load; the table reports the median chars/s of the rounds and the ratio ours / torch.

    python benchmarks/bench_train.py                  # every configuration, 3 rounds
    python benchmarks/bench_train.py --config lstm-256 --rounds 5 --json

torch is optional (`pip install torch`); without it only charrnn is measured.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

CONFIGS = {  # name: (cell, hidden, layers, batch, seq)
    "lstm-256": ("lstm", 256, 2, 64, 100),  # the headline
    "lstm-128": ("lstm", 128, 2, 32, 64),
    "lstm-512": ("lstm", 512, 2, 64, 100),
    "gru-256": ("gru", 256, 2, 64, 100),
    "rnn-256": ("rnn", 256, 2, 64, 100),
}
VOCAB = 65  # tiny-shakespeare's


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(cell, H, L, N, T, steps, warmup, threads):
    import numpy as np

    from charrnn.model import CharRNN, ModelConfig
    from charrnn.optim import Adam, clip_grad_norm

    model = CharRNN(ModelConfig(cell, VOCAB, H, L, dropout=0.0), seed=0)
    if threads is not None:
        model.threads = threads
    opt = Adam(model.params)
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, (N, T))
    y = rng.integers(0, VOCAB, (N, T))
    state = model.init_state(N)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss, grads, state = model.loss_and_grads(x, y, state)
        clip_grad_norm(grads, 5.0)
        opt.step(model.params, grads, 1e-3)
        times.append(time.perf_counter() - t0)
    return times[warmup:]


def run_torch(cell, H, L, N, T, steps, warmup, threads):
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
    state = None
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        out, state = rnn(embed(x), state)
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    return times


def worker(args):
    cell, H, L, N, T = CONFIGS[args.config]
    run = run_ours if args.worker == "ours" else run_torch
    times = run(cell, H, L, N, T, args.steps, args.warmup, args.threads)
    if args.worker == "torch":
        times = times[args.warmup :]
    print(json.dumps({"chars_per_sec": N * T / statistics.median(times), "peak_rss_mb": peak_rss_mb()}))


def measure(kind, config, args):
    cmd = [sys.executable, __file__, "--worker", kind, "--config", config,
           "--steps", str(args.steps), "--warmup", str(args.warmup)]
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
    ap.add_argument("--threads", type=int, default=None, help="worker threads (ours) / torch threads")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.config = args.config[0]
        return worker(args)
    kinds = ["ours"] + (["torch"] if have_torch() else [])
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
        if "torch" in row:
            row["ratio"] = row["ours"] / row["torch"]
        results[config] = row
        if not args.json:
            line = f"{config:10s} ours {row['ours']:9,.0f} chars/s  RSS {row['ours_rss_mb']:5.0f} MB"
            if "torch" in row:
                line += (f"   torch {row['torch']:9,.0f} chars/s  RSS {row['torch_rss_mb']:5.0f} MB"
                         f"   ratio {row['ratio']:.2f}")
            print(line, flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
