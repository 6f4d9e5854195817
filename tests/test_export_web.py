"""`charrnn export --format web|web-dir` in a real browser: Debian's chromium, headless, driven
by Playwright, offline from file:// (every request but the page's own file is aborted and
fails the test).

For each cell, the page's greedy text equals `charrnn sample --temp 0`, its `charrnn.next`
equals the numpy model's probabilities, its picking equals `sampling.Picker`'s (temperature,
top-k, top-p, U+FFFD) and seeded sampling repeats; float16 pages, float64 and torch-trained
checkpoints, the web-dir folder (served on loopback; from file:// it says why it cannot load)
and the page's own controls work too. A cell without a JavaScript step is refused.
"""

import json
import os

import numpy as np
import pytest

from charrnn import cells, checkpoint
from charrnn.data import Vocab
from charrnn.export import REGISTRY
from charrnn.model import CharRNN, ModelConfig
from charrnn.sampling import Picker
from helpers.export_helpers import (CELLS, CHROMIUM, PRIME, Browser, Server, cli_run, export, listing,
                            load, numpy_probs, sample, train_run)

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed: pip install '.[test]'")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"no {CHROMIUM}: apt-get install chromium")

GREEDY = "o => charrnn.generate({prime: o.prime, length: o.n, temperature: 0})"
NEXT = "t => charrnn.next(t)"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = Browser(p)
        yield b
        b.close()
    assert not b.foreign, f"the pages requested {b.foreign}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """cell -> (run directory, its exported page)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for cell in CELLS:
        run = train_run(root, cell, cell)
        out[cell] = run, export(run, "web", root / f"{cell}.html")
    return out


@pytest.fixture(scope="module")
def pages(runs, browser):
    return {cell: browser.open(page.as_uri()) for cell, (_, page) in runs.items()}


@pytest.mark.parametrize("cell", CELLS)
def test_greedy_text_equals_charrnn_sample(runs, pages, cell):
    run, _ = runs[cell]
    text = pages[cell].evaluate(GREEDY, {"prime": PRIME, "n": 300})
    assert len(text) == 300
    assert PRIME + text + "\n" == sample(run, PRIME, 300)
    empty = pages[cell].evaluate(GREEDY, {"prime": "", "n": 50})  # the context alone
    assert empty + "\n" == sample(run, "", 50)


@pytest.mark.parametrize("cell", CELLS)
def test_next_equals_the_numpy_models_probabilities(runs, pages, cell):
    ckpt = load(runs[cell][0])
    page = pages[cell]
    assert page.evaluate("charrnn.vocab") == list(ckpt.vocab.chars)
    for text in ["", "t", PRIME, "jumps over a lazy dog while seven wizards"]:
        probs = np.array(page.evaluate(NEXT, text))
        assert probs.shape == (ckpt.vocab.size,)
        np.testing.assert_allclose(probs, numpy_probs(ckpt, text), rtol=0, atol=1e-5)
    assert page.evaluate("() => { try { charrnn.next('tq\u00e9'); } catch (e) { return e.message; } }") \
        == 'the prime has 1 character(s) the model does not know: "\u00e9"'


def test_seeded_sampling_repeats_and_seeds_differ(runs, pages, browser):
    page = pages["lstm"]
    opts = "o => charrnn.generate(o)"
    one = page.evaluate(opts, {"prime": PRIME, "length": 200, "temperature": 1, "seed": 7})
    assert one == page.evaluate(opts, {"prime": PRIME, "length": 200, "temperature": 1, "seed": 7})
    again = browser.open(runs["lstm"][1].as_uri())  # a fresh load writes it again
    assert one == again.evaluate(opts, {"prime": PRIME, "length": 200, "temperature": 1, "seed": 7})
    assert one != page.evaluate(opts, {"prime": PRIME, "length": 200, "temperature": 1, "seed": 8})
    vocab = set(load(runs["lstm"][0]).vocab.chars)
    assert len(one) == 200 and set(one) <= vocab
    nucleus = {"prime": PRIME, "length": 200, "temperature": 1.3, "topK": 5, "topP": 0.9, "seed": 3}
    assert page.evaluate(opts, nucleus) == page.evaluate(opts, nucleus)
    streamed = page.evaluate("""async () => { const pieces = [];
        const text = await charrnn.generate({length: 2000, seed: 1, onText: p => pieces.push(p)});
        return [text, pieces.join("")]; }""")
    assert streamed[0] == streamed[1] and len(streamed[0]) == 2000  # onText gets all of it
    error = page.evaluate("() => charrnn.generate({topP: 2}).catch(e => e.message)")
    assert error == "topP must be in (0, 1]"


