"""`charrnn serve` under load: aggregate characters/s, time to first character and per-stream
speed at several concurrencies, against `charrnn sample`'s single-stream speed in the same run;
then a soak: many clients for a while, counting errors and watching the server's memory.

The headline model (LSTM, 2 layers of 256, vocabulary 65, random weights) is written to a
temporary checkpoint and served by `charrnn serve` in a subprocess, as a user runs it. Each
client streams completions (200-character prompt, --length characters, temperature 0.8) with
httpx over loopback, one request after another; the clients run in this process, on the same
cores as the server (say so when quoting the numbers).

    python benchmarks/bench_serve.py [--concurrency 1 8 32 64] [--length 400] [--rounds 3]
                                     [--soak 60] [--soak-clients 64]
    python benchmarks/bench_serve.py --loop    the batcher alone, in this process, no HTTP:
                                               its per-stream products against one matrix
                                               product over the streams (what exactness costs)
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VOCAB = string.ascii_letters + string.digits + " .,"  # 65 characters
PROMPT = ("It was the best of times, it was the worst of times, it was the age of wisdom, it "
          "was the age of foolishness, it was the epoch of belief, it was the epoch of "
          "incredulity, it was the season of Light, i")  # 200 characters


def make_checkpoint(directory, hidden, layers):
    from charrnn import checkpoint
    from charrnn.data import Vocab
    from charrnn.model import CharRNN, ModelConfig

    path = Path(directory) / "headline.npz"
    model = CharRNN(ModelConfig("lstm", len(VOCAB), hidden, layers), seed=0)
    checkpoint.save(path, checkpoint.Checkpoint(model, Vocab(VOCAB)))
    return path


def sample_speed(path, length):
    """`charrnn sample`'s single stream (its code path, in this process): characters/s."""
    from charrnn import checkpoint
    from charrnn.sampling import generate

    ckpt = checkpoint.load(path)
    t0 = time.perf_counter()
    for _ in generate(ckpt.model, ckpt.vocab, length, temperature=0.8, prime=PROMPT, rng=1):
        pass
    return length / (time.perf_counter() - t0)


class Server:
    def __init__(self, path, max_streams):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "charrnn", "serve", str(path), "--port", "0",
             "--max-streams", str(max_streams)], stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stderr.readline()
        self.url = re.search(r"http://[\d.]+:\d+/", line).group(0)
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def rss_mib(self):
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


async def one_request(http, url, length, seed):
    """Stream one completion: (time to first character, characters, seconds) or an error."""
    body = {"model": "headline", "prompt": PROMPT, "max_tokens": length, "temperature": 0.8,
            "seed": seed, "stream": True}
    t0 = time.perf_counter()
    first, chars = None, 0
    async with http.stream("POST", url + "v1/completions", json=body) as response:
        if response.status_code != 200:
            return ("error", response.status_code)
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            text = json.loads(line[6:])["choices"][0]["text"]
            if text and first is None:
                first = time.perf_counter() - t0
            chars += len(text)
    return first, chars, time.perf_counter() - t0


async def load(url, clients, length, requests_each=None, seconds=None, on_tick=None):
    """`clients` concurrent clients, each making requests one after another (a count, or until
    `seconds` pass). Returns (results, wall seconds)."""
    import httpx

    results = []
    deadline = time.perf_counter() + seconds if seconds else None
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        async def client(k):
            n = 0
            while (requests_each is None or n < requests_each) and (
                    deadline is None or time.perf_counter() < deadline):
                try:
                    results.append(await one_request(http, url, length, 1000 * k + n))
                except Exception as exc:  # noqa: BLE001 - counted, not fatal
                    results.append(("error", repr(exc)))
                n += 1

        t0 = time.perf_counter()
        tasks = [asyncio.create_task(client(k)) for k in range(clients)]
        if on_tick:
            while not all(t.done() for t in tasks):
                await asyncio.sleep(5)
                on_tick()
        await asyncio.gather(*tasks)
        return results, time.perf_counter() - t0


def loop_speed(path, directory, streams, length, per_stream):
    """The batcher alone: `streams` streams of `length` characters stepped to the end in this
    thread; aggregate characters/s. per_stream=False uses one matrix product over the streams
    (not what the server does: a stream's text would then depend on its neighbours)."""
    from charrnn.serve import Limits, load_models
    from charrnn.serve.batcher import Batcher, Job
    from charrnn.serve.requests import read_completion
    from charrnn.stepper import Stepper

    models = load_models([str(path)], directory)
    served = models["headline"]
    served.stepper = Stepper(served.model, 1, per_stream=per_stream)
    batcher = Batcher(served, streams)
    for k in range(streams):
        request = read_completion({"model": "headline", "prompt": "I", "max_tokens": length,
                                   "seed": k, "temperature": 0.8}, models, Limits())
        batcher.submit(Job(served, request, lambda events: None))
    for reading in list(batcher._reading):
        batcher._read(reading)
    t0 = time.perf_counter()
    while batcher._batch:
        batcher._step()
    return streams * length / (time.perf_counter() - t0)


