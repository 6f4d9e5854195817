"""The cell table: a cell added by its recipe (tests/helpers/toy_cell.py: one module, one row)
works everywhere a built-in cell does, and every cell's sampling step agrees with its training forward."""

import numpy as np
import pytest

from helpers import oracle
from helpers import toy_cell
from charrnn import cells, layers
from charrnn.model import CharRNN, ModelConfig
from charrnn.engines.parallel import Parallel
from charrnn.stepper import Stepper
from helpers.gradcheck import numerical_grad, rel_error

ALL = ["lstm", "gru", "rnn", toy_cell.TOY.name]


def test_the_table_lists_every_cell_with_what_the_rest_of_the_package_reads():
    assert {"lstm", "gru", "rnn"} <= set(cells.CELLS)
    for cell in cells.CELLS.values():
        assert cell.G == len(cell.gates) and 0 <= cell.sigmoid_gates <= cell.G
        assert cell.states[0] == "h" and cell.biases
        assert callable(cell.forward) and callable(cell.backward) and callable(cell.step)
    with pytest.raises(ValueError, match="unknown cell 'lstn'; choose one of lstm, gru, rnn"):
        cells.get("lstn")


def test_the_toy_cell_gradients_match_finite_differences():
    cell = toy_cell.TOY
    rng = np.random.default_rng(0)
    N, T, D, H = 2, 3, 4, 5
    x = rng.standard_normal((N, T, D))
    state = (rng.standard_normal((N, H)),)
    params = {"Wx": rng.standard_normal((D, 2 * H)) * 0.5, "Wh": rng.standard_normal((H, 2 * H)) * 0.5,
              "b": rng.standard_normal(2 * H) * 0.5}
    dout = rng.standard_normal((N, T, H))
    _, _, cache = layers.cell_forward(cell, x, state, params)
    dx, (dh0,), grads = layers.cell_backward(dout, cache)
    run = lambda: float(np.sum(layers.cell_forward(cell, x, state, params)[0] * dout))
    for name, arr, grad in [("x", x, dx), ("h0", state[0], dh0),
                            *((k, params[k], grads[k]) for k in params)]:
        assert rel_error(grad, numerical_grad(run, arr)) < 1e-6, name


@pytest.mark.parametrize("name", ALL)
def test_a_whole_model_of_every_cell_matches_finite_differences(name):
    model = CharRNN(ModelConfig(name, 6, 5, 2, dropout=0.3), seed=1, dtype=np.float64)
    rng = np.random.default_rng(2)
    for p in model.params.values():
        p[...] = rng.standard_normal(p.shape) * 0.6
    x, y = rng.integers(0, 6, (2, 3)), rng.integers(0, 6, (2, 3))
    state = tuple(tuple(rng.standard_normal(a.shape) * 0.5 for a in layer)
                  for layer in model.init_state(2))
    run = lambda: model.loss_and_grads(x, y, state, rng=np.random.default_rng(3))[0]
    _, grads, _ = model.loss_and_grads(x, y, state, rng=np.random.default_rng(3))
    for key, p in model.params.items():
        assert rel_error(grads[key], numerical_grad(run, p)) < 1e-6, key


@pytest.mark.parametrize("N", [1, 3])
@pytest.mark.parametrize("name", ALL)
def test_every_cells_sampling_step_equals_its_training_forward(name, N):
    model = CharRNN(ModelConfig(name, 7, 6, 3), seed=4, dtype=np.float64)
    rng = np.random.default_rng(5)
    for p in model.params.values():
        p[...] = rng.standard_normal(p.shape) * 0.8
    stepper, state = Stepper(model, N), model.init_state(N)
    for _ in range(5):
        ids = rng.integers(0, 7, N)
        np.testing.assert_allclose(stepper.step(ids), oracle.step(model, ids, state)[0],
                                   rtol=0, atol=1e-12)
        state = oracle.step(model, ids, state)[1]
    for a, b in zip(stepper.state, state):
        np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-12)


def test_worker_processes_find_a_cell_registered_outside_the_package(monkeypatch):
    monkeypatch.delenv("CHARRNN_PARALLEL", raising=False)
    model = CharRNN(ModelConfig(toy_cell.TOY.name, 9, 8, 2), seed=0)
    x = np.random.default_rng(0).integers(0, 9, (4, 5))
    expected = model.loss_and_grads(x, x, model.init_state(4))
    with Parallel(model, threads=2) as par:
        loss, grads, _ = par.loss_and_grads(x, x, model.init_state(4))
        assert par.parallelism == "processes"
    assert loss == pytest.approx(expected[0], rel=1e-6)
    for key in grads:
        np.testing.assert_allclose(grads[key], expected[1][key], rtol=1e-5, atol=1e-7)


def test_the_toy_cell_trains_samples_and_resumes_through_the_command_line(tmp_path):
    """What adding a cell needs is tests/helpers/toy_cell.py alone: `charrnn train --cell mgu`,
    `sample`, `eval` and `--resume` work on it."""
    from click.testing import CliRunner

    from charrnn.cli import cli
    from helpers.train_helpers import TINY, events, load, make_corpus, train

    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    result = train(corpus, *TINY, "--cell", "mgu", "--max-steps", 30, "--eval-every", 10,
                   "--out-dir", out, "--name", "toy", "-q")
    assert result.exit_code == 0, result.stderr
    ckpt = load(out / "toy" / "latest.npz")
    assert ckpt.config.cell == "mgu" and ckpt.training.step == 30
    evals = [r["val_loss"] for r in events(out / "toy", "eval")]
    assert evals[-1] < evals[0]  # it learns
    sample = CliRunner().invoke(cli, ["sample", str(out / "toy"), "-n", "50", "--seed", "1"])
    assert sample.exit_code == 0 and len(sample.stdout) == 51, sample.stderr
    scored = CliRunner().invoke(cli, ["eval", str(out / "toy"), str(corpus), "--format", "json"])
    assert scored.exit_code == 0 and '"nats_per_char"' in scored.stdout, scored.stderr
    resumed = train("--resume", out / "toy", "--max-steps", 40, "--out-dir", out, "-q")
    assert resumed.exit_code == 0 and load(out / "toy" / "latest.npz").training.step == 40
