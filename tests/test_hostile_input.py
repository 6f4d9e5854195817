"""Hostile and wrong input to every command, as one table.

Each case runs one command in a working directory holding a trained run, good and bad text
files and good and bad checkpoints, and asserts the contract of DESIGN.md: the documented exit
code (1 for an error, 2 for a click usage error), stderr ending in one `Error:` line (exit 1:
preceded at most by the `using CKPT` notice of sample/eval/info/explain), no traceback,
nothing on stdout, and every file and directory that existed before exactly as it was, with
nothing new created anywhere (so a pickle payload never ran and a run name never escaped the
out-dir).
"""

import json
import os
import shutil
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import checkpoint
from charrnn.cli import cli
from test_checkpoint import CASES as BAD_CHECKPOINTS
from helpers.train_helpers import TINY, files_snapshot, make_corpus

ERROR, USAGE = 1, 2


def _edit_meta(src, dst, edit):
    """Copy checkpoint `src` to `dst` with `edit(meta, arrays)` applied, as an attacker might."""
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    edit(meta, arrays)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)


def npy_header(shape, descr="<f4"):
    """A .npy version 1.0 header for an array of `shape` and dtype `descr`."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def _edit_entries(src, dst, entries):
    """Copy checkpoint `src` to `dst` with the raw .npy bytes of `entries` (name -> bytes, None
    to drop) in place of its own: headers that lie, entries that should not be there."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            name = info.filename[:-4]
            if name not in entries:
                zout.writestr(info.filename, zin.read(info))
        for name, data in entries.items():
            if data is not None:
                zout.writestr(name + ".npy", data)


def _set(key, index, value):
    def edit(meta, arrays):
        arrays[key] = arrays[key].copy()
        arrays[key][index] = value
    return edit


def _meta(*path, value=None, drop=False):
    """An edit of one metadata field (a path of keys into the meta object)."""
    def edit(meta, arrays):
        *parents, last = path
        node = meta
        for key in parents:
            node = node[key]
        if drop:
            del node[last]
        else:
            node[last] = value
    return edit