def loop_table(path, directory, concurrency, rounds):
    from charrnn.blas import single_threaded_blas

    speeds = {(c, p): [] for c in concurrency for p in (True, False)}
    solo = []
    with single_threaded_blas():
        for _ in range(rounds):
            solo.append(sample_speed(path, 2000))
            for c, p in speeds:
                speeds[c, p].append(loop_speed(path, directory, c, 300, p))
    one = statistics.median(solo)
    print(f"\ncharrnn sample, one stream: {one:,.0f} chars/s; the batcher alone (no HTTP), "
          f"aggregate chars/s, medians of {rounds}\n")
    print("| streams | per-stream products (served) | x one stream | one matrix product "
          "| x one stream |")
    print("|---:|---:|---:|---:|---:|")
    for c in concurrency:
        exact, matrix = (statistics.median(speeds[c, p]) for p in (True, False))
        print(f"| {c} | {exact:,.0f} | {exact / one:.1f} | {matrix:,.0f} | {matrix / one:.1f} |")


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--length", type=int, default=400, help="characters per request")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--soak", type=float, default=60, help="seconds of the soak (0: none)")
    ap.add_argument("--soak-clients", type=int, default=64)
    ap.add_argument("--loop", action="store_true", help="the batcher alone, no HTTP")
    args = ap.parse_args()
    import numpy  # noqa: F401 - loads the BLAS that threadpoolctl reports
    from threadpoolctl import threadpool_info

    blas = next((i for i in threadpool_info() if i["user_api"] == "blas"), {})
    print(f"CPU: {_cpu()}, {os.cpu_count()} cores; BLAS: {blas.get('internal_api')} "
          f"{blas.get('version')} ({blas.get('architecture')}); load average before: "
          f"{os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = make_checkpoint(tmp, args.hidden, args.layers)
        if args.loop:
            loop_table(path, tmp, args.concurrency, args.rounds)
            return
        server = Server(path, max(max(args.concurrency), args.soak_clients))
        try:
            rows = {c: [] for c in args.concurrency}
            solo = []
            for _ in range(args.rounds):  # interleaved, so that the load hits all alike
                solo.append(sample_speed(path, 2000))
                for c in args.concurrency:
                    results, wall = asyncio.run(load(server.url, c, args.length,
                                                     requests_each=max(1, 64 // c)))
                    rows[c].append((results, wall))
            one = statistics.median(solo)
            print(f"\ncharrnn sample, one stream: {one:,.0f} chars/s (median of "
                  f"{args.rounds}: {', '.join(f'{s:,.0f}' for s in solo)})")
            print(f"LSTM {args.layers}x{args.hidden}, {args.length} characters per request, "
                  "200-character prompt, streamed; medians over rounds\n")
            print("| clients | aggregate chars/s | x one stream | first char p50 | p99 "
                  "| per-stream chars/s | errors |")
            print("|---:|---:|---:|---:|---:|---:|---:|")
            for c, runs in rows.items():
                agg, p50, p99, per, errors = [], [], [], [], 0
                for results, wall in runs:
                    good = [r for r in results if r[0] != "error"]
                    errors += len(results) - len(good)
                    agg.append(sum(r[1] for r in good) / wall)
                    p50.append(percentile([r[0] for r in good], 0.5))
                    p99.append(percentile([r[0] for r in good], 0.99))
                    per.append(statistics.median(r[1] / r[2] for r in good))
                m = statistics.median
                print(f"| {c} | {m(agg):,.0f} | {m(agg) / one:.1f} | {m(p50) * 1e3:.0f} ms "
                      f"| {m(p99) * 1e3:.0f} ms | {m(per):,.0f} | {errors} |")
            if args.soak:
                memory = [server.rss_mib()]
                results, wall = asyncio.run(load(
                    server.url, args.soak_clients, args.length, seconds=args.soak,
                    on_tick=lambda: memory.append(server.rss_mib())))
                memory.append(server.rss_mib())
                errors = [r for r in results if r[0] == "error"]
                chars = sum(r[1] for r in results if r[0] != "error")
                print(f"\nsoak: {args.soak_clients} clients for {wall:.0f} s: "
                      f"{len(results) - len(errors)} requests, {chars / wall:,.0f} chars/s, "
                      f"{len(errors)} errors{f' (first: {errors[0][1]})' if errors else ''}; "
                      f"server RSS every 5 s (MiB): {', '.join(f'{v:.0f}' for v in memory)}")
        finally:
            server.stop()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def _cpu():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
