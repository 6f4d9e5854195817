"""The engine seam: what the trainer asks of an engine, checked on the numpy engine."""

import numpy as np
import pytest

from charrnn.config import TrainConfig
from charrnn.data import BatchStream
from charrnn.engines import make_engine
from charrnn.errors import CharRNNError
from charrnn.model import CharRNN
from charrnn.optim import Adam, clip_grad_norm


def _setup(cell="lstm", dropout=0.0, N=4):
    cfg = TrainConfig(cell=cell, hidden_size=8, num_layers=2, dropout=dropout, batch_size=N,
                      seq_length=5, seed=1, threads=1)
    model = CharRNN(cfg.model_config(9), seed=cfg.seed)
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, 9, (N, 5)), rng.integers(0, 9, (N, 5))) for _ in range(3)]
    return cfg, model, batches


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_step_is_loss_grads_clipping_and_the_update(cell):
    cfg, model, batches = _setup(cell)
    reference = CharRNN(model.config, params={k: v.copy() for k, v in model.params.items()})
    engine = make_engine("numpy", model, cfg)
    opt, state = Adam(reference.params), reference.init_state(cfg.batch_size)
    for x, y in batches:
        loss, norm, bad = engine.step(x, y, 0.01)
        want, grads, state = reference.loss_and_grads(x, y, state)
        assert bad is None and loss == pytest.approx(want, rel=1e-6)
        assert norm == pytest.approx(clip_grad_norm(grads, cfg.grad_clip), rel=1e-6)
        opt.step(reference.params, grads, 0.01)
    exported, optim, carried = engine.export()
    for k in model.params:
        np.testing.assert_allclose(exported.params[k], reference.params[k], rtol=1e-5, atol=1e-7)
    assert optim["t"] == 3 and carried[0][0].shape == (8, cfg.batch_size)
    engine.close()


def test_snapshot_restore_and_export_load_round_trip():
    cfg, model, batches = _setup(dropout=0.3)
    engine = make_engine("numpy", model, cfg)
    engine.step(*batches[0], 0.01)
    snap = engine.snapshot()
    after = [engine.step(x, y, 0.01)[0] for x, y in batches[1:]]
    engine.restore(snap)
    assert [engine.step(x, y, 0.01)[0] for x, y in batches[1:]] == after  # dropout included
    _, optim, state = engine.export()
    other = make_engine("numpy", CharRNN(model.config, params={k: v.copy() for k, v in
                                                              model.params.items()}), cfg)
    other.load(optim, state)
    other.rng_state = engine.rng_state
    assert other.step(*batches[0], 0.01)[0] == engine.step(*batches[0], 0.01)[0]


def test_evaluate_carries_the_state_and_reset_clears_it():
    cfg, model, _ = _setup()
    engine = make_engine("numpy", model, cfg)
    stream = BatchStream(np.arange(200) % 9, 4, 5)
    by_hand, state = 0.0, model.init_state(4)
    for k in range(stream.steps_per_epoch):
        loss, state = model.loss(*stream.batch(k), state)
        by_hand += loss
    assert engine.evaluate(stream) == pytest.approx(by_hand / stream.steps_per_epoch, rel=1e-6)
    engine.step(*stream.batch(0), 0.01)
    engine.reset_state()
    assert all(not a.any() for layer in engine.export()[2] for a in layer)


def test_a_non_finite_step_changes_nothing():
    cfg, model, batches = _setup()
    engine = make_engine("numpy", model, cfg)
    before = {k: v.copy() for k, v in model.params.items()}
    model.params["head.b"][0] = np.inf
    _, _, bad = engine.step(*batches[0], 0.01)
    assert bad == "loss"
    assert all(np.array_equal(model.params[k], before[k]) for k in before if k != "head.b")


def test_unknown_engines_and_devices_are_one_line():
    cfg, model, _ = _setup()
    with pytest.raises(CharRNNError, match="unknown engine 'jax'; choose one of auto, numpy, torch"):
        make_engine("jax", model, cfg)
    with pytest.raises(CharRNNError, match="numpy engine runs on the CPU only"):
        make_engine("numpy", model, cfg, device="cuda")
