"""The size of `charrnn explain --html`'s page, and the time Chromium takes to open it.

The default model of a 10-minute run (the size rule's choice: LSTM 2×384; random weights give
the same size, since the page's size does not depend on the values), a vocabulary of 65
characters, and N characters of a text file (its first N). The time is from `goto` to the
`load` event, median of --rounds, in headless /usr/bin/chromium driven by Playwright.

    python benchmarks/bench_explain_page.py TEXT [--chars 2000 10000] [--hidden 384]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def page(text, H, L, out):
    from charrnn import explain
    from charrnn.explain import html as explain_html
    from charrnn.data import Vocab
    from charrnn.model import CharRNN, ModelConfig

    vocab = Vocab("".join(sorted(set(text))))
    model = CharRNN(ModelConfig("lstm", vocab.size, H, L), seed=0)
    t0 = time.perf_counter()
    e = explain.explain(model, vocab, text, **explain_html.page_options(model.config, len(text)))
    explain_html.write(out, explain_html.render(e, "bench", "lstm"))
    return time.perf_counter() - t0


def open_time(path, rounds):
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            for _ in range(rounds):
                tab = browser.new_page()
                t0 = time.perf_counter()
                tab.goto(Path(path).as_uri(), wait_until="load")
                tab.select_option("#layer", "1")  # a unit of the last layer, decoded and shown
                tab.fill("#index", "7")
                tab.dispatch_event("#index", "change")
                times.append(time.perf_counter() - t0)
                tab.close()
        finally:
            browser.close()
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("text")
    ap.add_argument("--chars", type=int, nargs="+", default=[2000, 10000])
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    source = Path(args.text).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.chars:
            out = Path(tmp) / f"page-{n}.html"
            made = page(source[:n], args.hidden, args.layers, out)
            size = out.stat().st_size
            print(f"{n:>7,} chars, lstm {args.layers}x{args.hidden}: {size / 1e6:6.2f} MB "
                  f"({size / n:,.0f} B/char), made in {made:.1f} s, opened and a unit shown "
                  f"in {open_time(out, args.rounds):.2f} s")


if __name__ == "__main__":
    main()