# (file, how it is made from a good latest.npz, the phrase of the error that names the problem)
EDITED_CHECKPOINTS = [
    ("nan-optimizer.npz", _set("optim/m.head.W", (0, 0), np.nan),
     "optimizer state m.head.W holds NaN or infinity"),
    ("inf-optimizer.npz", _set("optim/v.layers.0.Wh", (1, 2), np.inf),
     "optimizer state v.layers.0.Wh holds NaN or infinity"),
    ("inf-state.npz", _set("state/0/1", (0, 0), -np.inf), "hidden state 0/1 holds NaN"),
    ("nan-state.npz", _set("state/1/0", (3, 1), np.nan), "hidden state 1/0 holds NaN"),
    ("state-shape.npz", lambda m, a: a.__setitem__("state/1/0", np.zeros((16, 3), np.float32)),
     "hidden state or optimizer state is malformed"),
    ("format-version-text.npz", _meta("format_version", value="1"),
     "invalid metadata: format_version is not a positive integer"),
    ("format-version-zero.npz", _meta("format_version", value=0), "format_version"),
    ("version-number.npz", _meta("charrnn_version", value=5), "charrnn_version is not a string"),
    ("config-list.npz", _meta("config", value=[1]), "invalid metadata: config is not an object"),
    ("hidden-text.npz", _meta("config", "hidden_size", value="16"),
     "config.hidden_size is not a positive integer"),
    ("hidden-huge.npz", _meta("config", "hidden_size", value=10**15),
     "parameter layers.0.Wx is missing or malformed"),
    ("layers-bool.npz", _meta("config", "num_layers", value=True), "config.num_layers"),
    ("no-layers.npz", _meta("config", "num_layers", drop=True), "config.num_layers is missing"),
    ("cell-unknown.npz", _meta("config", "cell", value="transformer"),
     "config.cell is not one of lstm"),
    ("config-extra.npz", _meta("config", "exploit", value=1),
     "config.exploit is not a model option"),
    ("dropout-nan.npz", _meta("config", "dropout", value=float("nan")), "config.dropout"),
    ("dropout-two.npz", _meta("config", "dropout", value=2), "config.dropout"),
    ("dtype-half.npz", _meta("dtype", value="float16"), "dtype is not float32 or float64"),
    ("vocab-text.npz", _meta("vocab", value="abc"), "vocab is not a non-empty list"),
    ("vocab-repeated.npz", _meta("vocab", value=[97, 97]), "vocab is not a non-empty list"),
    ("vocab-short.npz", lambda m, a: m.__setitem__("vocab", m["vocab"][:-1]),
     "vocab has "),
    ("training-list.npz", _meta("training", value=[1]), "training is not an object"),
]
# (file, entries replaced (None: dropped), phrase)
FORGED_ENTRIES = [
    ("huge-header.npz", {"params/head.W": npy_header((10**12, 5))},
     "parameter head.W is missing or malformed"),
    ("huge-meta.npz", {"meta": npy_header((10**10,), "|u1")}, "bytes of metadata"),
    ("unknown-entry.npz", {"evil": npy_header((3,)) + bytes(12)}, "unexpected entry 'evil'"),
    ("unknown-optimizer-entry.npz", {"optim/m.nothing": npy_header((3,)) + bytes(12)},
     "unexpected entry 'optim/m.nothing'"),
    ("pickled-entry.npz", {"optim/t": npy_header((), "|O") + b"\x80\x04N."},
     "contains pickled Python objects"),
    ("wrong-dtype.npz", {"params/head.b": npy_header((11,), "<i8") + bytes(88)},
     "parameter head.b is missing or malformed"),
    ("missing-parameter.npz", {"params/head.b": None}, "parameter head.b is missing"),
    ("npy-version-9.npz", {"params/head.b": b"\x93NUMPY\x09\x00" + bytes(100)},
     "is corrupt or truncated"),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """The working directory every case starts from (copied per case)."""
    root = tmp_path_factory.mktemp("world")
    make_corpus(root / "corpus.txt")
    make_corpus(root / "secret.txt")
    (root / "other.txt").write_text("Ωmega ∑igma " * 100, encoding="utf-8")
    (root / "empty.txt").write_bytes(b"")
    (root / "one.txt").write_bytes(b"x")
    (root / "blob.bin").write_bytes(bytes(range(256)) * 8)
    (root / "latin1.txt").write_bytes("café crème ".encode("latin-1") * 50)
    (root / "euros.txt").write_text("€" * 50, encoding="utf-8")
    (root / "folder").mkdir()
    (root / "no-runs").mkdir()
    result = CliRunner().invoke(cli, ["train", str(root / "corpus.txt"), *TINY, "--max-steps",
                                      "3", "--eval-every", "1", "--out-dir",
                                      str(root / "checkpoints"), "--name", "r", "-q"])
    assert result.exit_code == 0, result.stderr
    latest = root / "checkpoints" / "r" / "latest.npz"
    shutil.copy(latest, root / "secret.npz")
    shutil.copy(latest, root / "model.npz")
    _edit_meta(latest, root / "nan.npz", lambda m, a: a["params/head.b"].__setitem__(0, np.nan))
    _edit_meta(latest, root / "damaged.npz", lambda m, a: m["training"].update(step="x"))
    _edit_meta(latest, root / "extra-option.npz",
               lambda m, a: m["training"]["train_config"].update(exploit=1))
    _edit_meta(latest, root / "bare.npz", lambda m, a: m.__setitem__("training", {}))
    for name, edit, _ in EDITED_CHECKPOINTS:
        _edit_meta(latest, root / name, edit)
    for name, entries, _ in FORGED_ENTRIES:
        _edit_entries(latest, root / name, entries)
    for case in BAD_CHECKPOINTS:
        directory = root / Path(ck(case)).parent
        directory.mkdir(parents=True)
        BAD_CHECKPOINTS[case][0](directory)
    return root


def ck(case):
    """The path of one of test_checkpoint's bad checkpoints in the working directory."""
    return f"ck/{case.replace(' ', '-')}/bad.npz"


def deny(names):
    """A setup that makes the files named `names` unreadable (simulated: root ignores modes)."""
    def setup(monkeypatch):
        real_os_open, real_open = os.open, open

        def refusing(opener):
            def refuse(path, *args, **kwargs):
                if Path(path).name in names:
                    raise PermissionError(13, "Permission denied", str(path))
                return opener(path, *args, **kwargs)
            return refuse

        monkeypatch.setattr(os, "open", refusing(real_os_open))  # texts and logs
        monkeypatch.setattr(checkpoint, "open", refusing(real_open), raising=False)
    return setup


def refuse_access():
    """A setup under which no path may be written (simulated: root may write anywhere)."""
    return lambda monkeypatch: monkeypatch.setattr(
        os, "access", lambda path, mode, **kw: not mode & os.W_OK)


def small_memory(size=100_000):
    """A setup under which this machine seems to have `size` bytes of memory."""
    from charrnn import errors

    return lambda monkeypatch: monkeypatch.setattr(errors, "_physical_memory", lambda: size)


def bad_checkpoint_cases(label, argv):
    """Cases giving `argv(path)` each bad checkpoint of test_checkpoint_safety, one with NaN
    weights, and an unreadable one."""
    return [*[(f"{label} {case}", argv(ck(case)), ERROR, [message])
              for case, (_, message) in BAD_CHECKPOINTS.items()],
            (f"{label} NaN weights", argv("nan.npz"), ERROR, ["holds NaN or infinity"]),
            *[(f"{label} {name[:-4]}", argv(name), ERROR, [phrase])
              for name, _, phrase in EDITED_CHECKPOINTS + FORGED_ENTRIES],
            (f"{label} unreadable checkpoint", argv("secret.npz"), ERROR,
             ["cannot be read: Permission denied"], deny({"secret.npz"}))]


TRAIN = ["train", *TINY, "--max-steps", "2", "-q"]  # a case that wrongly trains ends at once
_BUSY = socket.socket()  # a port held for the whole module: no case may start serving
_BUSY.bind(("127.0.0.1", 0))
_BUSY.listen()
SERVE = ["serve", "--port", str(_BUSY.getsockname()[1])]

# (id, args, exit code, phrases on stderr, setup)
CASES = [
    # ----- train: the corpus
    ("train missing corpus", [*TRAIN, "nope.txt"], ERROR, ["nope.txt does not exist"]),
    ("train directory corpus", [*TRAIN, "folder"], ERROR, ["folder is a directory"]),
    ("train empty corpus", [*TRAIN, "empty.txt"], ERROR, ["empty.txt is empty"]),
    ("train binary corpus", [*TRAIN, "blob.bin"], ERROR, ["blob.bin looks like a binary file"]),
    ("train invalid utf-8", [*TRAIN, "latin1.txt"], ERROR, ["not valid utf-8", "--encoding"]),
    ("train one character", [*TRAIN, "one.txt"], ERROR, ["only 1 character"]),
    ("train unreadable corpus", [*TRAIN, "secret.txt"], ERROR, ["permission denied"],
     deny({"secret.txt"})),
    ("train unknown encoding", [*TRAIN, "corpus.txt", "--encoding", "klingon"], ERROR,
     ["unknown encoding 'klingon'"]),
    ("train non-text encoding", [*TRAIN, "corpus.txt", "--encoding", "base64"], ERROR,
     ["unknown encoding 'base64'"]),
    # ----- train: absurd sizes, refused before allocating, with an estimate
    ("train hidden size 1e6", [*TRAIN, "corpus.txt", "--hidden-size", "1000000"], ERROR,
     ["GiB of memory", "--hidden-size"]),
    ("train 64 layers of 50k", [*TRAIN, "corpus.txt", "--num-layers", "64", "--hidden-size",
                                "50000"], ERROR, ["GiB of memory", "--num-layers"]),
    ("train hidden size 1e30", [*TRAIN, "corpus.txt", "--hidden-size", str(10**30)], ERROR,
     ["e+", "GiB of memory"]),
    # ----- train: option values
    *[(f"train {opt} {value}", [*TRAIN, "corpus.txt", opt, value], USAGE, [opt])
      for opt, value in [
          ("--hidden-size", "0"), ("--hidden-size", "-5"), ("--hidden-size", "abc"),
          ("--num-layers", "0"), ("--cell", "transformer"), ("--dropout", "1"),
          ("--dropout", "nan"), ("--learning-rate", "0"), ("--learning-rate", "nan"),
          ("--learning-rate", "inf"), ("--learning-rate", "-1"), ("--grad-clip", "-1"),
          ("--grad-clip", "nan"), ("--epochs", "inf"), ("--epochs", "0"),
          ("--val-fraction", "1"), ("--val-fraction", "-0.1"), ("--time-limit", "soon"),
          ("--time-limit", "0"), ("--time-limit", "-5m"), ("--time-limit", "."),
          ("--time-limit", "1.2.3m"), ("--time-limit", "²m"), ("--time-limit", "9" * 400), ("--optimizer", "lbfgs"),
          ("--dtype", "float16"), ("--seed", "-1"), ("--threads", "0"), ("--max-steps", "0"),
          ("--batch-size", "0"), ("--seq-length", "-3"), ("--eval-every", "0"),
          ("--lr-schedule", "linear"), ("--patience", "0"), ("--warmup-steps", "-1")]],
    *[(f"train {opt} {value}", [*TRAIN, "corpus.txt", opt, value], ERROR, [f"Error: {opt}: "])
      for opt, value in [("--min-count", "0"), ("--max-vocab", "1"), ("--max-vocab", "x")]],
    ("train min-count leaving nothing", [*TRAIN, "corpus.txt", "--min-count", "10000000"],
     ERROR, ["--min-count 10000000 leaves out every character"]),
    ("resume changing min-count", [*TRAIN, "--resume", "checkpoints/r", "--min-count", "3"],
     ERROR, ["cannot resume with --min-count 3"]),
    ("train unknown option", [*TRAIN, "corpus.txt", "--hidden", "3"], USAGE, ["--hidden"]),
    ("train out-dir is a file", [*TRAIN, "corpus.txt", "--out-dir", "corpus.txt"], USAGE,
     ["--out-dir"]),
    ("train patience without validation", [*TRAIN, "corpus.txt", "--patience", "2",
                                           "--val-fraction", "0"], ERROR, ["--patience"]),
    # ----- train: run names that would escape the out-dir or overwrite a run
    *[(f"train name {name!r}", [*TRAIN, "corpus.txt", "--name", name], ERROR,
       ["invalid run name"])
      for name in ["../escaped", "/tmp/abs", "a/b", ".hidden", "", "..", " r", "a\\b",
                   "\x1b[31mred", "bell\x07", "two\nlines", "tab\tname", "rtl\u202eevil",
                   "zero\u200bwidth", "del\x7f", "c1\x9b", "x" * 256, "é" * 128]],
    ("train name too long for its folder", [*TRAIN, "corpus.txt", "--out-dir",
                                            "/".join(["d" * 200] * 20), "--name", "r"],
     ERROR, ["longer than 4096 bytes"]),
    ("train existing run", [*TRAIN, "corpus.txt", "--name", "r"], ERROR,
     ["already exists", "--resume"]),
    # ----- train --resume
    ("resume missing", [*TRAIN, "--resume", "nope"], ERROR, ["no run named 'nope'"]),
    ("resume directory without checkpoint", [*TRAIN, "--resume", "folder"], ERROR,
     ["no checkpoint to resume from"]),
    *bad_checkpoint_cases("resume", lambda path: [*TRAIN, "--resume", path]),
    ("resume damaged training state", [*TRAIN, "--resume", "damaged.npz"], ERROR,
     ["damaged training state (step)"]),
    ("resume unknown saved option", [*TRAIN, "--resume", "extra-option.npz"], ERROR,
     ["damaged training state (train_config)"]),
    ("resume a bare model", [*TRAIN, "--resume", "bare.npz"], ERROR,
     ["without training state"]),
    ("resume on other characters", [*TRAIN, "other.txt", "--resume", "checkpoints/r",
                                    "--max-steps", "9"], ERROR,
     ["cannot resume on this corpus", "'Ω'"]),
    ("resume changing the model", [*TRAIN, "--resume", "checkpoints/r", "--hidden-size", "32"],
     ERROR, ["cannot resume with --hidden-size 32"]),
    # ----- train --init-from
    ("init-from missing", [*TRAIN, "corpus.txt", "--init-from", "nope"], ERROR,
     ["no run named 'nope'"]),
    ("init-from a shape option", [*TRAIN, "corpus.txt", "--init-from", "r", "--num-layers", "3"],
     ERROR, ["--init-from takes the model's shape", "--num-layers."]),
    ("init-from and resume", [*TRAIN, "corpus.txt", "--init-from", "r", "--resume", "r"], ERROR,
     ["give one of them"]),
    *bad_checkpoint_cases("init-from", lambda path: [*TRAIN, "corpus.txt", "--init-from", path]),
    # ----- sample
    ("sample unknown run", ["sample", "nope"], ERROR, ["no run named 'nope'"]),
    ("sample a directory that is not a run", ["sample", "folder"], ERROR, ["is not a run"]),
    ("sample without runs", ["sample", "--out-dir", "no-runs"], ERROR, ["no runs"]),
    *bad_checkpoint_cases("sample", lambda path: ["sample", path]),
    ("sample unknown prime characters", ["sample", "model.npz", "--prime", "héllo€"], ERROR,
     ["the prime has 2 character(s)", "'é', '€'", "--unknown skip"]),
    ("sample missing prime file", ["sample", "model.npz", "--prime-file", "nope.txt"], ERROR,
     ["nope.txt does not exist"]),
    ("sample directory prime file", ["sample", "model.npz", "--prime-file", "folder"], USAGE,
     ["--prime-file"]),
    ("sample binary prime file", ["sample", "model.npz", "--prime-file", "blob.bin"], ERROR,
     ["binary"]),
    ("sample invalid utf-8 prime file", ["sample", "model.npz", "--prime-file", "latin1.txt"],
     ERROR, ["not valid utf-8"]),
    ("sample empty prime file", ["sample", "model.npz", "--prime-file", "empty.txt"], ERROR,
     ["empty.txt is empty"]),
    ("sample unreadable prime file", ["sample", "model.npz", "--prime-file", "secret.txt"],
     ERROR, ["permission denied"], deny({"secret.txt"})),
    ("sample prime and prime file", ["sample", "model.npz", "--prime", "a", "--prime-file",
                                     "corpus.txt"], USAGE, ["not both"]),
    ("sample ten billion samples", ["sample", "model.npz", "--num-samples", str(10**10)], ERROR,
     ["GiB of memory", "--num-samples"]),
    ("sample a huge batch of long samples", ["sample", "model.npz", "--num-samples", "100000",
                                             "-n", str(10**9)], ERROR, ["GiB of memory"]),
    *[(f"sample {' '.join(args)}", ["sample", "model.npz", *args], ERROR, phrases)
      for args, phrases in [
          (["--beam", "0"], ["--beam: 0 is not in the range"]),
          (["--beam", "many"], ["--beam: 'many' is not a valid integer"]),
          (["--beam", "2", "--temp", "0.5"], ["--beam", "does not combine with --temp"]),
          (["--beam", "2", "--top-k", "3"], ["does not combine with --temp, --top-k"]),
          (["--beam", "2", "--top-p", "0.5"], ["does not combine"]),
          (["--beam", "2", "--num-samples", "3"], ["--num-samples 3 is more than --beam 2"]),
          (["--stop", ""], ["--stop: a stop text cannot be empty."]),
          (["--stop", "\\q"], ["--stop: cannot read the escape \\q"]),
          (["--format", "xml"], ["--format: 'xml' is not one of 'text', 'jsonl'."]),
          (["--prime", "é", "--unknown", "replace"], ["no U+FFFD to stand for them"]),
          (["--beam", "100000", "-n", str(10**9)], ["beam search with --beam 100,000", "GiB"]),
          (["--beam", "1", "-n", str(10**9)], ["beam search with --beam 1 over"])]],
    *[(f"sample {opt} {value}", ["sample", "model.npz", opt, value], USAGE, [opt])
      for opt, value in [
          ("--temp", "-1"), ("--temp", "nan"), ("--temp", "inf"), ("--top-p", "0"),
          ("--top-p", "1.5"), ("--top-p", "nan"), ("--top-k", "0"), ("--length", "-1"),
          ("--num-samples", "0"), ("--seed", "-1"), ("--unknown", "ignore"),
          ("--out-dir", "corpus.txt")]],
    # ----- eval
    ("eval without arguments", ["eval"], USAGE, ["give FILE"]),
    ("eval three arguments", ["eval", "model.npz", "corpus.txt", "corpus.txt"], USAGE,
     ["give FILE"]),
    ("eval missing file", ["eval", "model.npz", "nope.txt"], ERROR, ["nope.txt does not exist"]),
    ("eval directory", ["eval", "model.npz", "folder"], ERROR, ["folder is a directory"]),
    ("eval empty file", ["eval", "model.npz", "empty.txt"], ERROR, ["empty.txt is empty"]),
    ("eval binary file", ["eval", "model.npz", "blob.bin"], ERROR, ["binary"]),
    ("eval invalid utf-8", ["eval", "model.npz", "latin1.txt"], ERROR, ["not valid utf-8"]),
    ("eval one character", ["eval", "model.npz", "one.txt"], ERROR, ["at least 2 characters"]),
    ("eval only unknown characters", ["eval", "model.npz", "euros.txt"], ERROR,
     ["at least 2 characters"]),
    ("eval unreadable file", ["eval", "model.npz", "secret.txt"], ERROR, ["permission denied"],
     deny({"secret.txt"})),
    ("eval unknown encoding", ["eval", "model.npz", "corpus.txt", "--encoding", "klingon"],
     ERROR, ["unknown encoding"]),
    ("eval unknown run", ["eval", "nope", "corpus.txt"], ERROR, ["no run named 'nope'"]),
    ("eval without runs", ["eval", "corpus.txt", "--out-dir", "no-runs"], ERROR, ["no runs"]),
    *bad_checkpoint_cases("eval", lambda path: ["eval", path, "corpus.txt"]),
    ("eval bad format", ["eval", "model.npz", "corpus.txt", "--format", "xml"], USAGE,
     ["--format"]),
    # ----- explain
    ("explain without arguments", ["explain"], USAGE, ["give FILE"]),
    ("explain text and two arguments", ["explain", "model.npz", "corpus.txt", "--text", "ab"],
     USAGE, ["with --text, give at most RUN|CKPT"]),
    ("explain missing file", ["explain", "model.npz", "nope.txt"], ERROR,
     ["nope.txt does not exist"]),
    ("explain directory", ["explain", "model.npz", "folder"], ERROR, ["folder is a directory"]),
    ("explain empty file", ["explain", "model.npz", "empty.txt"], ERROR, ["empty.txt is empty"]),
    ("explain empty text", ["explain", "model.npz", "--text", ""], ERROR, ["the text is empty"]),
    ("explain binary file", ["explain", "model.npz", "blob.bin"], ERROR, ["binary"]),
    ("explain one character", ["explain", "model.npz", "one.txt"], ERROR, ["at least 2"]),
    ("explain only unknown characters", ["explain", "model.npz", "euros.txt"], ERROR,
     ["the text has 0 character(s) the model knows"]),
    ("explain unreadable file", ["explain", "model.npz", "secret.txt"], ERROR,
     ["permission denied"], deny({"secret.txt"})),
    ("explain unknown run", ["explain", "nope", "corpus.txt"], ERROR, ["no run named 'nope'"]),
    ("explain without runs", ["explain", "corpus.txt", "--out-dir", "no-runs"], ERROR,
     ["no runs"]),
    *bad_checkpoint_cases("explain", lambda path: ["explain", path, "corpus.txt"]),
    ("explain layer out of range", ["explain", "model.npz", "corpus.txt", "--unit", "2:0"],
     ERROR, ["layer 2 does not exist: this model's layers are 0 to 1"]),
    ("explain unit out of range", ["explain", "model.npz", "corpus.txt", "--unit", "0:16"],
     ERROR, ["unit 16 does not exist: each layer has 16 units, 0 to 15"]),
    ("explain gate of another cell", ["explain", "model.npz", "corpus.txt", "--unit", "0:1",
                                      "--gate", "z"], ERROR,
     ["the lstm cell has no gate 'z'; its gates are i, f, o, g"]),
    ("explain unknown state", ["explain", "model.npz", "corpus.txt", "--unit", "0:1",
                               "--state", "m"], ERROR, ["no state 'm'; its states are h, c"]),
    ("explain state and gate", ["explain", "model.npz", "corpus.txt", "--unit", "0:1",
                                "--state", "h", "--gate", "f"], ERROR, ["not both"]),
    ("explain gate without unit", ["explain", "model.npz", "corpus.txt", "--gate", "f"], USAGE,
     ["--state and --gate choose the array of a --unit"]),
    *[(f"explain {opt} {value}", ["explain", "model.npz", "corpus.txt", opt, value], USAGE,
       [opt]) for opt, value in [
          ("--unit", "3"), ("--unit", "a:b"), ("--unit", "1:2:3"), ("--span", "5"),
          ("--span", "x:9"), ("--top-k", "0"), ("--window", "0"), ("--windows", "0"),
          ("--find-top", "0"), ("--format", "xml")]],
    ("explain span outside the text", ["explain", "model.npz", "--text", "the fox",
                                       "--top-k", "3", "--span", "5:9"], ERROR,
     ["the span 5:9 is outside the text, which has 7 characters"]),
    ("explain window longer than the text", ["explain", "model.npz", "--text", "the fox",
                                             "--gradient-flow"], ERROR,
     ["a gradient-flow window of 100 characters needs a text of at least 101",
      "a window of at most 6"]),
    ("explain html in a missing folder", ["explain", "model.npz", "corpus.txt", "--html",
                                          "nowhere/page.html"], ERROR,
     ["the folder nowhere does not exist"]),
    ("explain html onto a folder", ["explain", "model.npz", "corpus.txt", "--html", "folder"],
     ERROR, ["folder is a folder"]),
    ("explain html unwritable", ["explain", "model.npz", "corpus.txt", "--html", "p.html"],
     ERROR, ["cannot write p.html: permission denied"], refuse_access()),
    ("explain a text too long for memory", ["explain", "model.npz", "corpus.txt", "--find"],
     ERROR, ["explaining 4,0", "of memory"], small_memory(400_000)),
    ("explain a text too long for a page", ["explain", "model.npz", "corpus.txt", "--html",
                                            "p.html"], ERROR, ["explain at most"],
     lambda monkeypatch: monkeypatch.setattr("charrnn.explain.html.PAGE_CODES", 10_000)),
    # ----- info
    ("info unknown run", ["info", "nope"], ERROR, ["no run named 'nope'"]),
    ("info missing checkpoint file", ["info", "nope.npz"], ERROR, ["no run named 'nope.npz'"]),
    ("info a directory that is not a run", ["info", "folder"], ERROR, ["is not a run"]),
    ("info without runs", ["info", "--out-dir", "no-runs"], ERROR, ["no runs"]),
    *bad_checkpoint_cases("info", lambda path: ["info", path]),
    ("info bad format", ["info", "model.npz", "--format", "xml"], USAGE, ["--format"]),
    # ----- logs
    ("logs unknown run", ["logs", "nope"], ERROR, ["no run named 'nope'"]),
    ("logs near miss", ["logs", "rr"], ERROR, ["no run named 'rr'", "did you mean: r"]),
    ("logs a directory that is not a run", ["logs", "folder"], ERROR, ["is not a run"]),
    ("logs unreadable log", ["logs", "r"], ERROR, ["cannot read", "Permission denied"],
     deny({"log.jsonl"})),
    ("logs out-dir is a file", ["logs", "--out-dir", "corpus.txt"], USAGE, ["--out-dir"]),
    ("logs tiny chart", ["logs", "r", "--height", "1"], USAGE, ["--height"]),
    ("logs bad format", ["logs", "--format", "xml"], USAGE, ["--format"]),
    ("logs bad axis", ["logs", "r", "--x", "epoch"], USAGE, ["--x"]),
    ("logs follow as json", ["logs", "r", "--follow", "--format", "json"], USAGE,
     ["--follow works only with --format table"]),
    ("logs plot without a run", ["logs", "--plot", "a.png"], USAGE, ["--plot needs a RUN"]),
    # ----- export
    ("export unknown run", ["export", "nope", "--format", "web", "-o", "p.html"], ERROR,
     ["no run named 'nope'"]),
    *bad_checkpoint_cases("export", lambda path: ["export", path, "--format", "web", "-o",
                                                  "p.html"]),
    ("export into a missing folder", ["export", "model.npz", "--format", "web", "-o",
                                      "nowhere/p.html"], ERROR,
     ["the folder nowhere does not exist"]),
    ("export onto a folder", ["export", "model.npz", "--format", "onnx", "-o", "folder"], ERROR,
     ["folder is a folder"]),
    ("export web-dir onto a file", ["export", "model.npz", "--format", "web-dir", "-o",
                                    "corpus.txt"], ERROR, ["corpus.txt exists and is not a folder"]),
    ("export bad format", ["export", "model.npz", "--format", "tflite", "-o", "m"], USAGE,
     ["--format"]),
    ("export without -o", ["export", "model.npz", "--format", "web"], USAGE, ["'-o'"]),
    ("export half onnx", ["export", "model.npz", "--format", "onnx", "-o", "m.onnx", "--half"],
     USAGE, ["--half applies to --format web and web-dir"]),
    # ----- serve (on a busy port: a case that wrongly loads its models fails to listen,
    # rather than serving forever)
    ("serve unknown run", [*SERVE, "nope"], ERROR, ["no run named 'nope'"]),
    ("serve a directory that is not a run", [*SERVE, "folder"], ERROR, ["is not a run"]),
    ("serve without runs", [*SERVE, "--out-dir", "no-runs"], ERROR,
     ["no runs with a checkpoint"]),
    ("serve two models of one name", [*SERVE, "model.npz", "model.npz"], ERROR,
     ["two models would be called 'model'"]),
    *bad_checkpoint_cases("serve", lambda path: [*SERVE, path]),
    ("serve a port in use", [*SERVE, "model.npz"], ERROR, ["cannot listen on 127.0.0.1:"]),
    ("serve a host that is not one", [*SERVE, "model.npz", "--host", "999.1.1.1"], ERROR,
     ["cannot listen on 999.1.1.1:"]),
    ("serve port out of range", ["serve", "model.npz", "--port", "70000"], USAGE, ["--port"]),
    ("serve zero streams", [*SERVE, "model.npz", "--max-streams", "0"], USAGE,
     ["--max-streams"]),
]


@pytest.fixture(scope="module", autouse=True)
def _close_busy_port():
    yield
    _BUSY.close()


def tree(root):
    """Every path under root (directories included): nothing may appear or vanish."""
    return {p.relative_to(root) for p in root.rglob("*")}


def assert_refused(result, code, phrases):
    """The documented exit code, one clean `Error:` line last on stderr, nothing on stdout."""
    stderr = result.stderr
    assert result.exit_code == code, (result.exit_code, stderr, result.stdout)
    assert "Traceback" not in stderr and result.stdout == ""
    lines = stderr.rstrip("\n").split("\n")
    assert lines[-1].startswith("Error: ") and stderr.count("Error:") == 1, stderr
    if code == USAGE:  # click's format: usage, a hint, a blank line, the error
        assert lines[0].startswith("Usage: ") and lines[1].startswith("Try '"), stderr
    else:  # the error alone, or after the notice naming the checkpoint being used
        assert all(line.startswith("using ") for line in lines[:-1]), stderr
    for phrase in phrases:
        assert phrase in stderr, (phrase, stderr)


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in CASES])
def test_bad_input_is_one_clean_error_and_changes_nothing(case, template, tmp_path, monkeypatch):
    _, args, code, phrases, *setup = case
    work = tmp_path / "work"
    shutil.copytree(template, work)
    monkeypatch.chdir(work)
    before, paths = files_snapshot(tmp_path), tree(tmp_path)
    for prepare in setup:
        prepare(monkeypatch)
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "120", "NO_COLOR": "1"})
    monkeypatch.undo()  # reading is allowed again, for the snapshot
    assert_refused(result, code, phrases)
    assert tree(tmp_path) == paths, "a file or directory was created or removed"
    assert files_snapshot(tmp_path) == before, "a file that existed was changed"
    assert not Path("/tmp/abs").exists() and not (tmp_path / "escaped").exists()
    assert not list(template.rglob("pwned"))  # the pickle payload's marker path is absolute


def test_the_table_covers_every_command():
    commands = {args[0] for _, args, *_ in CASES}
    assert commands == set(cli.commands) == {"train", "sample", "eval", "info", "logs", "explain",
                                             "export", "serve"}
    assert {code for _, _, code, *_ in CASES} == {ERROR, USAGE}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_really_unreadable_corpus(tmp_path):
    corpus = make_corpus(tmp_path / "c.txt")
    corpus.chmod(0)
    try:
        result = CliRunner().invoke(cli, ["train", str(corpus), "--out-dir", str(tmp_path / "o")])
    finally:
        corpus.chmod(0o644)
    assert_refused(result, ERROR, ["c.txt cannot be read: permission denied"])
    assert not (tmp_path / "o").exists()
