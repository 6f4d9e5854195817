"""`charrnn serve` as a user runs it: a subprocess on a free port, its start line, the models
it finds, Ctrl-C and SIGTERM ending streams in flight, and its one-line errors."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from helpers.serve_helpers import WAIT, free_port, make_run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("cli_serve"))


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}


class Served:
    """`charrnn serve ARGS` in a subprocess; `url` from its start line (stderr)."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "charrnn", "serve", *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=_env(), cwd=ROOT)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + WAIT
        while not any("serving" in line for line in self.lines):
            assert self.proc.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, "no start line"
            time.sleep(0.02)
        self.start_line = next(line for line in self.lines if "serving" in line)
        self.url = re.search(r"http://[\d.]+:\d+/", self.start_line).group(0)

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def stop(self, sig):
        """Send `sig`; (exit code, seconds until the process ended)."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(WAIT)
        return code, time.monotonic() - started

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)
        self.proc.stdout.close()


def test_serves_every_run_and_loose_checkpoints_by_name(runs, tmp_path):
    loose = tmp_path / "loose-model.npz"
    shutil.copy(runs / "tiny" / "latest.npz", loose)
    with Served(loose, "tiny", "--out-dir", runs, "--port", "0") as served:
        assert "loose-model, tiny" in served.start_line and served.url in served.start_line
        models = httpx.get(served.url + "v1/models", timeout=WAIT).json()["data"]
        assert [m["id"] for m in models] == ["loose-model", "tiny"]
        served.stop(signal.SIGINT)
    with Served("--out-dir", runs, "--port", "0") as served:  # no argument: every run
        models = httpx.get(served.url + "v1/models", timeout=WAIT).json()["data"]
        assert [m["id"] for m in models] == ["tiny"]
        assert served.stop(signal.SIGINT)[0] == 130
        assert served.proc.stdout.read() == ""  # stdout is for what the user asked for


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_the_streams_in_flight_cleanly_and_stops(runs, sig, code):
    port = free_port()
    with Served("--out-dir", runs, "--port", port, "--max-tokens", 10**6) as served:
        assert served.url == f"http://127.0.0.1:{port}/"
        body = {"model": "tiny", "prompt": "the", "max_tokens": 10**6, "stream": True}
        with httpx.Client(timeout=WAIT) as http:
            with http.stream("POST", served.url + "v1/completions", json=body) as response:
                lines = response.iter_lines()
                assert next(lines).startswith("data: {")
                exit_code, seconds = served.stop(sig)
                rest = [line for line in lines if line]
        assert exit_code == code
        assert rest[-1] == "data: [DONE]"
        last = json.loads(rest[-2][6:])
        assert last["choices"][0]["finish_reason"] == "length"
        assert "Traceback" not in "".join(served.lines)
        assert served.lines[-1] == "stopped.\n"
    print(f"stopped in {seconds:.2f} s")


def test_no_runs_is_one_line_and_exit_1(tmp_path):
    result = subprocess.run([sys.executable, "-m", "charrnn", "serve", "--out-dir",
                             tmp_path / "none"], capture_output=True, text=True, env=_env(),
                            timeout=WAIT)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("Error: no runs with a checkpoint in ")
    assert result.stderr.count("\n") == 1


def test_a_port_in_use_is_one_line_and_exit_1(runs):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "charrnn", "serve", "--out-dir", runs,
                                 "--port", str(port)], capture_output=True, text=True,
                                env=_env(), timeout=WAIT)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{port}: ")
    assert result.stderr.count("\n") == 1


def test_without_starlette_it_names_the_install_command(runs):
    code = ("import sys; sys.modules['starlette'] = None; from charrnn.__main__ import main; "
            "sys.argv = ['charrnn', 'serve', '--out-dir', sys.argv[1]]; main()")
    result = subprocess.run([sys.executable, "-c", code, str(runs)], capture_output=True,
                            text=True, env=_env(), timeout=WAIT)
    assert result.returncode == 1
    assert result.stderr == ("Error: charrnn serve needs starlette and uvicorn; install them "
                             "with: pip install starlette uvicorn\n")


def test_help_imports_neither_numpy_nor_the_server_stack():
    code = ("import sys; from charrnn.cli import cli\n"
            "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('numpy', 'starlette', 'uvicorn') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=_env(), timeout=WAIT)
    assert "serve" in result.stdout
    assert result.stdout.strip().endswith("[]")
