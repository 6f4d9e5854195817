"""The terminal view of `charrnn explain` (charrnn/explain/view.py) is bounded by default: a
long text shows its first screenfuls and its most surprising spans, not every character (a
10 MB text printed 40 MB); and the library reports its progress as it reads (the CLI prints
it on stderr)."""

import re

import numpy as np
from rich.console import Console

from charrnn import explain
from charrnn.explain import view as explain_view
from charrnn.data import Vocab
from charrnn.model import CharRNN, ModelConfig

CHARS = "abcdefgh .\n"


def model_and_text(n, seed=0):
    vocab = Vocab(CHARS)
    model = CharRNN(ModelConfig("gru", vocab.size, 8, 1), seed=seed)
    rng = np.random.default_rng(seed)
    return model, vocab, "".join(rng.choice(list("abcdefgh ."), n))


def printed(view, width=80):
    console = Console(width=width, record=True, color_system=None)
    console.print(view)
    return console.export_text()


def test_a_long_text_shows_its_start_and_its_most_surprising_spans():
    model, vocab, text = model_and_text(6000)
    e = explain.explain(model, vocab, text)
    bounded = printed(explain_view.terminal_view(e, hint="(--all: everything)"))
    full = printed(explain_view.terminal_view(e, head=None))
    head = explain_view.HEAD_CHARS
    assert f"… the first {head:,} of 6,000 characters" in bounded
    assert "(--all: everything)" in bounded
    assert bounded.count("\n") < full.count("\n") / 2
    later = [(a, b) for a, b, _ in e.surprising_spans() if b > head]
    assert later  # random text: the spans are anywhere, here at least one past the start
    for a, _ in later:
        assert re.search(rf"^at {a:,} \(", bounded, re.M)
    assert "the first" not in full
    joined = "".join(line for line in full.split("\n")[::2])  # text lines, without the bars
    assert joined.replace("↵", "").startswith(text[:500].replace("\n", ""))


def test_a_short_text_is_shown_whole():
    model, vocab, text = model_and_text(300)
    e = explain.explain(model, vocab, text)
    assert printed(explain_view.terminal_view(e)) == printed(explain_view.terminal_view(e, None))


def test_a_units_view_is_bounded_too():
    model, vocab, text = model_and_text(5000)
    e = explain.explain(model, vocab, text, units=[explain.Unit(0, 3)])
    out = printed(explain_view.terminal_view(e))
    assert "layer 0 h[3]" in out and "… the first 2,000 of 5,000 characters" in out


def test_progress_is_reported_as_the_text_is_read():
    model, vocab, text = model_and_text(3000)
    calls = []
    explain.explain(model, vocab, text, progress=calls.append)
    assert sum(calls) == len(text) and len(calls) >= 3