def test_picking_equals_the_samplers_picker(pages):
    """charrnn.js's `sample` picks the id Picker.pick picks, for the same float64 logits and
    uniform number, across temperatures, top-k (with ties), top-p and a banned U+FFFD."""
    rng = np.random.default_rng(0)
    cases = []
    for k in range(300):
        V = int(rng.integers(2, 40))
        logits = np.round(rng.standard_normal(V) * 3, 1)  # rounded: ties happen
        options = {"temperature": [0.0, 0.5, 1.0, 2.0][k % 4] if k % 7 else 1e-300,
                   "topK": None if k % 3 else int(rng.integers(1, V + 2)),
                   "topP": None if k % 5 < 2 else float(rng.uniform(0.05, 1.0))}
        banned = int(rng.integers(V)) if k % 2 else None
        cases.append((logits, options, float(rng.random()), banned))
    js = pages["lstm"].evaluate(
        "cs => cs.map(([l, o, u, b]) => charrnn.sample(l, o, u, b))",
        [[lg.tolist(), o, u, b] for lg, o, u, b in cases])
    for (logits, o, u, banned), got in zip(cases, js):
        picker = Picker(1, logits.size, o["temperature"], o["topK"], o["topP"], banned)
        assert got == int(picker.pick(logits[None], np.array([u]))[0]), (logits, o, u, banned)


def test_the_page_shows_the_model_and_streams_text_it_writes(runs, pages):
    page = pages["gru"]
    ckpt = load(runs["gru"][0])
    note = page.inner_text("#note")
    c = ckpt.config
    assert note.startswith(f"GRU, {c.num_layers} × {c.hidden_size} units")
    assert f"{ckpt.vocab.size} characters" in note
    assert f"best validation loss {ckpt.training.best_val_loss:.4f} nats/char" in note
    page.fill("#prime", PRIME)
    page.fill("#length", "300")
    page.fill("#temperature", "0")
    page.click("#go")
    page.locator("#status", has_text="characters/s").wait_for(timeout=60_000)
    assert page.inner_text("#output") == sample(runs["gru"][0], PRIME, 300).rstrip("\n")
    assert page.is_enabled("#go") and not page.is_enabled("#stop")


def test_js_steps_are_the_exporters_registry_and_the_cell_table(pages):
    steps = pages["lstm"].evaluate(
        "Object.fromEntries(Object.entries(charrnn.STEPS).map(([k, [f, G, S]]) => [k, [f.name, G, S]]))")
    assert {k: v[0] for k, v in steps.items()} == REGISTRY["web"]
    for name, (_, G, S) in steps.items():
        assert (G, S) == (cells.get(name).G, len(cells.get(name).states))


def test_half_pages_are_smaller_and_compute_with_the_rounded_weights(runs, browser, tmp_path):
    run, full = runs["lstm"]
    half = export(run, "web", tmp_path / "half.html", "--half")
    weights = load(run).model.num_params * 4 * 4 / 3  # float32, as base64
    assert full.stat().st_size - half.stat().st_size > 0.45 * weights
    page = browser.open(half.as_uri())
    ckpt = load(run)
    rounded = {k: v.astype(np.float16).astype(np.float32) for k, v in ckpt.model.params.items()}
    probs = np.array(page.evaluate(NEXT, PRIME))
    np.testing.assert_allclose(probs, numpy_probs(ckpt, PRIME, rounded), rtol=0, atol=1e-5)
    assert "weights float16" in page.inner_text("#note")


