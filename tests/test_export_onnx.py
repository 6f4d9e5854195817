"""`charrnn export --format onnx` run by onnxruntime: for each cell and 1-3 layers the graph's
logits and next state are the numpy model's over 100 steps of 3 streams; greedy generation
from it is `charrnn sample --temp 0`; its metadata carries the vocabulary and the config;
float64 and torch-trained checkpoints export too; without the onnx package, one line says
what to install."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from charrnn import checkpoint
from charrnn.data import Vocab
from charrnn.export import onnx as onnx_export
from charrnn.model import CharRNN, ModelConfig
from charrnn.stepper import Stepper
from helpers.export_helpers import CELLS, PRIME, cli_run, export, listing, load, sample, train_run

onnx = pytest.importorskip("onnx", reason="onnx is not installed: pip install '.[test]'")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install '.[test]'")

VOCAB = Vocab("abcdefghijklmnopqrs\n")


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def stepper_state(stepper):
    """The Stepper's state as the graph lays it out: [L, S, N, H]."""
    return np.array([[a.T for a in layer] for layer in stepper.state], dtype=np.float32)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_the_graph_steps_like_the_numpy_model(tmp_path, cell, layers):
    model = CharRNN(ModelConfig(cell, VOCAB.size, 12, layers), seed=layers)
    path = tmp_path / "m.npz"
    checkpoint.save(path, checkpoint.Checkpoint(model=model, vocab=VOCAB))
    proto = onnx.load(str(export(path, "onnx", tmp_path / "m.onnx")))
    onnx.checker.check_model(proto, full_check=True)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", onnx_export.OPSET)]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["charrnn.vocab"]) == list(VOCAB.chars)
    assert json.loads(meta["charrnn.config"]) == model.config.to_json()
    assert meta["charrnn.opset"] == str(onnx_export.OPSET)
    S = len(model.cell.states)
    sess = session(tmp_path / "m.onnx")
    assert [(i.name, i.type) for i in sess.get_inputs()] == [("ids", "tensor(int64)"),
                                                             ("state", "tensor(float)")]
    assert [o.name for o in sess.get_outputs()] == ["logits", "next_state"]
    N, rng = 3, np.random.default_rng(0)
    stepper = Stepper(model, N)
    state = np.zeros((layers, S, N, 12), np.float32)
    for _ in range(100):
        ids = rng.integers(0, VOCAB.size, N)
        logits, state = sess.run(None, {"ids": ids, "state": state})
        assert logits.shape == (N, VOCAB.size) and state.shape == (layers, S, N, 12)
        np.testing.assert_allclose(logits, stepper.step(ids), rtol=0, atol=1e-5)
        np.testing.assert_allclose(state, stepper_state(stepper), rtol=0, atol=1e-5)


def greedy(sess, meta, prime, n):
    """Greedy text of the graph: the context, then the prime, then argmax (never U+FFFD)."""
    vocab = json.loads(meta["charrnn.vocab"])
    ids = {c: i for i, c in enumerate(vocab)}
    banned = json.loads(meta["charrnn.banned"])
    feed = [ids[c] for c in meta["charrnn.context"] + prime] or [int(meta["charrnn.start"])]
    cfg = json.loads(meta["charrnn.config"])
    state = np.zeros((cfg["num_layers"], len(json.loads(meta["charrnn.states"])), 1,
                      cfg["hidden_size"]), np.float32)
    out = []
    for step in range(len(feed) + n - 1):
        i = feed[step] if step < len(feed) else out[-1]
        logits, state = sess.run(None, {"ids": np.array([i]), "state": state})
        if step >= len(feed) - 1:
            if banned is not None:
                logits[0, banned] = -np.inf
            out.append(int(logits[0].argmax()))
    return "".join(vocab[i] for i in out)


@pytest.mark.parametrize("cell", CELLS)
def test_greedy_generation_equals_charrnn_sample(tmp_path, cell):
    run = train_run(tmp_path, cell, cell)
    proto = onnx.load(str(export(run, "onnx", tmp_path / "m.onnx")))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["charrnn.best_val_loss"]) == load(run).training.best_val_loss
    assert PRIME + greedy(session(tmp_path / "m.onnx"), meta, PRIME, 300) + "\n" == sample(run)


@pytest.mark.parametrize("kind", ["float64", "torch"])
def test_float64_and_torch_trained_checkpoints(tmp_path, kind):
    if kind == "torch":
        pytest.importorskip("torch")
    extra = ["--dtype", "float64"] if kind == "float64" else ["--engine", "torch"]
    run = train_run(tmp_path, kind, "gru", *extra)
    export(run, "onnx", tmp_path / "m.onnx")
    ckpt = load(run)
    sess = session(tmp_path / "m.onnx")
    stepper = Stepper(ckpt.model, 1)
    state = np.zeros((2, 1, 1, 16), np.float32)
    for i in ckpt.vocab.encode(PRIME * 3).astype(np.int64):
        logits, state = sess.run(None, {"ids": np.array([i]), "state": state})
        np.testing.assert_allclose(logits, stepper.step(np.array([i])), rtol=0, atol=1e-5)
    proto = onnx.load(str(tmp_path / "m.onnx"))
    kinds = {t.data_type for t in proto.graph.initializer}
    assert kinds == {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}  # float32 weights


def test_without_the_onnx_package_one_line_names_the_install(tmp_path, monkeypatch):
    model = CharRNN(ModelConfig("rnn", VOCAB.size, 8, 1), seed=0)
    path = tmp_path / "m.npz"
    checkpoint.save(path, checkpoint.Checkpoint(model=model, vocab=VOCAB))
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    result = cli_run("export", path, "--format", "onnx", "-o", tmp_path / "m.onnx")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == \
        "Error: --format onnx needs the onnx package: pip install onnx"
    assert listing(tmp_path) == ["m.npz"]
    result = cli_run("export", path, "--format", "onnx", "-o", tmp_path / "m.onnx", "--half")
    assert result.exit_code == 2 and "--half applies to --format web" in result.stderr


def test_the_readmes_onnxruntime_loop_runs(tmp_path):
    """The Python block of the README's ONNX section, run as shown next to a shakespeare.onnx
    (a tiny model of a text that has the characters of its prime)."""
    import re
    import subprocess

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")
    section = re.search(r"^### ONNX\n(.*?)(?=^##)", readme, re.S | re.M).group(1)
    code = re.search(r"^```python\n(.*?)^```", section, re.S | re.M).group(1)
    corpus = tmp_path / "c.txt"
    corpus.write_text("ROMEO: the quick brown fox.\nJULIET: a lazy dog.\n" * 40, "utf-8")
    result = cli_run("train", corpus, "--hidden-size", 16, "--num-layers", 2, "--max-steps", 20,
                     "--batch-size", 4, "--seq-length", 16, "--out-dir", tmp_path, "--name",
                     "shakespeare", "-q", "--dropout", 0, "--warmup-steps", 0)
    assert result.exit_code == 0, result.stderr
    export(tmp_path / "shakespeare", "onnx", tmp_path / "shakespeare.onnx")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    text = done.stdout.rstrip("\n")
    assert text.startswith("ROMEO:") and len(text) == 206
    assert set(text) <= set(corpus.read_text("utf-8"))


def test_the_onnx_builders_are_the_exporters_registry():
    from charrnn.export import REGISTRY

    assert {cell: f.__name__ for cell, f in onnx_export.LAYERS.items()} == REGISTRY["onnx"]
