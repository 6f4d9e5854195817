"""Whatever comes in or goes out, one line of error and no traceback: reads bounded by memory
(FIFOs, /dev/zero, sparse giants), every encoding Python knows, stdout full, closed or in
ASCII, images that cannot be written, hostile or unreadable logs and run files planted as
symbolic links (README, Reliability)."""

import encodings
import encodings.aliases
import json
import os
import pkgutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import cli
from charrnn.data import read_text
from charrnn.errors import CharRNNError
from test_hostile_input import assert_refused
from test_runs import make_records, write_run
from helpers.train_helpers import TINY, events, files_snapshot, load, make_corpus

ENV = {**os.environ, "PYTHONPATH": str(Path(charrnn.__file__).parents[1]), "NO_COLOR": "1"}


def invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env={"NO_COLOR": "1", **(env or {})})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A corpus, a trained run `r` and a run `cjk` trained on Chinese and Japanese text."""
    root = tmp_path_factory.mktemp("io")
    make_corpus(root / "c.txt")
    (root / "cjk.txt").write_text("漢字かな交じり文、読み書き。" * 300, encoding="utf-8")
    for name, corpus in (("r", "c.txt"), ("cjk", "cjk.txt")):
        result = invoke("train", root / corpus, *TINY, "--max-steps", 4, "--eval-every", 2,
                        "--out-dir", root / "runs", "--name", name, "-q")
        assert result.exit_code == 0, result.stderr
    return root


# ----------------------------------------------------------------------------- bounded reads


class EndlessFifo:
    """A FIFO at `path` that a thread fills with text as fast as it is read, until closed."""

    def __init__(self, path, chunk=b"the quick brown fox\n" * 4096):
        os.mkfifo(path)
        self.path, self.stop = path, threading.Event()
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # never blocks, needs no reader
        self.thread = threading.Thread(target=self._write, args=(chunk,), daemon=True)
        self.thread.start()

    def _write(self, chunk):
        while not self.stop.is_set():
            try:
                os.write(self.fd, chunk)
            except BlockingIOError:
                time.sleep(0.001)

    def close(self):
        self.stop.set()
        self.thread.join(10)
        os.close(self.fd)


@pytest.fixture
def small_memory(monkeypatch):
    """A machine of 64 MB, so that an endless stream is refused after about 6 MB."""
    monkeypatch.setattr("charrnn.errors._physical_memory", lambda: 64 << 20)


def _sparse(path, size):
    with open(path, "wb") as f:
        f.truncate(size)
    return path


READS = [  # (id, where the bad file goes: an argv with FILE, how to make it, phrases)
    ("train /dev/zero", ["train", "FILE"], "/dev/zero", ["/dev/zero looks like a binary file"]),
    ("eval /dev/zero", ["eval", "runs/r", "FILE"], "/dev/zero", ["looks like a binary file"]),
    ("prime /dev/zero", ["sample", "runs/r", "--prime-file", "FILE"], "/dev/zero",
     ["looks like a binary file"]),
    ("resume on /dev/zero", ["train", "FILE", "--resume", "runs/r", "--max-steps", "9", "-q"],
     "/dev/zero", ["looks like a binary file"]),
    ("train 4 TB sparse file", ["train", "FILE"], "sparse",
     ["reading", "needs about", "GiB of memory", "use a smaller text file"]),
    ("eval 4 TB sparse file", ["eval", "runs/r", "FILE"], "sparse", ["GiB of memory"]),
    ("prime 4 TB sparse file", ["sample", "runs/r", "--prime-file", "FILE"], "sparse",
     ["GiB of memory"]),
    ("train 100 MB of NUL", ["train", "FILE"], "zeros", ["looks like a binary file"]),
    ("train endless FIFO", ["train", "FILE"], "fifo", ["needs about", "GiB of memory"]),
    ("eval endless FIFO", ["eval", "runs/r", "FILE"], "fifo", ["GiB of memory"]),
    ("prime endless FIFO", ["sample", "runs/r", "--prime-file", "FILE"], "fifo",
     ["GiB of memory"]),
    ("resume on an endless FIFO", ["train", "FILE", "--resume", "runs/r", "--max-steps", "9", "-q"],
     "fifo", ["GiB of memory"]),
    ("train FIFO without a writer", ["train", "FILE"], "lonely fifo", ["is empty"]),
    ("eval FIFO without a writer", ["eval", "runs/r", "FILE"], "lonely fifo", ["is empty"]),
]


@pytest.mark.parametrize("case", READS, ids=[c[0] for c in READS])
def test_reads_are_bounded_and_never_hang(case, world, tmp_path, monkeypatch, small_memory):
    _, argv, kind, phrases = case
    work = tmp_path / "w"
    work.mkdir()
    (work / "runs").symlink_to(world / "runs")
    monkeypatch.chdir(work)
    fifo = None
    if kind == "/dev/zero":
        path = "/dev/zero"
    elif kind == "sparse":
        path = _sparse(work / "big.txt", 4 << 40)
    elif kind == "zeros":
        path = _sparse(work / "zeros.txt", 100 << 20)
        monkeypatch.undo()  # 100 MB fits this machine: refused for its content, not its size
    elif kind == "fifo":
        fifo = EndlessFifo(work / "fifo")
        path = fifo.path
    else:
        os.mkfifo(work / "lonely")
        path = work / "lonely"
    before = files_snapshot(world)
    started = time.monotonic()
    try:
        result = invoke(*[str(path) if a == "FILE" else a for a in argv])
    finally:
        if fifo:
            fifo.close()
    assert_refused(result, 1, phrases)
    assert files_snapshot(world) == before
    assert time.monotonic() - started < 60  # never hangs (a hang would block forever)


# ----------------------------------------------------------------------------- encodings


def _codec_names():
    names = set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values())
    names |= {m.name for m in pkgutil.iter_modules(encodings.__path__)}
    return sorted(names - {"aliases"})


SAMPLES = [b"hello world\n" * 3, "café ∑ 漢字\n".encode("utf-8"), bytes(range(1, 256)),
           b"\\x\\u12", b"+AGE-", b"\xff\xfe\x00a", b"xn--"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # unicode_escape on bad escapes
def test_every_encoding_python_knows_decodes_or_is_one_sentence(tmp_path):
    """~440 codec names and aliases, each on 7 texts: a str, or CharRNNError (never another
    exception); with 'undefined', a NUL byte and a lone surrogate as names too."""
    path = tmp_path / "t.txt"
    outcomes = {"read": 0, "refused": 0}
    for name in [*_codec_names(), "undefined", "utf\x008", "\udcff", "x" * 10_000]:
        for data in SAMPLES:
            path.write_bytes(data)
            try:
                assert isinstance(read_text(path, name), str)
                outcomes["read"] += 1
            except CharRNNError as exc:
                assert "\n" not in str(exc) and str(exc).endswith("."), (name, exc)
                outcomes["refused"] += 1
    assert outcomes["read"] > 1000 and outcomes["refused"] > 500


@pytest.mark.parametrize("encoding", ["idna", "punycode", "undefined", "rot13", "base64",
                                      "unicode_escape", "utf-7", "utf-32", "cp037", "zlib"])
@pytest.mark.parametrize("command", ["train", "eval", "sample"])
def test_any_encoding_option_works_or_is_one_line(world, tmp_path, encoding, command):
    text = tmp_path / "t.txt"
    text.write_bytes(b"hello world, the quick brown fox\n" * 40)
    argv = {"train": ["train", text, *TINY, "--max-steps", 1, "--out-dir", tmp_path / "o"],
            "eval": ["eval", world / "runs" / "r", text],
            "sample": ["sample", world / "runs" / "r", "--prime-file", text, "-n", 3,
                       "--unknown", "skip"]}[command]
    result = invoke(*argv, "--encoding", encoding)
    assert "Traceback" not in result.stderr and result.exit_code in (0, 1), result.stderr
    if result.exit_code:
        assert_refused(result, 1, [])


def test_the_corpus_encoding_is_saved_and_used_on_resume(tmp_path):
    corpus = tmp_path / "latin.txt"
    corpus.write_bytes(make_corpus(tmp_path / "c.txt").read_text().replace("e", "é")
                       .encode("latin-1"))
    out = tmp_path / "runs"
    assert invoke("train", corpus, *TINY, "--max-steps", 2, "--encoding", "latin-1",
                  "--out-dir", out, "-q").exit_code == 0
    result = invoke("train", "--resume", out / "latin", "--max-steps", 4, "-q")
    assert result.exit_code == 0, result.stderr
    assert load(out / "latin" / "latest.npz").training.encoding == "latin-1"
    assert [r["config"]["encoding"] for r in events(out / "latin", "start")] == ["latin-1"] * 2


# ----------------------------------------------------------------------------- stdout


def spawn(args, stdout=subprocess.PIPE, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "charrnn", *map(str, args)], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, env={**ENV, **(env or {})},
                          timeout=120, **kwargs)


OUTPUTS = [  # (id, command, how stdout is given, env, phrases)
    ("info to a full disk", ["info", "runs/r"], "full", {}, ["cannot write to stdout",
                                                            "No space left on device"]),
    ("logs to a full disk", ["logs", "--out-dir", "runs"], "full", {}, ["No space left"]),
    ("logs RUN to a full disk", ["logs", "runs/r", "--out-dir", "runs"], "full", {},
     ["No space left"]),
    ("sample to a full disk", ["sample", "runs/r", "-n", "20000"], "full", {},
     ["No space left"]),
    ("eval to a full disk", ["eval", "runs/r", "c.txt"], "full", {}, ["No space left"]),
    ("logs csv to a full disk", ["logs", "runs/r", "--format", "csv"], "full", {},
     ["No space left"]),
    ("info with stdout closed", ["info", "runs/r"], "closed", {}, ["stdout is closed"]),
    ("logs with stdout closed", ["logs", "--out-dir", "runs"], "closed", {},
     ["stdout is closed"]),
    ("eval with stdout closed", ["eval", "runs/r", "c.txt", "--format", "json"], "closed", {},
     ["stdout is closed"]),
    ("info with stdout read-only", ["info", "runs/r"], "read-only", {},
     ["cannot write to stdout", "Bad file descriptor"]),
    ("info of a CJK model in ASCII", ["info", "runs/cjk"], None,
     {"PYTHONIOENCODING": "ascii"}, ["stdout's encoding (ascii) cannot show", "PYTHONIOENCODING"]),
    ("logs of a CJK run in ASCII", ["logs", "runs/cjk", "--out-dir", "runs"], None,
     {"PYTHONIOENCODING": "ascii"}, ["stdout's encoding (ascii)"]),
    ("info in latin-1", ["info", "runs/cjk"], None, {"PYTHONIOENCODING": "latin-1"},
     ["stdout's encoding (latin-1)"]),
    ("sample of a CJK model in ASCII", ["sample", "runs/cjk", "-n", "50"], None,
     {"PYTHONIOENCODING": "ascii"}, ["stdout's encoding"]),
]


@pytest.mark.parametrize("case", OUTPUTS, ids=[c[0] for c in OUTPUTS])
def test_output_that_cannot_be_written_is_one_line(case, world):
    _, args, stdout, env, phrases = case
    if stdout == "full":
        stdout = open("/dev/full", "w")
    elif stdout == "read-only":
        stdout = open("/dev/null", "r")
    elif stdout != "closed":
        stdout = subprocess.DEVNULL
    if stdout == "closed":  # started with file descriptor 1 closed, as by `>&-`
        done = spawn(args, stdout=None, env=env, cwd=world, preexec_fn=lambda: os.close(1))
    else:
        done = spawn(args, stdout=stdout, env=env, cwd=world)
    lines = [ln for ln in done.stderr.splitlines() if not ln.startswith("using ")]
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    for phrase in phrases:
        assert phrase in done.stderr, (phrase, done.stderr)


def test_a_closed_pipe_stays_quiet(world):
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", "sample", "runs/r", "-n",
                             "200000", "--seed", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=world)
    proc.stdout.read(10)
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(120) == 0 and "Error" not in stderr and "Traceback" not in stderr


# ----------------------------------------------------------------------------- --plot


@pytest.mark.parametrize("plot, phrase", [
    ("missing/dir/a.png", "the folder missing/dir does not exist"),
    ("c.txt/a.png", "the folder c.txt does not exist"),
    ("a.bmpx", "use one of the extensions .png"),
    ("noextension", "use one of the extensions"),
])
def test_a_plot_that_cannot_be_written_is_one_line(world, monkeypatch, plot, phrase):
    monkeypatch.chdir(world)
    result = invoke("logs", "runs/r", "--plot", plot)
    assert_refused(result, 1, [phrase])


def test_a_plot_in_a_folder_without_write_permission(world, monkeypatch):
    monkeypatch.chdir(world)
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # root writes anywhere
    assert_refused(invoke("logs", "runs/r", "--plot", "a.png"), 1, ["is not writable"])


# ----------------------------------------------------------------------------- run files


def _link_lock(run):
    (run / ".lock").unlink(missing_ok=True)
    (run / ".lock").symlink_to(run.parent.parent / "target.txt")


def _link_log(run):
    (run / "log.jsonl").rename(run.parent.parent / "moved.jsonl")
    (run / "log.jsonl").symlink_to(run.parent.parent / "target.txt")


def _log_directory(run):
    (run / "log.jsonl").unlink()
    (run / "log.jsonl").mkdir()


def _lock_fifo(run):
    (run / ".lock").unlink(missing_ok=True)
    os.mkfifo(run / ".lock")


RUN_FILES = [
    ("lock is a link", _link_lock, ["lock file", "symbolic link, which charrnn does not follow"]),
    ("log is a link", _link_log, ["log.jsonl", "symbolic link"]),
    ("log is a directory", _log_directory, ["log.jsonl", "is a directory"]),
    ("lock is a FIFO", _lock_fifo, ["lock file", "not a regular file"]),
]


@pytest.mark.parametrize("case", RUN_FILES, ids=[c[0] for c in RUN_FILES])
def test_run_files_are_never_followed_out_of_the_run(case, tmp_path):
    _, plant, phrases = case
    corpus = make_corpus(tmp_path / "c.txt")
    run = tmp_path / "runs" / "r"
    assert invoke("train", corpus, *TINY, "--max-steps", 2, "--out-dir", run.parent,
                  "--name", "r", "-q").exit_code == 0
    (tmp_path / "target.txt").write_text("precious\n")
    plant(run)
    before = files_snapshot(tmp_path)
    result = invoke("train", "--resume", run, "--max-steps", 4, "-q")
    assert_refused(result, 1, phrases)
    assert files_snapshot(tmp_path) == before
    assert (tmp_path / "target.txt").read_text() == "precious\n"


def test_two_trainings_started_at_once_get_two_runs(tmp_path):
    corpus = make_corpus(tmp_path / "c.txt")
    args = ["train", corpus, *TINY, "--max-steps", 3, "--out-dir", tmp_path / "runs", "-q"]
    procs = [subprocess.Popen([sys.executable, "-m", "charrnn", *map(str, args)],
                              stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(3)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["c", "c-2", "c-3"]


# ----------------------------------------------------------------------------- hostile logs


def _nested(depth):
    return '{"event": "train", "step": 5, "x": ' + "[" * depth + "]" * depth + "}\n"


HOSTILE_LOGS = [  # (id, raw tail appended to a good log)
    ("deeply nested JSON", _nested(100_000)),
    ("a 5000-digit step", '{"event": "train", "step": ' + "9" * 5000 + "}\n"),
    ("a 400-digit step", '{"event": "train", "step": ' + "9" * 400 + ', "time": 1e308}\n'),
    ("huge numbers everywhere", json.dumps({"event": "eval", "step": 10**300, "time": 1e308,
                                            "epoch": -1e308, "val_loss": 1e308,
                                            "chars_per_sec": 10**200}) + "\n"),
    ("infinite values", '{"event": "train", "step": 20, "time": Infinity, "loss": -Infinity, '
                        '"epoch": NaN, "chars_per_sec": 1e999}\n'),
    ("impossible dates", json.dumps({"event": "start", "step": 0, "wall": "0001-01-01T00:00"
                                     ":00-12:00", "config": {"num_params": 10**30}}) + "\n"),
    ("escape sequences", json.dumps({"event": "end", "step": 200, "reason": "\x1b[2J\x1b[31m",
                                     "text": "\x9b31m"}) + "\n"
                         + json.dumps({"event": "sample", "step": 1, "text": "\x1b]0;pwned\x07"})
                         + "\n"),
    ("binary garbage", "\x00\xff\x1b[31m" * 100 + "\n"),
]


@pytest.mark.parametrize("case", HOSTILE_LOGS, ids=[c[0] for c in HOSTILE_LOGS])
@pytest.mark.parametrize("view", [[], ["bad"], ["bad", "good"], ["bad", "--lr", "--grad-norm",
                                                                 "--x", "time"],
                                  ["--format", "json"], ["bad", "--format", "csv"],
                                  ["bad", "--format", "json"]])
def test_a_hostile_log_never_breaks_logs_or_the_terminal(tmp_path, case, view):
    _, tail = case
    write_run(tmp_path, "good")
    write_run(tmp_path, "bad", make_records(steps=100), tail=tail)
    result = invoke("logs", "--out-dir", tmp_path, *view, env={"COLUMNS": "100"})
    assert result.exit_code == 0 and "Traceback" not in result.stderr, result.output
    shown = result.stdout + result.stderr
    assert not any(c in shown for c in "\x1b\x07\x9b\x00"), repr(shown[:300])
    if not view:
        assert "good" in result.stdout and "bad" in result.stdout


def test_a_run_name_with_escape_sequences_is_shown_escaped(tmp_path):
    write_run(tmp_path, "evil\x1b[31m", make_records(steps=50))
    for view in ([], ["evil\x1b[31m"], ["--format", "csv"]):
        result = invoke("logs", "--out-dir", tmp_path, *view)
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.stdout and "evil\\x1b[31m" in result.stdout


@pytest.mark.parametrize("unreadable", ["log", "directory"])
def test_logs_lists_every_other_run_when_one_cannot_be_read(tmp_path, monkeypatch, unreadable):
    write_run(tmp_path, "good")
    bad = write_run(tmp_path, "bad", make_records(steps=100, wall="2025-01-01T00:00:00+00:00"))
    real_open = os.open

    def denied(path, *args, **kwargs):  # root reads anything: the refusal is simulated
        if Path(path).name == "log.jsonl" and Path(path).parent.name == "bad":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    if unreadable == "log":
        monkeypatch.setattr(os, "open", denied)
    else:
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, m: Path(p).name != "bad" and real_access(p, m))
        monkeypatch.setattr(os.path, "isfile", lambda p: Path(p).parent.name != "bad"
                            and os.path.exists(p) and not os.path.isdir(p))
    result = invoke("logs", "--out-dir", tmp_path, env={"COLUMNS": "150"})
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.split()}
    assert "good" in rows and "finished" in rows["good"]
    if unreadable == "log":
        assert "unreadable" in rows["bad"]
        assert_refused(invoke("logs", "--out-dir", tmp_path, "bad"), 1,
                       ["cannot read", "Permission denied"])
    else:
        assert_refused(invoke("logs", "--out-dir", tmp_path, "bad"), 1,
                       ["cannot read the run directory", "permission denied"])
    assert bad.exists()