@pytest.mark.parametrize("kind", ["float64", "torch"])
def test_float64_and_torch_trained_checkpoints(browser, tmp_path, kind):
    extra = ["--dtype", "float64"] if kind == "float64" else ["--engine", "torch"]
    if kind == "torch":
        pytest.importorskip("torch")
    run = train_run(tmp_path, kind, "lstm", *extra)
    page = browser.open(export(run, "web", tmp_path / "p.html").as_uri())
    assert PRIME + page.evaluate(GREEDY, {"prime": PRIME, "n": 300}) + "\n" == sample(run)
    ckpt = load(run)
    np.testing.assert_allclose(np.array(page.evaluate(NEXT, PRIME)), numpy_probs(ckpt, PRIME),
                               rtol=0, atol=1e-5)


def test_web_dir_serves_the_same_model_and_explains_file_urls(runs, browser, tmp_path):
    run, _ = runs["rnn"]
    folder = export(run, "web-dir", tmp_path / "site")
    assert listing(folder) == ["charrnn.js", "index.html", "model.bin", "model.json"]
    meta = json.loads((folder / "model.json").read_text("utf-8"))
    ckpt = load(run)
    assert meta["vocab"] == list(ckpt.vocab.chars) and meta["dtype"] == "float32"
    assert meta["config"] == ckpt.config.to_json()
    end = 0
    for t in meta["tensors"]:
        assert t["offset"] == end and tuple(t["shape"]) == ckpt.model.params[t["name"]].shape
        end += 4 * int(np.prod(t["shape"]))
    assert end == (folder / "model.bin").stat().st_size == meta["bytes"]
    blob = np.frombuffer((folder / "model.bin").read_bytes(), "<f4")
    head = meta["tensors"][-1]
    assert np.array_equal(blob[head["offset"] // 4:], ckpt.model.params["head.b"])

    with Server(folder) as url:
        files = [url + name for name in ("charrnn.js", "model.json", "model.bin")]
        page = browser.open(url + "index.html", allowed=files)
        page.evaluate("charrnn.ready")
        assert PRIME + page.evaluate(GREEDY, {"prime": PRIME, "n": 300}) + "\n" == sample(run)
    local = browser.open((folder / "index.html").as_uri(),
                         allowed=[(folder / "charrnn.js").as_uri(), (folder / "model.json").as_uri()])
    page_error = local.evaluate("charrnn.ready.then(() => 'loaded', e => 'failed')")
    assert page_error == "failed"
    assert "python -m http.server" in local.inner_text("#note")
    assert "--format web" in local.inner_text("#note")


def test_a_cell_without_a_javascript_step_is_refused(tmp_path):
    from helpers import toy_cell

    model = CharRNN(ModelConfig(toy_cell.TOY.name, 5, 8, 1), seed=0)
    path = tmp_path / "toy.npz"
    checkpoint.save(path, checkpoint.Checkpoint(model=model, vocab=Vocab("abcd\n")))
    for fmt, out in [("web", "t.html"), ("web-dir", "site"), ("onnx", "t.onnx")]:
        result = cli_run("export", path, "--format", fmt, "-o", tmp_path / out)
        assert result.exit_code == 1
        assert result.stderr.splitlines()[-1] == (
            f"Error: charrnn export --format {fmt} cannot export a {toy_cell.TOY.name} model: "
            f"the exporter has no {'ONNX nodes' if fmt == 'onnx' else 'JavaScript step'} for "
            "that cell (it has lstm, gru, rnn).")
    assert listing(tmp_path) == ["toy.npz"]


def test_a_bare_model_reads_the_start_character_or_the_prime_from_zeros(browser, tmp_path):
    """A checkpoint without training state has no context: an empty prime reads the start
    character (the newline), any other prime is read from the zero state, as in sampling."""
    model = CharRNN(ModelConfig("gru", 6, 12, 2), seed=4)
    path = tmp_path / "bare.npz"
    checkpoint.save(path, checkpoint.Checkpoint(model=model, vocab=Vocab("abcde\n")))
    page = browser.open(export(path, "web", tmp_path / "bare.html").as_uri())
    ckpt = checkpoint.load(path)
    for text in ["", "abc", "", "e\nd"]:  # the kept state of the start character stays intact
        np.testing.assert_allclose(np.array(page.evaluate(NEXT, text)), numpy_probs(ckpt, text),
                                   rtol=0, atol=1e-5)
    for prime in ["", "cab"]:
        assert prime + page.evaluate(GREEDY, {"prime": prime, "n": 100}) + "\n" == \
            sample(path, prime, 100)
