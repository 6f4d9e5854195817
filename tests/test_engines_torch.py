"""The torch engine against the numpy engine: same model, loss, clipping, optimizers, dropout
masks and carried state, so a few steps from the same start agree to float64 rounding."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from charrnn.config import TrainConfig  # noqa: E402
from charrnn.data import BatchStream  # noqa: E402
from charrnn.engines import make_engine  # noqa: E402
from charrnn.errors import CharRNNError  # noqa: E402
from charrnn.model import CharRNN  # noqa: E402

TOL = 1e-10


def _pair(cell, optimizer="adam", dropout=0.0, layers=2, clip=0.1, weight_decay=0.0):
    """A numpy engine (one thread) and a torch engine (CPU, float64) from the same weights."""
    cfg = TrainConfig(cell=cell, hidden_size=6, num_layers=layers, dropout=dropout,
                      batch_size=4, seq_length=5, seed=3, threads=1, optimizer=optimizer,
                      dtype="float64", grad_clip=clip, weight_decay=weight_decay)
    a = CharRNN(cfg.model_config(7), seed=1, dtype=np.float64)
    b = CharRNN(a.config, params={k: v.copy() for k, v in a.params.items()}, dtype=np.float64)
    return cfg, make_engine("numpy", a, cfg), make_engine("torch", b, cfg, "cpu")


def _batches(n=3, N=4):
    rng = np.random.default_rng(0)
    return [(rng.integers(0, 7, (N, 5)), rng.integers(0, 7, (N, 5))) for _ in range(n)]


def _max_diff(one, other):
    (ma, oa, sa), (mb, ob, sb) = one.export(), other.export()
    dp = max(np.abs(ma.params[k] - mb.params[k]).max() for k in ma.params)
    assert oa.keys() == ob.keys()
    do = max(np.abs(oa[k] - ob[k]).max() for k in oa)
    ds = max(np.abs(x - y).max() for la, lb in zip(sa, sb) for x, y in zip(la, lb))
    return dp, do, ds


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "adagrad", "sgd"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_steps_agree_with_the_numpy_engine(cell, optimizer):
    cfg, ours, theirs = _pair(cell, optimizer)
    norms = []
    for x, y in _batches():
        la, na, bad_a = ours.step(x, y, 0.01)
        lb, nb, bad_b = theirs.step(x, y, 0.01)
        assert bad_a is bad_b is None
        assert abs(la - lb) < TOL and abs(na - nb) < TOL
        norms.append(na)
    assert max(norms) > cfg.grad_clip  # clipping was exercised
    assert max(_max_diff(ours, theirs)) < TOL
    assert theirs.optimizer_info() == ours.optimizer_info()


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_weight_decay_agrees_with_the_numpy_engine(cell, optimizer):
    # the same weight matrices decay in both layouts; GRU's two biases and LSTM's fixed zero do not
    _, ours, theirs = _pair(cell, optimizer, weight_decay=0.5)
    _, undecayed, _ = _pair(cell, optimizer)
    for x, y in _batches():
        for engine in (ours, theirs, undecayed):
            engine.step(x, y, 0.01)
    assert max(_max_diff(ours, theirs)) < TOL
    assert _max_diff(ours, undecayed)[0] > 1e-4
    assert theirs.optimizer_info() == ours.optimizer_info()
    assert ours.optimizer_info()["weight_decay"] == 0.5


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_dropout_masks_are_the_numpy_engines_own(cell):
    _, ours, theirs = _pair(cell, dropout=0.3, layers=3)
    for x, y in _batches():
        assert abs(ours.step(x, y, 0.01)[0] - theirs.step(x, y, 0.01)[0]) < TOL
    assert max(_max_diff(ours, theirs)) < TOL
    assert ours.rng_state == theirs.rng_state


def test_evaluate_reset_snapshot_restore_and_a_resume_across_engines():
    _, ours, theirs = _pair("lstm", dropout=0.2)
    stream = BatchStream(np.arange(300) % 7, 4, 5)
    batches = _batches(4)
    for x, y in batches[:2]:
        ours.step(x, y, 0.01)
        theirs.step(x, y, 0.01)
    assert abs(ours.evaluate(stream) - theirs.evaluate(stream)) < TOL
    snap = theirs.snapshot()
    after = [theirs.step(x, y, 0.01)[0] for x, y in batches[2:]]
    theirs.restore(snap)
    assert [theirs.step(x, y, 0.01)[0] for x, y in batches[2:]] == after
    # the numpy engine's export, loaded into a fresh torch engine, goes on like the numpy one
    model, optim, state = ours.export()
    cfg = _pair("lstm", dropout=0.2)[0]
    fresh = make_engine("torch", CharRNN(model.config, params={k: v.copy() for k, v in
                                                              model.params.items()},
                                         dtype=np.float64), cfg, "cpu")
    fresh.load(optim, state)
    fresh.rng_state = ours.rng_state
    for x, y in batches[2:]:
        assert abs(fresh.step(x, y, 0.01)[0] - ours.step(x, y, 0.01)[0]) < TOL
    assert max(_max_diff(ours, fresh)) < TOL
    fresh.reset_state()
    assert all(not a.any() for layer in fresh.export()[2] for a in layer)


def test_a_non_finite_step_is_reported_and_rolled_back():
    _, _, theirs = _pair("gru")
    snap = theirs.snapshot()
    with torch.no_grad():
        theirs.params["head.b"][0] = float("inf")
    assert theirs.step(*_batches(1)[0], 0.01)[2] == "loss"
    theirs.restore(snap)
    assert theirs.step(*_batches(1)[0], 0.01)[2] is None


def test_a_resume_with_a_damaged_optimizer_state_is_one_line():
    _, ours, theirs = _pair("rnn")
    _, optim, state = ours.export()
    del optim["m.head.W"]
    with pytest.raises(CharRNNError, match="cannot resume: the optimizer state does not fit"):
        theirs.load(optim, state)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_devices_that_are_not_here_are_one_line_errors():
    from charrnn.engines.torch import resolve_device

    with pytest.raises(CharRNNError, match=r"^--device cuda: this PyTorch .* sees no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(CharRNNError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    assert resolve_device("cpu").type == "cpu"
