"""charrnn/files.py's atomic writer, which every file charrnn writes goes through (checkpoints,
`explain --html`, `logs --plot`): it replaces only a new name or a regular file, leaves no
temporary file behind on any way out, and creates files whose permissions follow the umask."""

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from charrnn import checkpoint, files
from charrnn.cli import cli
from charrnn.errors import CharRNNError, CheckpointError
from test_sampling import random_model

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, umask: POSIX")


def leftovers(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith(files.TMP_PREFIX))


def save_model(path):
    model, vocab = random_model(V=6, H=8, layers=1)
    checkpoint.save(path, checkpoint.Checkpoint(model=model, vocab=vocab))
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "100"})


@pytest.fixture
def specials(tmp_path):
    """A FIFO, a directory and a symbolic link to each: names no writer may replace."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    (tmp_path / "link-to-fifo").symlink_to(tmp_path / "fifo")
    (tmp_path / "link-to-folder").symlink_to(tmp_path / "folder")
    return tmp_path


# ----------------------------------------------------------------------------- what may be replaced


@posix_only
@pytest.mark.parametrize("name, kind", [("fifo", "a FIFO"), ("folder", "a directory"),
                                        ("link-to-fifo", "a FIFO"),
                                        ("link-to-folder", "a directory")])
def test_the_writer_refuses_anything_but_a_regular_file(specials, name, kind):
    target = specials / name
    before = os.lstat(target)
    with pytest.raises(CharRNNError) as err:
        with files.atomic_writer(target, "page", "w") as f:
            f.write("never")
    assert str(err.value) == (f"cannot write page {target}: it is {kind}" +
                              (" (named pipe)" if "FIFO" in kind else "") +
                              ", not a regular file; give a new file name.")
    after = os.lstat(target)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert leftovers(specials) == []


def test_a_device_is_refused_before_anything_is_written():
    """/dev/null is only checked, never opened for writing: the check comes first."""
    with pytest.raises(CharRNNError, match="it is a device, not a regular file"):
        files.check_target("/dev/null", "page")


def test_a_new_name_a_regular_file_and_a_link_to_one_are_written(tmp_path):
    (tmp_path / "old.txt").write_text("old")
    (tmp_path / "kept.txt").write_text("kept")
    (tmp_path / "link.txt").symlink_to(tmp_path / "kept.txt")
    for name in ("new.txt", "old.txt", "link.txt"):
        with files.atomic_writer(tmp_path / name, "page", "w", "utf-8") as f:
            f.write("new")
        assert (tmp_path / name).read_text() == "new" and not (tmp_path / name).is_symlink()
    assert (tmp_path / "kept.txt").read_text() == "kept"  # the link is replaced, not followed
    assert leftovers(tmp_path) == []


@posix_only
def test_checkpoints_refuse_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "model.npz")
    with pytest.raises(CheckpointError, match="it is a FIFO"):
        save_model(tmp_path / "model.npz")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "model.npz").st_mode)


@posix_only
@pytest.mark.parametrize("name", ["fifo", "link-to-fifo"])
def test_explain_html_onto_a_fifo_is_one_line_and_the_fifo_stays(specials, name):
    model = save_model(specials / "m.npz")
    result = run("explain", model, "--text", "abcabcabca", "--html", specials / name)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (f"Error: cannot write page {specials / name}: it is a FIFO (named "
                             "pipe), not a regular file; give a new file name.\n")
    assert stat.S_ISFIFO(os.stat(specials / name).st_mode) and leftovers(specials) == []


@posix_only
def test_logs_plot_onto_a_fifo_is_refused_before_anything_is_drawn(specials):
    """The check comes before matplotlib is imported, so it holds where matplotlib is not
    installed too."""
    (specials / "runs" / "a").mkdir(parents=True)
    (specials / "runs" / "a" / "log.jsonl").write_text("")
    os.mkfifo(specials / "fifo.png")
    result = run("logs", "--out-dir", specials / "runs", "a", "--plot", specials / "fifo.png")
    assert result.exit_code == 1, result.output
    assert "it is a FIFO (named pipe), not a regular file" in result.stderr
    assert result.stderr.count("\n") == 1
    assert stat.S_ISFIFO(os.stat(specials / "fifo.png").st_mode)


# ----------------------------------------------------------------------------- every way out


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError, OSError])
def test_an_exception_in_the_middle_of_a_write_removes_the_temporary(tmp_path, exc):
    target = tmp_path / "page.html"
    target.write_text("previous")
    with pytest.raises(CharRNNError if exc is OSError else exc):
        with files.atomic_writer(target, "page", "w", "utf-8") as f:
            f.write("half of it")
            f.flush()
            assert len(leftovers(tmp_path)) == 1  # the temporary exists while writing
            raise exc(28, "No space left on device") if exc is OSError else exc()
    assert target.read_text() == "previous" and leftovers(tmp_path) == []


def test_ctrl_c_while_a_checkpoint_is_written_removes_the_temporary(tmp_path, monkeypatch):
    save_model(tmp_path / "latest.npz")
    before = (tmp_path / "latest.npz").read_bytes()
    real = checkpoint.np.savez

    def interrupted(f, **arrays):
        real(f, **arrays)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_model(tmp_path / "latest.npz")
    assert (tmp_path / "latest.npz").read_bytes() == before and leftovers(tmp_path) == []


def test_ctrl_c_while_explain_writes_its_page_exits_130_and_leaves_nothing(tmp_path, monkeypatch):
    model = save_model(tmp_path / "m.npz")

    def interrupted(fd):  # the page's bytes are written; Ctrl-C comes before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "fsync", interrupted)
    result = run("explain", model, "--text", "abcab" * 40, "--html", tmp_path / "p.html")
    assert result.exit_code == 130, result.stderr
    assert not (tmp_path / "p.html").exists() and leftovers(tmp_path) == []


SIGTERM_MID_WRITE = """
import os, signal, sys
from charrnn import files
with files.atomic_writer(sys.argv[1], "page", "w") as f:
    f.write("half of it")
    f.flush()
    os.kill(os.getpid(), signal.SIGTERM)
    f.write("never")
