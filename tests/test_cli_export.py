"""`charrnn export` on bad input: a missing run, a corrupt checkpoint, a missing or unwritable
output folder, -o a folder, a device or a FIFO, a write that fails half-way, stdout closed.
Each is one line on stderr and exit 1, and nothing is left half-written: no temporary file,
and a file that was there before is intact. Also: -o - writes to stdout, and web-dir
writes into an existing folder."""

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from charrnn import checkpoint
from charrnn.data import Vocab
from charrnn.model import CharRNN, ModelConfig
from helpers.export_helpers import cli_run, export, listing

ROOT = Path(__file__).resolve().parent.parent
FORMATS = [("web", "m.html"), ("web-dir", "site"), ("onnx", "m.onnx")]


@pytest.fixture
def ckpt(tmp_path):
    path = tmp_path / "m.npz"
    model = CharRNN(ModelConfig("lstm", 6, 8, 2), seed=0)
    checkpoint.save(path, checkpoint.Checkpoint(model=model, vocab=Vocab("abcde\n")))
    return path


def one_line_error(result, expected):
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1] == f"Error: {expected}"
    assert all(line.startswith("using ") for line in lines[:-1])
    assert result.stdout == ""


def run_cli(*args, preexec_fn=None, shell_suffix=""):
    """`python -m charrnn ARGS` in a subprocess; (returncode, stdout bytes, stderr str)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "charrnn", *map(str, args)]
    if shell_suffix:
        command = ["sh", "-c", " ".join(f"'{c}'" for c in command) + shell_suffix]
    p = subprocess.run(command, capture_output=True, env=env, timeout=120,
                       preexec_fn=preexec_fn)
    return p.returncode, p.stdout, p.stderr.decode()


@pytest.mark.parametrize("fmt,name", FORMATS)
def test_a_missing_run_and_a_corrupt_checkpoint(tmp_path, fmt, name):
    out = tmp_path / "runs"
    out.mkdir()
    result = cli_run("export", "nope", "--out-dir", out, "--format", fmt, "-o", tmp_path / name)
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
    assert "nope" in result.stderr
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04" + os.urandom(300))
    result = cli_run("export", bad, "--format", fmt, "-o", tmp_path / name)
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"Error: {bad}")
    assert listing(tmp_path) == ["bad.npz"]


@pytest.mark.parametrize("fmt,name", FORMATS)
def test_a_missing_folder_and_a_file_where_the_folder_should_be(tmp_path, ckpt, fmt, name):
    target = tmp_path / "no" / "such" / name
    one_line_error(cli_run("export", ckpt, "--format", fmt, "-o", target),
                   f"cannot write {target}: the folder {target.parent} does not exist.")
    (tmp_path / "plain").write_text("x")
    target = tmp_path / "plain" / name
    one_line_error(cli_run("export", ckpt, "--format", fmt, "-o", target),
                   f"cannot write {target}: {target.parent} is not a folder.")
    assert listing(tmp_path) == ["m.npz", "plain"]


@pytest.mark.parametrize("fmt,name", [("web", "m.html"), ("onnx", "m.onnx")])
def test_o_a_folder_a_device_or_a_fifo_is_refused(tmp_path, ckpt, fmt, name):
    folder = tmp_path / "dir"
    folder.mkdir()
    one_line_error(cli_run("export", ckpt, "--format", fmt, "-o", folder),
                   f"{folder} is a folder; give a file name, such as {folder / 'model.html'}, "
                   "or use --format web-dir for a folder.")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for special in (fifo, Path("/dev/null")):
        one_line_error(cli_run("export", ckpt, "--format", fmt, "-o", special),
                       f"{special} is not a regular file (a device, FIFO or socket); give the "
                       "name of a file to write.")
    assert listing(tmp_path) == ["fifo", "m.npz"]


def test_web_dir_refuses_a_file_and_writes_into_an_existing_folder(tmp_path, ckpt):
    (tmp_path / "f").write_text("keep")
    one_line_error(cli_run("export", ckpt, "--format", "web-dir", "-o", tmp_path / "f"),
                   f"{tmp_path / 'f'} exists and is not a folder; --format web-dir writes a "
                   "folder of files (give a new or existing folder).")
    assert (tmp_path / "f").read_text() == "keep"
    site = tmp_path / "site"
    site.mkdir()
    (site / "other.txt").write_text("mine")
    (site / "model.bin").write_bytes(b"old")
    export(ckpt, "web-dir", site)
    assert listing(site) == ["charrnn.js", "index.html", "model.bin", "model.json", "other.txt"]
    assert (site / "other.txt").read_text() == "mine" and (site / "model.bin").stat().st_size > 3


def _unwritable_folder(tmp_path):
    """A folder this process may not create files in: a read-only one, or for root (who may
    write anywhere else) sysfs's top folder."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        return locked
    try:
        os.close(os.open("/sys/.charrnn-probe", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except OSError:
        return Path("/sys")
    os.unlink("/sys/.charrnn-probe")
    pytest.skip("no folder here refuses root's writes")


@pytest.mark.parametrize("fmt,name", FORMATS)
def test_an_unwritable_folder(tmp_path, ckpt, fmt, name):
    folder = _unwritable_folder(tmp_path)
    before = sorted(os.listdir(folder))
    target = folder / name
    result = cli_run("export", ckpt, "--format", fmt, "-o", target)
    assert result.exit_code == 1 and result.stdout == ""
    line = result.stderr.splitlines()[-1]
    what = {"web": "page ", "onnx": "ONNX graph ", "web-dir": ""}[fmt]
    assert line == f"Error: cannot write {target}: the folder {folder} is not writable." or (
        line.startswith((f"Error: cannot write {target}: ", f"Error: could not write {what}{target}: "))
        and any(line.endswith(f"{why}; {kept}.")
                for why in ("Permission denied", "Operation not permitted")
                for kept in ("nothing was written", "no file was written"))), line
    assert sorted(os.listdir(folder)) == before


@pytest.mark.parametrize("fmt,name", FORMATS)
def test_a_write_that_fails_half_way_leaves_the_old_file_and_no_temporary(tmp_path, ckpt, fmt, name):
    """A file-size limit (RLIMIT_FSIZE) makes the write fail part-way, as a full disk would."""
    target = tmp_path / name
    if fmt == "web-dir":
        target.mkdir()
        (target / "model.json").write_text("old")
    else:
        target.write_text("old")

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    code, out, err = run_cli("export", ckpt, "--format", fmt, "-o", target, preexec_fn=limit)
    assert code == 1 and out == b""
    assert err.splitlines()[-1] == {
        "web": f"Error: could not write page {target}: File too large; the previous page is intact.",
        "onnx": f"Error: could not write ONNX graph {target}: File too large; the previous ONNX "
                "graph is intact.",
        "web-dir": f"Error: cannot write {target}: File too large; nothing was written."}[fmt]
    old = target / "model.json" if fmt == "web-dir" else target
    assert old.read_text() == "old"
    assert listing(tmp_path) == sorted(["m.npz", os.path.relpath(old, tmp_path)])


@pytest.mark.parametrize("fmt", ["web", "onnx"])
def test_stdout_closed_is_one_line_and_o_dash_writes_to_stdout(tmp_path, ckpt, fmt):
    code, out, err = run_cli("export", ckpt, "--format", fmt, "-o", "-", shell_suffix=" >&-")
    assert code == 1
    assert err.splitlines()[-1] == "Error: cannot write to stdout: stdout is closed."
    assert listing(tmp_path) == ["m.npz"]
    code, out, err = run_cli("export", ckpt, "--format", fmt, "-o", tmp_path / "x",
                             shell_suffix=" >&-")
    assert code == 0, err  # nothing goes to stdout when writing a file
    code, piped, err = run_cli("export", ckpt, "--format", fmt, "-o", "-")
    assert code == 0 and piped == (tmp_path / "x").read_bytes()
    assert err.splitlines()[-1].startswith("wrote stdout (")


def test_usage_errors(tmp_path, ckpt):
    result = cli_run("export", ckpt, "--format", "web-dir", "-o", "-")
    assert result.exit_code == 2 and "writes a folder" in result.stderr
    result = cli_run("export", ckpt, "-o", tmp_path / "x.html")
    assert result.exit_code == 2 and "--format" in result.stderr
    assert listing(tmp_path) == ["m.npz"]
