"""`--engine auto`'s choice (`charrnn.engines.auto`) with the measurement injected, its cache,
and PyTorch failing: not installed, raising on import, or out of memory, each one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from charrnn.config import TrainConfig
from charrnn.engines import auto
from charrnn.errors import CharRNNError

ROOT = Path(__file__).resolve().parent.parent
CFG = TrainConfig(hidden_size=8, num_layers=1, batch_size=4, seq_length=8, threads=1)


def _have_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


needs_torch = pytest.mark.skipif(not _have_torch(), reason="PyTorch is not installed")


class Measure:
    """A measurement with made-up speeds that counts its calls."""

    def __init__(self, **speeds):
        self.speeds, self.calls = speeds, []

    def __call__(self, name, cfg, vocab_size, device="cpu"):
        self.calls.append((name, cfg.hidden_size, vocab_size))
        speed = self.speeds[name]
        if isinstance(speed, Exception):
            raise speed
        return speed


@pytest.fixture
def cache(tmp_path):
    return auto.SpeedCache(tmp_path / "cache" / "engine-speed.json")


@needs_torch
@pytest.mark.parametrize("numpy_speed,torch_speed,engine,why", [
    (1000.0, 1400.0, "torch", "torch (cpu): 1.4× the numpy engine for this model here"),
    (2500.0, 1000.0, "numpy", "numpy: 2.5× the torch engine for this model here"),
])
def test_the_faster_engine_is_chosen_and_said(cache, numpy_speed, torch_speed, engine, why):
    measure = Measure(numpy=numpy_speed, torch=torch_speed)
    choice = auto.choose(CFG, 30, measure, cache)
    assert (choice.engine, choice.device, choice.why, choice.note) == (engine, "cpu", why, None)
    assert choice.speeds == {"numpy": numpy_speed, "torch": torch_speed}
    assert sorted(name for name, *_ in measure.calls) == ["numpy", "torch"]
    assert choice.to_json()["speeds"] == {"numpy": round(numpy_speed), "torch": round(torch_speed)}


@needs_torch
def test_a_measurement_is_remembered_per_shape(cache):
    first = Measure(numpy=1000.0, torch=2000.0)
    assert auto.choose(CFG, 30, first, cache).engine == "torch"
    again = Measure(numpy=9e9, torch=1.0)  # would choose numpy, if it were asked
    remembered = auto.choose(CFG, 30, again, cache)
    assert (remembered.engine, again.calls) == ("torch", [])
    assert remembered.speeds == {"numpy": 1000.0, "torch": 2000.0}
    # another shape, vocabulary or thread count is measured anew
    from dataclasses import replace

    for cfg, vocab in [(replace(CFG, hidden_size=16), 30), (CFG, 31), (replace(CFG, threads=2), 30)]:
        fresh = Measure(numpy=3.0, torch=1.0)
        assert auto.choose(cfg, vocab, fresh, cache).engine == "numpy"
        assert len(fresh.calls) == 2
    assert not [p for p in cache.path.parent.iterdir() if p.name != cache.path.name]  # no temporaries


@needs_torch
@pytest.mark.parametrize("damage", ["{not json", '{"speeds": [1, 2]}', '{"speeds": {"k": "fast"}}',
                                    "\xff\xfe", '{"speeds": {"k": -1}}'])
def test_a_damaged_cache_is_ignored_and_rewritten(cache, damage):
    cache.path.parent.mkdir(parents=True)
    cache.path.write_bytes(damage.encode("latin-1"))
    measure = Measure(numpy=1.0, torch=2.0)
    assert auto.choose(CFG, 30, measure, cache).engine == "torch"
    assert len(measure.calls) == 2
    written = json.loads(cache.path.read_text())["speeds"]
    assert sorted(written.values()) == [1.0, 2.0]


@needs_torch
def test_an_unwritable_cache_only_costs_a_new_measurement(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = auto.SpeedCache(blocker / "charrnn" / "engine-speed.json")  # under a file
    measure = Measure(numpy=1.0, torch=2.0)
    assert auto.choose(CFG, 30, measure, cache).engine == "torch"
    assert auto.choose(CFG, 30, measure, cache).engine == "torch"
    assert len(measure.calls) == 4


@needs_torch
def test_the_torch_engine_failing_in_the_measurement_falls_back_to_numpy(cache):
    measure = Measure(numpy=1000.0, torch=RuntimeError("oneDNN primitive creation failed\nmore"))
    choice = auto.choose(CFG, 30, measure, cache)
    assert (choice.engine, choice.device, choice.why) == \
        ("numpy", "cpu", "numpy: the torch engine failed here")
    assert choice.note == ("note: the torch engine failed while measuring its speed "
                           "(RuntimeError: oneDNN primitive creation failed); training with "
                           "the numpy engine.")
    assert "\n" not in choice.note
    # a user's error (CharRNNError) or an interrupt is not a failure to fall back from
    with pytest.raises(CharRNNError):
        auto.choose(CFG, 30, Measure(numpy=1.0, torch=CharRNNError("no such cell")), cache)


def test_a_cell_without_a_torch_form_is_numpy_unmeasured(cache):
    from dataclasses import replace

    import helpers.toy_cell  # noqa: F401 - registers the "mgu" cell

    measure = Measure(numpy=1.0, torch=9.0)
    choice = auto.choose(replace(CFG, cell="mgu"), 30, measure, cache)
    assert (choice.engine, choice.why, measure.calls) == \
        ("numpy", "numpy: the torch engine has no mgu cell", [])


@needs_torch
def test_the_cpu_is_measured_and_torchrun_means_torch():
    assert auto.decide("cpu") is None  # both engines to measure
    choice = auto.decide("cpu", distributed=True)
    assert (choice.engine, str(choice.device)) == ("torch", "cpu")
    with pytest.raises(CharRNNError, match="--device cuda:7"):
        auto.decide("cuda:7")


@needs_torch
def test_the_real_measurement_is_short_and_positive(cache):
    speeds, seconds = auto.measured(CFG, 30, ("numpy", "torch"), cache=cache)
    assert set(speeds) == {"numpy", "torch"} and all(v > 0 for v in speeds.values())
    assert auto.measured(CFG, 30, ("numpy", "torch"), cache=cache)[0] == speeds  # remembered


# ---- PyTorch that is not there, or breaks on import: in a subprocess

BLOCK = """
import sys
class Broken:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise {error}
sys.meta_path.insert(0, Broken())
"""


def _run(code, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1", PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120, env=env)


def _corpus(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("abc def ghi\n" * 300, encoding="utf-8")
    return path


CLI = "\nfrom charrnn.__main__ import main\nsys.argv = ['charrnn', *sys.argv[1:]]\nmain()"
ERRORS = {
    "not installed": ("ModuleNotFoundError(\"No module named 'torch'\", name='torch')",
                      auto.NO_TORCH),
    "broken CUDA": ('RuntimeError("CUDA driver initialization failed\\nmore detail")',
                    "PyTorch is installed but does not import: RuntimeError: CUDA driver "
                    "initialization failed"),
    "missing library": ('OSError("libcudart.so.12: cannot open shared object file")',
                        "PyTorch is installed but does not import: OSError: libcudart.so.12: "
                        "cannot open shared object file"),
    "broken dependency": ("ModuleNotFoundError(\"No module named 'sympy'\", name='sympy')",
                          "PyTorch is installed but does not import: ModuleNotFoundError: No "
                          "module named 'sympy'"),
}


@pytest.mark.parametrize("kind", list(ERRORS))
def test_an_import_of_torch_that_raises_is_one_line(tmp_path, kind):
    error, message = ERRORS[kind]
    corpus = _corpus(tmp_path)
    done = _run(BLOCK.format(error=error) + CLI, "train", str(corpus), "--engine", "torch",
                "--max-steps", "1", "--out-dir", str(tmp_path / "runs"))
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"Error: {message}\n")
    assert not (tmp_path / "runs").exists()
    # the library says the same, and auto falls back to numpy without measuring anything
    probe = BLOCK.format(error=error) + """
