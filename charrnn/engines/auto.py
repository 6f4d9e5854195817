"""`--engine auto`: the engine that trains a model fastest here; and PyTorch's import, guarded.

auto is, in order: the numpy engine when PyTorch does not import (no measurement: the plain
install); the torch engine under torchrun and on a GPU; on a CPU, whichever engine trained
this model faster in a short measurement of both (`measure`: one warm-up step and a few timed
ones each, about half a second per engine; the median step). Which engine wins depends on
the CPU, its BLAS, PyTorch's kernels and the model (README, Performance), so it is measured,
not guessed. A measurement is remembered per machine, model shape, batch and thread count in
`cache_path()` ($XDG_CACHE_HOME/charrnn/engine-speed.json, else ~/.cache/...), written
atomically; a damaged or unreadable cache is ignored and rewritten. The same measurements give
the size rule (`sizing`) this machine's speed.

Library code: nothing here prints; a choice carries its reason and, when it had to fall back,
a note for the caller to show.
"""

import json
import math
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from charrnn.errors import CharRNNError

NO_TORCH = "--engine torch needs PyTorch: pip install 'charrnn[torch]'"
MEASURE_SECONDS = 0.5  # per engine, after its warm-up step (at least 1 timed step)
MEASURE_SEQ = 25  # at most this many characters per stream and step while measuring
_torch_failure = []  # the CharRNNError of a failed import, so that it is tried once


def load_torch():
    """The torch engine's module (`charrnn.engines.torch`), PyTorch imported. CharRNNError if
    PyTorch is not installed (NO_TORCH) or fails to import: a broken CUDA install raises
    RuntimeError, a missing shared library OSError, and either is named in one line."""
    if _torch_failure:
        raise _torch_failure[0]
    try:
        from charrnn.engines import torch as torch_engine
    except Exception as exc:  # noqa: BLE001 - whatever PyTorch's import raised, in one line
        if isinstance(exc, ModuleNotFoundError) and exc.name == "torch":
            error = CharRNNError(NO_TORCH)
        else:
            error = CharRNNError(f"PyTorch is installed but does not import: {_one_line(exc)}")
    else:
        return torch_engine
    _torch_failure.append(error)
    raise error


