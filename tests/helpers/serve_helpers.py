"""Shared by the serve tests: a tiny trained run, and a real uvicorn server on a free port."""

import contextlib
import random
import socket
import threading
import time

import httpx
from click.testing import CliRunner

from charrnn.cli import cli

SENTENCES = ["the cat sat on the mat.", "a dog ran to the park!", "why is the sky so blue?",
             "we walk home at night.", "she reads a book by the sea.", "is it late?"]
WAIT = 20.0  # seconds: the longest any wait here lasts


def make_run(tmp, name="tiny", hidden=24, steps=40, seed=0):
    """Train a tiny LSTM on a generated corpus of sentences under tmp/runs; the runs dir."""
    rng = random.Random(seed)
    corpus = tmp / "corpus.txt"
    lines = [" ".join(rng.choice(SENTENCES) for _ in range(4)) for _ in range(150)]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp / "runs"
    result = CliRunner().invoke(cli, [
        "train", str(corpus), "--out-dir", str(out), "--name", name, "--hidden-size",
        str(hidden), "--num-layers", "2", "--dropout", "0", "--batch-size", "8",
        "--seq-length", "32", "--max-steps", str(steps), "--warmup-steps", "0", "--quiet",
        "--seed", str(seed)])
    assert result.exit_code == 0, result.output
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(app):
    """Run `app` under a real uvicorn server on 127.0.0.1 in a thread; yield its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(WAIT)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"


def wait_for(condition, what, timeout=WAIT):
    """Poll condition() until it is true (at most `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def streams(url, model, headers=None):
    """The server's count of streams held for `model` (GET /status)."""
    return httpx.get(f"{url}/status", headers=headers, timeout=WAIT).json()["models"][model][
        "streams"]


def sample(out_dir, *args):
    """What `charrnn sample` prints (stdout) for the tiny run with ARGS."""
    result = CliRunner().invoke(cli, ["sample", "tiny", "--out-dir", str(out_dir),
                                      *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.stdout