from charrnn.engines import auto
from charrnn.errors import CharRNNError
try:
    auto.load_torch()
except CharRNNError as exc:
    print(exc)
auto.measure = None  # a measurement would fail
choice = auto.decide("auto")
print(choice.engine, "|", choice.why, "|", choice.note)
"""
    lines = _run(probe).stdout.splitlines()
    assert lines[0] == message
    engine, why, note = lines[1].split(" | ")
    assert engine == "numpy"
    if kind == "not installed":
        assert (why, note) == ("numpy: PyTorch is not installed", "None")
    else:
        assert why == "numpy: PyTorch does not import here"
        assert note == f"note: {message}; training with the numpy engine."


# ---- PyTorch out of memory


@needs_torch
def test_torch_out_of_memory_is_a_memory_error(monkeypatch):
    import numpy as np
    import torch

    from charrnn.engines import make_engine
    from charrnn.engines import torch_optim
    from charrnn.model import CharRNN

    engine = make_engine("torch", CharRNN(CFG.model_config(10), seed=0), CFG, "cpu")
    with pytest.raises(RuntimeError, match="allocate"):  # what torch itself raises
        torch.empty(2**60, dtype=torch.uint8)
    monkeypatch.setattr(torch_optim.TorchOptimizer, "snapshot",
                        lambda self: torch.empty(2**60, dtype=torch.uint8))
    with pytest.raises(MemoryError, match="PyTorch could not allocate memory"):
        engine.snapshot()
    x = np.zeros((4, 8), dtype=np.int64)
    monkeypatch.setattr(torch_optim.TorchOptimizer, "finite",
                        lambda self: torch.empty(2**60, dtype=torch.uint8))
    with pytest.raises(MemoryError):
        engine.step(x, x, 0.01)
    monkeypatch.setattr(torch_optim.TorchOptimizer, "finite", lambda self: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # other errors stay what they are
        engine.step(x, x, 0.01)


@needs_torch
def test_torch_out_of_memory_in_training_is_one_line(tmp_path, monkeypatch):
    import torch
    from click.testing import CliRunner

    from charrnn.cli import cli
    from charrnn.engines import torch_optim

    monkeypatch.setattr(torch_optim.TorchOptimizer, "snapshot",
                        lambda self: torch.empty(2**60, dtype=torch.uint8))
    result = CliRunner().invoke(cli, ["train", str(_corpus(tmp_path)), "--engine", "torch",
                                      "--device", "cpu", "--hidden-size", "8", "--max-steps", "3",
                                      "--batch-size", "4", "--seq-length", "8",
                                      "--out-dir", str(tmp_path / "runs")])
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: training ran out of memory at step 0")
    assert "Traceback" not in result.stderr and "RuntimeError" not in result.stderr


@needs_torch
def test_the_size_rule_reads_the_faster_engines_reference_speed(cache):
    from charrnn import sizing

    measure = Measure(numpy=20_000.0, torch=30_000.0)
    speed, label = auto.reference_speed(CFG, 30, "auto", measure=measure, cache=cache)
    assert (speed, label) == (30_000.0, "torch engine, cpu")
    ref = sizing.PRESETS[sizing.REFERENCE]
    assert {(h, v) for _, h, v in measure.calls} == {(ref.hidden_size, 30)}
    assert auto.reference_speed(CFG, 30, "numpy", measure=measure, cache=cache) == \
        (20_000.0, "numpy engine")
    broken = Measure(numpy=20_000.0, torch=RuntimeError("boom"))
    fresh = auto.SpeedCache(cache.path.with_name("other.json"))
    assert auto.reference_speed(CFG, 30, "auto", measure=broken, cache=fresh) == \
        (20_000.0, "numpy engine")
    with pytest.raises(CharRNNError, match="the torch engine failed: RuntimeError: boom"):
        auto.reference_speed(CFG, 30, "torch", measure=broken, cache=fresh)


# ---- through the command line

SHAPE = ["--hidden-size", "8", "--num-layers", "1", "--dropout", "0", "--batch-size", "4",
         "--seq-length", "8", "--max-steps", "2", "--threads", "1"]


def _start_event(run):
    return next(json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()
                if '"start"' in line)


@needs_torch
@pytest.mark.parametrize("numpy_speed,torch_speed,engine", [(1.0, 3.0, "torch"),
                                                            (3.0, 1.0, "numpy")])
def test_train_uses_and_records_the_measured_choice(tmp_path, monkeypatch, numpy_speed,
                                                    torch_speed, engine):
    from click.testing import CliRunner

    from charrnn.cli import cli

    measure = Measure(numpy=numpy_speed, torch=torch_speed)
    monkeypatch.setattr(auto, "measure", measure)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = CliRunner().invoke(cli, ["train", str(_corpus(tmp_path)), *SHAPE,
                                      "--out-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    other = "the numpy engine" if engine == "torch" else "the torch engine"
    why = f"{engine}{' (cpu)' if engine == 'torch' else ''}: 3× {other} for this model here"
    assert f"engine  {why}\n" in result.stderr
    start = _start_event(tmp_path / "runs" / "c")
    assert (start["engine"], start["device"]) == (engine, "cpu")
    assert start["engine_choice"]["engine"] == engine and start["engine_choice"]["why"] == why
    assert sorted(name for name, *_ in measure.calls) == ["numpy", "torch"]
    assert {h for _, h, _ in measure.calls} == {8}  # the run's own shape


@needs_torch
def test_train_falls_back_to_numpy_when_torch_fails_in_the_measurement(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from charrnn.cli import cli

    monkeypatch.setattr(auto, "measure", Measure(numpy=1.0, torch=RuntimeError("bad kernel")))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = CliRunner().invoke(cli, ["train", str(_corpus(tmp_path)), *SHAPE,
                                      "--out-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: the torch")]
    assert notes == ["note: the torch engine failed while measuring its speed (RuntimeError: "
                     "bad kernel); training with the numpy engine."]
    assert "engine  numpy: the torch engine failed here" in result.stderr
    assert _start_event(tmp_path / "runs" / "c")["engine"] == "numpy"


def test_train_without_pytorch_is_numpy_and_measures_nothing(tmp_path):
    code = BLOCK.format(error="ModuleNotFoundError(\"No module named 'torch'\", name='torch')") \
        + "from charrnn.engines import auto\nauto.measure = None  # would fail if called\n" + CLI
    (tmp_path / "runs").mkdir()  # a runs directory train creates has a note of its own
    done = _run(code, "train", str(_corpus(tmp_path)), *SHAPE, "--out-dir",
                str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr
    assert "engine  numpy: PyTorch is not installed\n" in done.stderr
    assert "note:" not in done.stderr
    start = _start_event(tmp_path / "runs" / "c")
    assert start["engine"] == "numpy"
    assert start["engine_choice"] == {"engine": "numpy", "why": "numpy: PyTorch is not installed",
                                      "seconds": 0.0}


def test_a_time_budget_is_sized_at_the_measured_speed(tmp_path, monkeypatch):
    from charrnn.planning import apply_size_rule as _sized

    measure = Measure(numpy=6.0e5, torch=RuntimeError("no"))
    monkeypatch.setattr(auto, "measure", measure)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cfg, choice = _sized(TrainConfig(time_limit=60), {"time_limit": 60}, 250_000, None,
                         "numpy", 26, "cpu")
    # a minute at 600 k characters/s reads 20 M characters at 2×512: the large size
    assert (choice.size, cfg.num_layers, cfg.hidden_size) == ("large", 2, 512)
    assert "at 600 k chars/s (2×256, numpy engine)" in choice.why
    assert measure.calls == [("numpy", 256, 26)]  # the reference size, with the run's engine
    # a step budget needs no speed: nothing measured
    _sized(TrainConfig(max_steps=10), {"max_steps": 10}, 250_000, None, "numpy", 26, "cpu")
    assert len(measure.calls) == 1
