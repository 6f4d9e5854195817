"""CharRNN: whole-model gradient checks, step-vs-sequence equality, initial loss, overfitting."""

import numpy as np
import pytest

from helpers import oracle
from charrnn import layers
from charrnn.model import CharRNN, ModelConfig, param_shapes
from charrnn.engines.parallel import Parallel
from charrnn.stepper import Stepper
from helpers.gradcheck import numerical_grad, rel_error

CELLS = ["lstm", "gru", "rnn"]


def _model(cell, num_layers, dropout=0.0, dtype=np.float64, V=6, H=5):
    """A tiny model at a generic point: parameters ~ N(0, 0.6^2), so that gradients reaching
    layer 0 are not so small that finite-difference round-off dominates them."""
    cfg = ModelConfig(cell=cell, vocab_size=V, hidden_size=H, num_layers=num_layers, dropout=dropout)
    model = CharRNN(cfg, seed=1, dtype=dtype)
    rng = np.random.default_rng(11)
    for p in model.params.values():
        p[...] = rng.standard_normal(p.shape) * 0.6
    return model


def _random_state(model, N, rng):
    return tuple(tuple(rng.standard_normal(a.shape) * 0.5 for a in layer) for layer in model.init_state(N))


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_loss_and_grads_match_finite_differences(cell, num_layers, dropout):
    model = _model(cell, num_layers, dropout)
    rng = np.random.default_rng(7)
    N, T = 2, 3
    x = rng.integers(0, 6, size=(N, T))
    y = rng.integers(0, 6, size=(N, T))
    state = _random_state(model, N, rng)  # a non-zero carried state
    loss, grads, _ = model.loss_and_grads(x, y, state, rng=np.random.default_rng(3))
    assert set(grads) == set(model.params)

    def run():  # the same dropout masks every time: a fresh rng with the same seed
        return model.loss_and_grads(x, y, state, rng=np.random.default_rng(3))[0]

    for name, p in model.params.items():
        assert grads[name].shape == p.shape
        err = rel_error(grads[name], numerical_grad(run, p))
        assert err < 1e-6, f"{cell} x{num_layers} dropout={dropout} {name}: {err:.2e}"


def test_dropout_changes_loss_only_with_rng():
    model = _model("lstm", 2, dropout=0.5)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, size=(2, 4))
    state = model.init_state(2)
    plain, _ = model.loss(x, x, state)
    assert model.loss_and_grads(x, x, state)[0] == pytest.approx(plain, abs=0)
    assert model.loss_and_grads(x, x, state, rng=np.random.default_rng(1))[0] != plain


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_one_step_at_a_time_equals_the_sequence(cell, num_layers):
    """Feeding characters one at a time (the oracle the sampler is tested against) gives the
    sequence forward's numbers."""
    model = _model(cell, num_layers, V=7, H=6)
    rng = np.random.default_rng(2)
    N, T = 3, 5
    x = rng.integers(0, 7, size=(N, T))
    state0 = _random_state(model, N, rng)
    ws = [layers.Workspace() for _ in range(num_layers)]
    _, (_, head_cache), seq_state = model._forward(x, x, state0, None, ws)
    seq_probs = head_cache[2].reshape(7, T, N)  # softmax of the sequence's logits, (V, T, N)
    state = state0
    for t in range(T):
        logits, state = oracle.step(model, x[:, t], state)
        assert logits.shape == (N, 7)
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        np.testing.assert_allclose(probs, seq_probs[:, t].T, rtol=0, atol=1e-12)
    for seq_layer, step_layer in zip(seq_state, state):
        for a, b in zip(seq_layer, step_layer):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_initial_loss_is_about_log_vocab(cell):
    V = 50
    model = CharRNN(ModelConfig(cell=cell, vocab_size=V, hidden_size=32, num_layers=2), seed=0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, V, size=(4, 20))
    loss, _ = model.loss(x, rng.integers(0, V, size=(4, 20)), model.init_state(4))
    assert abs(loss - np.log(V)) < 0.1


