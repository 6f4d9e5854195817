"""What `charrnn export` makes, measured: page sizes, and generation speed in the browser.

1. Page sizes (float32 and --half float16) of the model the size rule picks for the default
   budget, 10 minutes on tiny-shakespeare (its training split's length; a model of that shape
   with random weights has the same size as a trained one).
2. Single-stream generation speed (characters/second, temperature 0.8) of the headline model
   (LSTM, 2 layers of 256, vocabulary 65, random weights): the exported page in headless
   Chromium (Debian's /usr/bin/chromium, Playwright) beside charrnn's numpy sampler and the
   ONNX graph in onnxruntime, in the same run, rounds interleaved, medians reported.

    python benchmarks/bench_export.py [--length 3000] [--rounds 5] [--corpus-chars 1003854]
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VOCAB = 65
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync"]


def checkpoint_of(H, L, cell="lstm"):
    from charrnn import checkpoint
    from charrnn.data import Vocab
    from charrnn.model import CharRNN, ModelConfig

    vocab = Vocab("\n" + "".join(chr(32 + i) for i in range(VOCAB - 1)))
    model = CharRNN(ModelConfig(cell, VOCAB, H, L), seed=0)
    return checkpoint.Checkpoint(model=model, vocab=vocab)


def sizes(corpus_chars):
    from charrnn import sizing
    from charrnn.export import web

    size = sizing.auto_size(10.0, int(corpus_chars * 0.9))  # the default --val-fraction 0.1
    preset = sizing.PRESETS[size]
    ckpt = checkpoint_of(preset.hidden_size, preset.num_layers)
    full = len(web.page(ckpt).encode("utf-8"))
    half = len(web.page(ckpt, half=True).encode("utf-8"))
    return size, preset, ckpt.model.num_params, full, half


def numpy_speed(ckpt, length, seed):
    from charrnn.sampling import generate

    t0 = time.perf_counter()
    for _ in generate(ckpt.model, ckpt.vocab, length, temperature=0.8, rng=seed):
        pass
    return length / (time.perf_counter() - t0)


def onnx_speed(session, ckpt, length, seed):
    import numpy as np

    cfg = ckpt.config
    state = np.zeros((cfg.num_layers, 2, 1, cfg.hidden_size), np.float32)
    rng, ids = np.random.default_rng(seed), np.zeros(1, np.int64)
    t0 = time.perf_counter()
    for _ in range(length):
        logits, state = session.run(None, {"ids": ids, "state": state})
        z = np.exp((logits[0] - logits[0].max()) / 0.8)
        ids[0] = np.searchsorted(np.cumsum(z), rng.random() * z.sum(), side="right")
    return length / (time.perf_counter() - t0)


def page_speed(page, length, seed):
    ms = page.evaluate("""async o => { const t = performance.now();
        const text = await charrnn.generate({length: o.length, temperature: 0.8, seed: o.seed});
        return [performance.now() - t, text.length]; }""", {"length": length, "seed": seed})
    return ms[1] / (ms[0] / 1000)


def machine():
    import numpy  # noqa: F401  (loads the BLAS that threadpoolctl describes)
    from threadpoolctl import threadpool_info

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = ", ".join(f"{i['internal_api']} {i.get('version')} ({i.get('architecture')})"
                     for i in threadpool_info() if i["user_api"] == "blas")
    return cpu, os.cpu_count(), blas


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--corpus-chars", type=int, default=1_115_394,
                    help="the corpus's length (tiny-shakespeare: 1,115,394)")
    args = ap.parse_args()
    cpu, cores, blas = machine()
    print(f"CPU: {cpu}, {cores} cores; BLAS: {blas}; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    size, preset, params, full, half = sizes(args.corpus_chars)
    print(f"\n10 minutes on {args.corpus_chars:,} characters: size {size} "
          f"({preset.num_layers}x{preset.hidden_size} LSTM, {params:,} parameters)")
    print(f"  page float32: {full / 1e6:.2f} MB    page float16 (--half): {half / 1e6:.2f} MB")

    import onnxruntime as ort
    from playwright.sync_api import sync_playwright

    from charrnn.export import onnx as onnx_export, web

    ckpt = checkpoint_of(256, 2)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "page.html"
        path.write_text(web.page(ckpt), encoding="utf-8")
        session = ort.InferenceSession(onnx_export.build(ckpt).SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        results = {"page (Chromium)": [], "charrnn sample (numpy)": [], "onnxruntime": []}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS,
                                        headless=True)
            page = browser.new_page()
            page.goto(path.as_uri())
            page_speed(page, 300, 0)  # warm up the JIT
            for r in range(args.rounds):
                results["page (Chromium)"].append(page_speed(page, args.length, r))
                results["charrnn sample (numpy)"].append(numpy_speed(ckpt, args.length, r))
                results["onnxruntime"].append(onnx_speed(session, ckpt, args.length, r))
            browser.close()
    print(f"\nLSTM 2x256, vocabulary 65, {args.length:,} characters a round, temperature 0.8, "
          f"median of {args.rounds} interleaved rounds:")
    base = statistics.median(results["charrnn sample (numpy)"])
    for name, values in results.items():
        m = statistics.median(values)
        print(f"  {name:24s} {m:10,.0f} chars/s   x{m / base:.2f} of numpy   "
              f"(rounds: {', '.join(f'{v:,.0f}' for v in values)})")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