"""


@posix_only
def test_sigterm_in_the_middle_of_a_write_removes_the_temporary(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.run([sys.executable, "-c", SIGTERM_MID_WRITE, str(tmp_path / "p.html")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr == "" and list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- permissions


@posix_only
@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_follow_the_umask(tmp_path, umask, expected):
    """A checkpoint, a page and a run's log are created 0o666 & ~umask, like any new file (a
    shared CHARRNN_HOME works for its group when the umask says so)."""
    old = os.umask(umask)
    try:
        save_model(tmp_path / "model.npz")
        with files.atomic_writer(tmp_path / "page.html", "page", "w") as f:
            f.write("page")
        os.close(files.open_nofollow(tmp_path / "log.jsonl", os.O_WRONLY | os.O_CREAT))
    finally:
        os.umask(old)
    for name in ("model.npz", "page.html", "log.jsonl"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == expected, name


@posix_only
def test_a_trained_runs_checkpoints_follow_the_umask(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(textwrap.dedent("""\
        the quick brown fox jumps over the lazy dog
        """) * 40)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    code = "import os, sys; os.umask(0o022); from charrnn.cli import cli; cli(sys.argv[1:])"
    proc = subprocess.run([sys.executable, "-c", code, "train", str(corpus), "--hidden-size", "8",
                           "--num-layers", "1", "--max-steps", "3", "--batch-size", "2",
                           "--seq-length", "8", "--out-dir", str(tmp_path / "runs"), "--name",
                           "r", "-q"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for name in ("latest.npz", "log.jsonl"):
        assert stat.S_IMODE(os.stat(tmp_path / "runs" / "r" / name).st_mode) == 0o644, name