def _one_line(exc):
    """`Type: first line of the message`, for an exception from inside PyTorch."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def torch_status():
    """(torch engine module or None, the reason it is None: CharRNNError or None)."""
    try:
        return load_torch(), None
    except CharRNNError as exc:
        return None, exc


@dataclass(frozen=True)
class Choice:
    """What auto chose: `engine` ("numpy" or "torch"), `device` (a torch.device, or "cpu"),
    `why` (the start line's phrase), `speeds` {engine: characters/second} when measured,
    `seconds` the measurement took now (0.0 when remembered), `note` a line to show, if any."""

    engine: str
    device: object
    why: str
    speeds: dict | None = None
    seconds: float = 0.0
    note: str | None = None

    def to_json(self):
        return {"engine": self.engine, "why": self.why, "seconds": round(self.seconds, 2),
                **({"speeds": {k: round(v) for k, v in self.speeds.items()}}
                   if self.speeds else {})}


def decide(device="auto", distributed=False):
    """The choice that needs no measurement, or None when both engines must be measured (a
    CPU with PyTorch). Raises CharRNNError for a --device that is not here."""
    torch_engine, failure = torch_status()
    if torch_engine is None:
        if device not in ("auto", "cpu") or distributed:
            raise failure
        note = None if str(failure) == NO_TORCH else \
            f"note: {failure}; training with the numpy engine."
        return Choice("numpy", "cpu", "numpy: PyTorch is not installed" if note is None
                      else "numpy: PyTorch does not import here", note=note)
    dev = torch_engine.resolve_device(device)
    if distributed:
        return Choice("torch", dev, f"torch ({dev}): data parallel under torchrun")
    if dev.type != "cpu":
        return Choice("torch", dev, f"torch ({dev}): a GPU")
    return None


def choose(cfg, vocab_size, measure=None, cache=None):
    """Measure both engines on the CPU for the model and batch of TrainConfig `cfg` with
    `vocab_size` characters (or recall them) and choose the faster. `measure(engine, cfg,
    vocab_size)` -> characters/second (default `measure`); `cache` a `SpeedCache` (default:
    the one at `cache_path()`). The torch engine failing in the measurement falls back to
    numpy, with a note; a cell it has no form of (`layout`) is numpy, unmeasured."""
    if not _torch_has(cfg.cell):
        return Choice("numpy", "cpu", f"numpy: the torch engine has no {cfg.cell} cell")
    try:
        speeds, seconds = measured(cfg, vocab_size, ("numpy", "torch"), measure, cache)
    except TorchFailed as exc:
        return Choice("numpy", "cpu", "numpy: the torch engine failed here", seconds=exc.seconds,
                      note=f"note: the torch engine failed while measuring its speed "
                           f"({exc.cause}); training with the numpy engine.")
    fast, slow = sorted(speeds, key=speeds.get, reverse=True)
    ratio = speeds[fast] / speeds[slow]
    other = "the numpy engine" if slow == "numpy" else "the torch engine"
    where = " (cpu)" if fast == "torch" else ""
    return Choice(fast, "cpu", f"{fast}{where}: {ratio:.2g}× {other} for this model here",
                  speeds, seconds)


def _torch_has(cell):
    from charrnn.engines import layout

    return cell in layout.TORCH_GATES


class TorchFailed(Exception):
    """The torch engine raised while being measured."""

    def __init__(self, cause, seconds):
        super().__init__(cause)
        self.cause, self.seconds = cause, seconds


def reference_speed(cfg, vocab_size, engine, device="cpu", measure=None, cache=None):
    """(characters/second, what measured it): the speed of the size rule's reference preset
    (`sizing.REFERENCE`, with `cfg`'s cell, batch and threads, no dropout) with `engine` here
    ("auto": the faster of both, numpy alone if the torch engine fails), for `sizing.choose`."""
    from charrnn import sizing

    ref = sizing.PRESETS[sizing.REFERENCE]
    ref_cfg = replace(cfg, num_layers=ref.num_layers, hidden_size=ref.hidden_size, dropout=0.0)
    engines = (engine,) if engine != "auto" else \
        ("numpy", "torch") if _torch_has(cfg.cell) else ("numpy",)
    try:
        speeds, _ = measured(ref_cfg, vocab_size, engines, measure, cache, device)
    except TorchFailed as exc:
        if engine != "auto":
            raise CharRNNError(f"the torch engine failed: {exc.cause}") from None
        speeds, _ = measured(ref_cfg, vocab_size, ("numpy",), measure, cache)
    best = max(speeds, key=speeds.get)
    return speeds[best], f"{best} engine" + (f", {device}" if best == "torch" else "")


def measured(cfg, vocab_size, engines, measure=None, cache=None, device="cpu"):
    """({engine: characters/second}, seconds spent measuring now) for `engines` on `cfg`'s
    model and batch on `device`, from `cache` where it has them. Raises TorchFailed when the
    torch engine raised (anything but a CharRNNError, a KeyboardInterrupt or a MemoryError)."""
    measure = measure or globals()["measure"]
    cache = SpeedCache(cache_path()) if cache is None else cache
    speeds, start = {}, time.perf_counter()
    for name in engines:
        key = cache_key(name, cfg, vocab_size, device)
        speed = cache.get(key)
        if speed is None:
            try:
                speed = float(measure(name, cfg, vocab_size, device))
            except (CharRNNError, KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of PyTorch's
                if name != "torch":
                    raise
                raise TorchFailed(_one_line(exc), time.perf_counter() - start) from None
            cache.put(key, speed)
        speeds[name] = speed
    return speeds, time.perf_counter() - start


def measure(name, cfg, vocab_size, device="cpu", seconds=MEASURE_SECONDS):
    """Characters per second that engine `name` trains `cfg`'s model at here, on `device`: the
    median of the timed steps (at least one, more while under `seconds`, at most 8) after a
    warm-up step, on random ids, with the run's batch, dropout and threads and windows of at
    most MEASURE_SEQ characters (a step's cost grows with its length, a character's hardly:
    short windows keep a large model's steps within a second or two on an idle machine). A
    warm-up longer than `seconds` is the measurement: an engine that slow here loses anyway."""
    import numpy as np

    from charrnn.engines.numpy import NumpyEngine
    from charrnn.model import CharRNN

    cfg = replace(cfg, seq_length=min(cfg.seq_length, MEASURE_SEQ))
    model = CharRNN(cfg.model_config(vocab_size), seed=0, dtype=np.dtype(cfg.dtype))
    engine = NumpyEngine(model, cfg) if name == "numpy" else \
        load_torch().TorchEngine(model, cfg, device)
    try:
        rng = np.random.default_rng(0)
        x, y = (rng.integers(0, vocab_size, (cfg.batch_size, cfg.seq_length)) for _ in "xy")
        start = time.perf_counter()
        engine.step(x, y, 1e-3)  # the warm-up: first-call allocations, worker start-up
        warm_up = time.perf_counter() - start
        if warm_up > seconds:  # so slow here that the warm-up says enough
            return cfg.batch_size * cfg.seq_length / warm_up
        times, start = [], time.perf_counter()
        while not times or (time.perf_counter() - start < seconds and len(times) < 8):
            t = time.perf_counter()
            engine.step(x, y, 1e-3)
            times.append(time.perf_counter() - t)
        return cfg.batch_size * cfg.seq_length / statistics.median(times)
    finally:
        engine.close()


def cache_key(name, cfg, vocab_size, device="cpu"):
    """What a measured speed depends on: the machine (and GPU), the libraries, the model's
    shape, the batch and the threads."""
    import numpy as np

    versions = f"numpy {np.__version__}"
    if name == "torch":
        torch = load_torch().torch
        versions += f" torch {torch.__version__} on {device}"
        if str(device).startswith("cuda"):
            versions += f" ({torch.cuda.get_device_name(torch.device(device))})"
    shape = (f"{cfg.cell} {cfg.num_layers}x{cfg.hidden_size} V{vocab_size} {cfg.dtype} "
             f"N{cfg.batch_size} T{cfg.seq_length} dropout {cfg.dropout:g}")
    return f"{name} | {machine()} | {versions} | {shape} | threads {cfg.threads or 'auto'}"


def machine():
    """This machine, as far as speed goes: its CPU model, architecture and usable cores."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return f"{cpu} {platform.machine()} {cores} cores"


def cache_path():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "charrnn" / "engine-speed.json"


class SpeedCache:
    """Measured speeds by `cache_key`, in a JSON file: {"speeds": {key: characters/second}}.
    A file that does not parse, or holds something else, counts as empty; a cache that cannot
    be written is skipped (the measurement is then repeated next time)."""

    def __init__(self, path):
        self.path = Path(path)

    def _read(self):
        try:
            speeds = json.loads(self.path.read_text(encoding="utf-8"))["speeds"]
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
            return {}
        if not isinstance(speeds, dict):
            return {}
        return {k: float(v) for k, v in speeds.items()
                if isinstance(v, (int, float)) and math.isfinite(v) and v > 0}

    def get(self, key):
        return self._read().get(key)

    def put(self, key, speed):
        speeds = {**self._read(), key: speed}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".engine-speed.")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"speeds": speeds}, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError:
            try:
                os.unlink(tmp)
            except (OSError, UnboundLocalError):
                pass
