"""The page of `charrnn explain --html` in a real browser: Debian's chromium, headless, driven by
Playwright for Python (`pip install '.[test]'`; `playwright install` is never needed, nor run:
the browser is the system's, `apt-get install chromium`, which .ci/run does when it is missing).

The page loads from file:// with no console error and no request but its own file, shows the
text as text (markup in it stays characters), hovering a character shows five predictions,
and picking a unit, or one of the finder's, recolours the text; a page made with --unit opens
on that unit. A screenshot is saved in the test's temporary folder.
"""

import os
import re

import pytest
from click.testing import CliRunner

from charrnn.cli import cli
from test_sampling import save_checkpoint

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TRICKY = 'He said "</script><b>hi</b>" & (left) 12.\n  x = y;\n'

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed: pip install '.[test]'")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"no {CHROMIUM}: apt-get install chromium")


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    ckpt = save_checkpoint(root / "m.npz", TRICKY)
    text = root / "text.txt"
    text.write_text(TRICKY * 40, encoding="utf-8")
    result = CliRunner().invoke(cli, ["explain", str(ckpt), str(text), "--html",
                                      str(root / "page.html")])
    assert result.exit_code == 0, result.stderr
    return root / "page.html"


def test_the_page_in_a_browser(page_file, tmp_path):
    unit_page = tmp_path / "unit.html"
    result = CliRunner().invoke(cli, ["explain", str(page_file.parent / "m.npz"),
                                      str(page_file.parent / "text.txt"), "--html",
                                      str(unit_page), "--unit", "0:5", "--gate", "f"])
    assert result.exit_code == 0, result.stderr
    errors, requests = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri(), wait_until="load")

            shown = page.eval_on_selector("#text", "e => e.textContent")
            assert shown == (TRICKY * 40).replace("\n", "\u21b5\n")
            assert page.locator("#text b").count() == 0  # the text's markup stayed text
            n = len(TRICKY * 40)
            assert page.locator("#text span").count() == n

            page.hover("#text span[data-i='9']")
            assert page.locator("#tip").is_visible()
            assert page.locator("#tip li").count() == 5
            assert page.locator("#tip li").first.inner_text().endswith("%")

            classes = "() => Array.from(document.querySelectorAll('#text span'), s => s.className)"
            surprise = page.evaluate(classes)
            assert {c.replace(" cur", "") for c in surprise} <= {"", *(f"s{k}" for k in range(8))}
            page.select_option("#layer", "1")
            page.select_option("#array", "c")
            page.fill("#index", "3")
            page.dispatch_event("#index", "change")
            unit = [c.replace(" cur", "") for c in page.evaluate(classes)]
            assert all(c.startswith("u") for c in unit) and len(set(unit)) > 1
            assert page.locator("#legend").inner_text().startswith("layer 1 c[3]")

            best = page.locator("button.best-unit").last  # the finder's units: one click
            layer, array, index = re.match(r"layer (\d+) (\w+)\[(\d+)\]",
                                           best.inner_text()).groups()
            best.click()
            assert [page.input_value(f"#{k}") for k in ("layer", "array", "index")] == [
                layer, array, index]
            legend = page.locator("#legend").inner_text()
            assert legend.startswith(f"layer {layer} {array}[{index}]")

            page.hover("#text span[data-i='40']")
            page.screenshot(path=str(tmp_path / "explain.png"), full_page=True)
            page.goto(unit_page.as_uri(), wait_until="load")  # --unit: the page opens on it
            assert page.locator("#legend").inner_text().startswith("layer 0 f[5]")
        finally:
            browser.close()
    assert errors == []
    assert requests == [page_file.as_uri(), unit_page.as_uri()]
    assert (tmp_path / "explain.png").stat().st_size > 10_000


def test_a_page_without_c_and_gates_still_shows_every_units_state(tmp_path, monkeypatch):
    """A page over its budget (PAGE_BUDGET 0 here; 10,000 characters of the default model in
    use) embeds h of every layer in full, 4 bits a value, and of the other arrays only the
    finder's units: any h unit the reader picks shows values equal to the model's within the
    quantisation step (1/15 of the unit's range, half of it rounded), a finder's c unit still
    works, and another c unit says it was left out."""
    import numpy as np

    from charrnn import checkpoint, explain
    from charrnn.explain import html as explain_html

    monkeypatch.setattr(explain_html, "PAGE_BUDGET", 0)
    ckpt = save_checkpoint(tmp_path / "m.npz", TRICKY)
    text = TRICKY + TRICKY[:40]  # shorter than a gradient-flow window: no flow panel
    out = tmp_path / "small.html"
    result = CliRunner().invoke(cli, ["explain", str(ckpt), "--text", text, "--html", str(out)])
    assert result.exit_code == 0, result.stderr
    loaded = checkpoint.load(ckpt)
    e = explain.explain(loaded.model, loaded.vocab, text, arrays="all", find=True)
    h = e.activations[1, "h"][:, 3]
    finder_c = next(u for m in e.finder for u, _ in m.units if u.array == "c")
    missing = next(i for i in range(loaded.model.config.hidden_size)
                   if all((u.layer, u.array, u.index) != (0, "c", i)
                          for m in e.finder for u, _ in m.units))
    errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(out.as_uri(), wait_until="load")
            assert page.locator("#flow-note").inner_text().startswith("Not measured")
            page.select_option("#layer", "1")
            page.select_option("#array", "h")
            page.fill("#index", "3")
            page.dispatch_event("#index", "change")
            assert page.locator("#legend").inner_text().startswith("layer 1 h[3]")
            classes = page.evaluate(
                "() => Array.from(document.querySelectorAll('#text span'), s => s.className)")
            assert all(c.startswith("u") for c in classes) and len(set(classes)) > 1
            shown = np.array(page.evaluate("() => Array.from(unitValues(1, 'h', 3))"))
            assert shown.shape == h.shape
            assert np.abs(shown - h).max() <= (h.max() - h.min()) / 30 + 1e-5

            page.locator("button.best-unit", has_text=f"layer {finder_c.layer} c"
                         f"[{finder_c.index}]").first.click()
            assert page.locator("#legend").inner_text().startswith(
                f"layer {finder_c.layer} c[{finder_c.index}]")
            page.select_option("#layer", "0")
            page.select_option("#array", "c")
            page.fill("#index", str(missing))
            page.dispatch_event("#index", "change")
            assert "is not in this page" in page.locator("#unit-range").inner_text()
        finally:
            browser.close()
    assert errors == []
