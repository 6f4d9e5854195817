"""Shared by the `charrnn export` tests: tiny trained runs, the CLI, the numpy reference, and
a headless Chromium that may read nothing but the page it opened."""

import functools
import http.server
import os
import threading

import numpy as np
from click.testing import CliRunner

from charrnn import checkpoint
from charrnn.cli import cli
from charrnn.sampling import _primed
from helpers.train_helpers import TINY, make_corpus, train

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync"]
PRIME = "the quick "
CELLS = ("lstm", "gru", "rnn")


def train_run(out, name, cell="lstm", *extra, steps=40):
    """A tiny run `name` under `out`, trained `steps` steps on a generated corpus, with an
    evaluation (so best.npz and a best validation loss) every 20 steps."""
    corpus = make_corpus(out / f"{name}.txt", chars=3000)
    result = train(corpus, *TINY, "--cell", cell, "--max-steps", steps, "--eval-every", 20,
                   "--out-dir", out, "--name", name, "--seed", 1, "-q", *extra)
    assert result.exit_code == 0, result.stderr
    return out / name


def cli_run(*args):
    """Invoke `charrnn ARGS` in-process; click's Result (stdout and stderr apart)."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def export(target, fmt, out, *extra):
    result = cli_run("export", target, "--format", fmt, "-o", out, *extra)
    assert result.exit_code == 0, result.stderr
    return out


def sample(target, prime=PRIME, n=300):
    """What `charrnn sample TARGET --temp 0 --prime P -n N` prints."""
    result = cli_run("sample", target, "--temp", 0, "--prime", prime, "-n", n)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def load(run):
    """The checkpoint `charrnn sample RUN` reads."""
    from charrnn.runs import resolve_checkpoint

    return checkpoint.load(resolve_checkpoint(run))


def numpy_probs(ckpt, text, params=None):
    """The numpy model's next-character probabilities (float64) after the context and `text`,
    read as `charrnn sample` reads its prime; `params` replaces the model's weights."""
    model = ckpt.model
    if params is not None:
        from charrnn.model import CharRNN

        model = CharRNN(model.config, params=params, dtype=model.dtype)
    context = ckpt.training.sample_context if ckpt.training else ""
    _, logits = _primed(model, ckpt.vocab, text, "error", context, 1)
    z = np.exp(logits[0].astype(np.float64) - logits[0].max())
    return z / z.sum()


class Browser:
    """Pages of one headless Chromium; `open(path)` routes every request and aborts (and
    records, in `foreign`) any but the page's own file or `allowed` URLs."""

    def __init__(self, playwright):
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS,
                                                  headless=True)
        self.foreign, self.errors = [], []

    def open(self, url, allowed=()):
        page = self.browser.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        ok = {url, *allowed}

        def route(r):
            if r.request.url in ok:
                r.continue_()
            else:
                self.foreign.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto(url, wait_until="load")
        return page

    def close(self):
        self.browser.close()


class Server:
    """A static file server of `folder` on 127.0.0.1, in a thread (`with Server(dir) as url`)."""

    def __init__(self, folder):
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_port}/"

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def listing(folder):
    """Every file under `folder`, relative, sorted (temporary files would show here)."""
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, files in os.walk(folder) for f in files)