@pytest.mark.parametrize("cell", CELLS)
def test_two_layer_model_overfits_a_repeated_string(cell):
    from charrnn.optim import Adam, clip_grad_norm

    text = "hello world, "
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text * 20])
    model = CharRNN(
        ModelConfig(cell=cell, vocab_size=len(chars), hidden_size=32, num_layers=2), seed=0
    )
    opt = Adam(model.params)
    N, T = 4, 25
    x = np.stack([ids[n * 50 : n * 50 + T] for n in range(N)])
    y = np.stack([ids[n * 50 + 1 : n * 50 + T + 1] for n in range(N)])
    for _ in range(300):
        loss, grads, _ = model.loss_and_grads(x, y, model.init_state(N))
        clip_grad_norm(grads, 5.0)
        opt.step(model.params, grads, 1e-2)
    loss, _ = model.loss(x, y, model.init_state(N))
    assert loss < 0.05


@pytest.mark.parametrize("cell", CELLS)
def test_float32_model_stays_float32(cell):
    model = _model(cell, 2, dropout=0.2, dtype=np.float32)
    x = np.random.default_rng(0).integers(0, 6, size=(2, 3))
    loss, grads, state = model.loss_and_grads(x, x, model.init_state(2), rng=np.random.default_rng(0))
    assert all(g.dtype == np.float32 for g in grads.values())
    assert all(a.dtype == np.float32 for layer in state for a in layer)
    assert Stepper(model, 2).step(x[:, 0]).dtype == np.float32


def test_param_shapes():
    cfg = ModelConfig(cell="gru", vocab_size=10, hidden_size=8, num_layers=2)
    shapes = param_shapes(cfg)
    assert shapes["layers.0.Wx"] == (10, 24) and shapes["layers.1.Wx"] == (8, 24)
    assert shapes["layers.1.bh"] == (24,) and shapes["head.W"] == (8, 10)
    model = CharRNN(cfg)
    assert model.num_params == sum(int(np.prod(s)) for s in shapes.values())


@pytest.mark.parametrize("cell", CELLS)
def test_threaded_batch_split_matches_single_thread(cell):
    """Splitting the batch across worker threads gives the same loss, gradients and state
    (without dropout: with it, each chunk draws its own masks)."""
    model = _model(cell, 2, dropout=0.0, V=7, H=6)
    rng = np.random.default_rng(4)
    N, T = 5, 4
    x = rng.integers(0, 7, size=(N, T))
    y = rng.integers(0, 7, size=(N, T))
    state = _random_state(model, N, rng)
    loss1, grads1, state1 = model.loss_and_grads(x, y, state)
    with Parallel(model, threads=2) as par:
        loss2, grads2, state2 = par.loss_and_grads(x, y, state)
    assert loss2 == pytest.approx(loss1, rel=1e-12)
    for name in grads1:
        np.testing.assert_allclose(grads2[name], grads1[name], rtol=1e-10, atol=1e-12)
    for l1, l2 in zip(state1, state2):
        for a, b in zip(l1, l2):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_threaded_dropout_is_reproducible_and_drops():
    model = _model("lstm", 2, dropout=0.5, V=7, H=6)
    x = np.random.default_rng(0).integers(0, 7, size=(4, 5))
    with Parallel(model, threads=2) as par:
        runs = [par.loss_and_grads(x, x, model.init_state(4), rng=np.random.default_rng(s))[0]
                for s in (1, 1, 2)]
    plain, _ = model.loss(x, x, model.init_state(4))
    assert runs[0] == runs[1] and runs[0] != runs[2] and runs[0] != plain


def test_threaded_gradients_match_finite_differences():
    model = _model("lstm", 2, dropout=0.2)
    rng = np.random.default_rng(5)
    x = rng.integers(0, 6, size=(3, 3))
    y = rng.integers(0, 6, size=(3, 3))
    state = _random_state(model, 3, rng)
    with Parallel(model, threads=3) as par:
        _, grads, _ = par.loss_and_grads(x, y, state, rng=np.random.default_rng(1))
        run = lambda: par.loss_and_grads(x, y, state, rng=np.random.default_rng(1))[0]
        for name, p in model.params.items():
            assert rel_error(grads[name], numerical_grad(run, p)) < 1e-6, name


@pytest.mark.parametrize("cell", CELLS)
def test_threaded_evaluation_matches_single_thread(cell):
    model = _model(cell, 2, V=7, H=6)
    rng = np.random.default_rng(6)
    x = rng.integers(0, 7, size=(5, 4))
    state = _random_state(model, 5, rng)
    loss1, state1 = model.loss(x, x, state)
    with Parallel(model, threads=2) as par:
        loss2, state2 = par.loss(x, x, state)
    assert loss2 == pytest.approx(loss1, rel=1e-12)
    for l1, l2 in zip(state1, state2):
        for a, b in zip(l1, l2):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
