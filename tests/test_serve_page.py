"""The playground page of `charrnn serve` in a real browser (Debian's chromium, headless, driven
by Playwright for Python; never a downloaded browser) against a real uvicorn server: it loads
with no request outside the server and no console error, streams a completion into the page
with each character coloured by its probability, and its writing mode offers continuations
on Tab (arrows cycle, Enter keeps one, Esc drops it). With an API key it asks for the key once.
"""

import pytest

from charrnn.serve import Limits, load_models, make_app
from helpers.serve_helpers import make_run, serving
from test_explain_html import CHROMIUM, FLAGS, pytestmark, sync_api  # noqa: F401 - the skips

TIMEOUT = 20_000  # milliseconds: the longest any wait in the browser lasts


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return load_models(["tiny"], make_run(tmp_path_factory.mktemp("page")))


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def _open(browser, url):
    """A page on `url`; (page, the URLs it requested, its errors)."""
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT)
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/", wait_until="load")
    return page, requests, errors


def test_the_page_streams_a_completion_and_offers_continuations(browser, models, tmp_path):
    with serving(make_app(models, limits=Limits(max_tokens=2000))) as url:
        page, requests, errors = _open(browser, url)
        page.wait_for_selector("#model option[value=tiny]", state="attached")

        # the playground: the prompt, then the streamed characters, each in a coloured span
        page.fill("#prompt", "the cat")
        page.fill("#max_tokens", "120")
        page.fill("#seed", "5")
        page.click("#generate")
        page.wait_for_function("document.querySelectorAll('#output span[title]').length == 120")
        page.wait_for_selector("#generate:not([disabled])")
        assert page.inner_text("#output .prompt") == "the cat"
        colours = page.eval_on_selector_all(
            "#output span[title]", "spans => spans.map(s => s.style.background)")
        assert all(c.startswith("rgb(") for c in colours) and len(set(colours)) > 1
        assert page.get_attribute("#output span[title]", "title").startswith("p = ")

        # writing mode: Tab asks GET /generate for continuations of the text before the cursor
        page.click("#editor")
        page.keyboard.type("the dog ran")
        page.keyboard.press("Tab")
        page.wait_for_function("document.querySelectorAll('#suggestions div').length == 3")
        first = page.input_value("#editor")
        assert first.startswith("the dog ran") and len(first) > len("the dog ran")
        page.keyboard.press("ArrowDown")
        assert page.inner_text("#suggestions .current").startswith("2. ")
        second = page.input_value("#editor")
        assert second.startswith("the dog ran")
        assert second[len("the dog ran"):] == page.text_content("#suggestions .current")[3:]
        page.keyboard.press("Enter")  # keep it: the cursor goes after it, no newline added
        assert page.input_value("#editor") == second
        assert page.inner_text("#suggestions") == ""
        assert page.evaluate("document.getElementById('editor').selectionStart") == len(second)
        page.keyboard.press("Tab")
        page.wait_for_function("document.querySelectorAll('#suggestions div').length == 3")
        page.keyboard.press("Escape")  # drop it
        assert page.input_value("#editor") == second
        page.screenshot(path=str(tmp_path / "page.png"))

        assert errors == []
        assert requests and all(r.startswith(url + "/") for r in requests), requests
        assert any("/generate?start_text=the%20dog%20ran&n=3" in r for r in requests)
        page.close()


def test_the_page_asks_for_the_api_key_once(browser, models):
    with serving(make_app(models, api_key="s3cret")) as url:
        page, requests, errors = _open(browser, url)
        page.wait_for_selector("#keybox", state="visible")
        page.fill("#key", "s3cret")
        page.click("#keysave")
        page.wait_for_selector("#model option[value=tiny]", state="attached")
        assert not page.is_visible("#keybox")
        page.fill("#prompt", "a")
        page.fill("#max_tokens", "10")
        page.click("#generate")
        page.wait_for_function("document.querySelectorAll('#output span[title]').length == 10")
        assert not page.is_visible("#keybox")  # asked once: the key is kept
        assert errors == [] or all("401" in e for e in errors)
        page.close()
