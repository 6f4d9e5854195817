"""Clipping, the optimizers against reference formulas, state round-trips and the LR schedule."""

import json
import math

import numpy as np
import pytest

from charrnn.optim import (
    DEFAULT_LR,
    OPTIMIZERS,
    SGD,
    Adagrad,
    Adam,
    LRSchedule,
    RMSprop,
    clip_grad_norm,
    make_optimizer,
)

SHAPES = {"layers.0.Wx": (3, 8), "layers.0.b": (8,), "head.W": (4, 3)}
# (name, hyperparameters): every optimizer, SGD with and without momentum
CONFIGS = [("adam", {}), ("rmsprop", {}), ("adagrad", {}), ("sgd", {}), ("sgd", {"momentum": 0.9})]
CONFIG_IDS = ["adam", "rmsprop", "adagrad", "sgd", "sgd-momentum"]


def random_arrays(seed, dtype=np.float64, scale=1.0):
    rng = np.random.default_rng(seed)
    return {k: (scale * rng.standard_normal(s)).astype(dtype) for k, s in SHAPES.items()}


def grad_sequence(n, dtype=np.float64):
    return [random_arrays(100 + i, dtype) for i in range(n)]


# --- reference implementations: one parameter, plain numpy, fresh arrays every step ---

def reference_adam(p, gs, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(gs, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def reference_rmsprop(p, gs, lr, alpha=0.95, eps=1e-8):
    v = np.zeros_like(p)
    for g in gs:
        v = alpha * v + (1 - alpha) * g**2
        p = p - lr * g / (np.sqrt(v) + eps)
    return p


def reference_adagrad(p, gs, lr, eps=1e-8):
    G = np.zeros_like(p)
    for g in gs:
        G = G + g**2
        p = p - lr * g / (np.sqrt(G) + eps)
    return p


def reference_sgd(p, gs, lr, momentum=0.0):
    u = np.zeros_like(p)
    for g in gs:
        u = momentum * u + g
        p = p - lr * u
    return p


REFERENCES = {"adam": reference_adam, "rmsprop": reference_rmsprop, "adagrad": reference_adagrad, "sgd": reference_sgd}


@pytest.mark.parametrize("name,hyper", CONFIGS + [("adam", {"beta1": 0.5, "beta2": 0.9, "eps": 1e-3}),
                                                   ("rmsprop", {"alpha": 0.5, "eps": 1e-2})])
def test_update_matches_reference(name, hyper):
    params = random_arrays(0)
    start = {k: p.copy() for k, p in params.items()}
    grads = grad_sequence(4)
    opt = make_optimizer(name, params, **hyper)
    for g in grads:
        opt.step(params, g, 0.01)
    assert opt.t == 4
    for k in params:
        expected = REFERENCES[name](start[k], [g[k] for g in grads], 0.01, **hyper)
        np.testing.assert_allclose(params[k], expected, rtol=1e-12, atol=1e-14)
        assert not np.allclose(params[k], start[k])


@pytest.mark.parametrize("name,hyper", CONFIGS, ids=CONFIG_IDS)
def test_weight_decay_shrinks_weight_matrices_before_each_update(name, hyper):
    # AdamW's decoupled decay: W -= lr * lambda * W, then the rule's step; biases (1 axis) not decayed
    lr, lam = 0.01, 0.3
    params = random_arrays(0)
    start = {k: p.copy() for k, p in params.items()}
    grads = grad_sequence(4)
    opt = make_optimizer(name, params, weight_decay=lam, **hyper)
    for g in grads:
        opt.step(params, g, lr)
    plain = {k: p.copy() for k, p in start.items()}
    reference = make_optimizer(name, plain, **hyper)
    for g in grads:
        for k, p in plain.items():
            if p.ndim >= 2:
                p *= 1 - lr * lam
        reference.step(plain, g, lr)
    for k in params:
        np.testing.assert_allclose(params[k], plain[k], rtol=1e-12, atol=1e-14)
    bias = "layers.0.b"
    np.testing.assert_allclose(params[bias], REFERENCES[name](start[bias], [g[bias] for g in grads], lr, **hyper),
                               rtol=1e-12, atol=1e-14)
    for k in ("layers.0.Wx", "head.W"):  # the decay changed the result
        assert np.abs(params[k] - REFERENCES[name](start[k], [g[k] for g in grads], lr, **hyper)).max() > 1e-5


def test_weight_decay_alone_shrinks_geometrically():
    params = random_arrays(0)
    start = {k: p.copy() for k, p in params.items()}
    zero = {k: np.zeros_like(p) for k, p in params.items()}
    opt = SGD(params, weight_decay=0.5)
    for _ in range(3):
        opt.step(params, zero, 0.1)
    np.testing.assert_allclose(params["head.W"], start["head.W"] * 0.95**3, rtol=1e-14)
    np.testing.assert_array_equal(params["layers.0.b"], start["layers.0.b"])


def test_adam_first_step_moves_by_lr_times_sign():
    params = random_arrays(0)
    start = {k: p.copy() for k, p in params.items()}
    rng = np.random.default_rng(1)
    # magnitudes over four decades: bias correction makes the first step independent of |g|
    grads = {k: rng.choice([-1.0, 1.0], s) * 10.0 ** rng.uniform(-3, 1, s) for k, s in SHAPES.items()}
    Adam(params).step(params, grads, 0.05)
    for k, g in grads.items():
        moved = start[k] - params[k]
        np.testing.assert_allclose(moved, 0.05 * g / (np.abs(g) + 1e-8), rtol=1e-10)
        np.testing.assert_allclose(moved, 0.05 * np.sign(g), rtol=1e-5)


def test_adam_state_after_one_step():
    params = random_arrays(0)
    grads = random_arrays(1)
    opt = Adam(params, beta1=0.8, beta2=0.99)
    opt.step(params, grads, 1e-3)
    state = opt.state_arrays()
    for k, g in grads.items():
        np.testing.assert_allclose(state[f"m.{k}"], 0.2 * g, rtol=1e-12)
        np.testing.assert_allclose(state[f"v.{k}"], 0.01 * g**2, rtol=1e-12)
    assert state["t"].shape == () and state["t"].dtype == np.int64 and int(state["t"]) == 1


# --- clipping ---

def test_clip_scales_to_exactly_max_norm():
    grads = random_arrays(2)
    before = {k: g.copy() for k, g in grads.items()}
    expected = math.sqrt(sum(float(np.sum(g**2)) for g in before.values()))
    norm = clip_grad_norm(grads, 1.0)
    assert isinstance(norm, float)
    assert norm == pytest.approx(expected, rel=1e-12) and norm > 1.0
    after = math.sqrt(sum(float(np.sum(g**2)) for g in grads.values()))
    assert after == pytest.approx(1.0, rel=1e-12)
    for k in grads:  # one common factor: directions unchanged
        np.testing.assert_allclose(grads[k], before[k] / expected, rtol=1e-12)


def test_clip_float32_keeps_dtype_and_accumulates_in_float64():
    grads = {"a": np.full(10, 1e20, dtype=np.float32), "b": np.full(3, -1e20, dtype=np.float32)}
    norm = clip_grad_norm(grads, 5.0)  # g**2 overflows float32; the norm must not
    assert norm == pytest.approx(math.sqrt(13) * 1e20, rel=1e-6)
    assert all(g.dtype == np.float32 for g in grads.values())
    total = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
    assert total == pytest.approx(5.0, rel=1e-6)


@pytest.mark.parametrize("max_norm", [100.0, 0.0])
def test_clip_no_op_below_threshold_or_when_off(max_norm):
    grads = random_arrays(3)
    before = {k: g.copy() for k, g in grads.items()}
    norm = clip_grad_norm(grads, max_norm)
    assert 1.0 < norm < 100.0
    for k in grads:
        assert np.array_equal(grads[k], before[k])


@pytest.mark.parametrize("bad,check", [(np.inf, math.isinf), (np.nan, math.isnan)])
def test_clip_non_finite_norm_returned_and_grads_untouched(bad, check):
    grads = random_arrays(4)
    grads["head.W"][1, 2] = bad
    before = {k: g.copy() for k, g in grads.items()}
    norm = clip_grad_norm(grads, 1.0)
    assert check(norm)
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])  # treats nan == nan


def test_clip_negative_max_norm_rejected():
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(random_arrays(0), -1.0)


# --- state ---

@pytest.mark.parametrize("name,hyper", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_round_trip_continues_bit_for_bit(name, hyper, dtype, tmp_path):
    grads = grad_sequence(10, dtype)
    params = random_arrays(0, dtype)
    opt = make_optimizer(name, params, **hyper)
    for g in grads[:5]:
        opt.step(params, g, 0.01)
    np.savez(tmp_path / "opt.npz", **opt.state_arrays())  # through a real file, as a checkpoint would
    resumed_params = {k: p.copy() for k, p in params.items()}
    for g in grads[5:]:
        opt.step(params, g, 0.01)

    with np.load(tmp_path / "opt.npz", allow_pickle=False) as f:
        saved = dict(f)
    fresh = make_optimizer(params=resumed_params, **json.loads(json.dumps(opt.hyperparams())))
    fresh.load_state_arrays(saved)
    assert fresh.t == 5
    for g in grads[5:]:
        fresh.step(resumed_params, g, 0.01)
    assert fresh.t == opt.t == 10
    for k in params:
        assert np.array_equal(resumed_params[k], params[k])
    mine, theirs = opt.state_arrays(), fresh.state_arrays()
    assert mine.keys() == theirs.keys()
    for k in mine:
        assert np.array_equal(mine[k], theirs[k])


@pytest.mark.parametrize("name,hyper", CONFIGS, ids=CONFIG_IDS)
def test_float32_stays_float32(name, hyper):
    params = random_arrays(0, np.float32)
    opt = make_optimizer(name, params, **hyper)
    for g in grad_sequence(3, np.float32):
        opt.step(params, g, np.float64(0.01))  # a float64 learning rate must not upcast anything
    assert all(p.dtype == np.float32 for p in params.values())
    state = opt.state_arrays()
    assert all(a.dtype == np.float32 for k, a in state.items() if k != "t")


def test_state_arrays_keys_and_copies():
    params = random_arrays(0)
    opt = Adam(params)
    state = opt.state_arrays()
    assert set(state) == {"t"} | {f"{s}.{k}" for s in ("m", "v") for k in SHAPES}
    state["m.head.W"] += 1.0  # a copy: saving must not alias live state
    assert not opt.state_arrays()["m.head.W"].any()
    assert set(SGD(params).state_arrays()) == {"t"}
    assert set(SGD(params, momentum=0.5).state_arrays()) == {"t"} | {f"u.{k}" for k in SHAPES}
    assert set(RMSprop(params).state_arrays()) == {"t"} | {f"v.{k}" for k in SHAPES}
    assert set(Adagrad(params).state_arrays()) == {"t"} | {f"G.{k}" for k in SHAPES}


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda s: s.pop("v.head.W"), "missing 'v.head.W'"),
        (lambda s: s.pop("t"), "missing 't'"),
        (lambda s: s.update({"m.head.W": np.zeros((3, 4))}), r"shape \(3, 4\).*needs \(4, 3\)"),
        (lambda s: s.update({"m.layers.9.Wx": np.zeros(2)}), "unexpected"),
        (lambda s: s.update({"t": np.array([1, 2])}), "step count"),
        (lambda s: s.update({"t": np.array(-1)}), "step count"),
        (lambda s: s.update({"v.head.W": np.zeros((4, 3), dtype=np.int64)}), "not a float"),
    ],
)
def test_load_state_rejects_bad_state_and_changes_nothing(change, message):
    params = random_arrays(0)
    opt = Adam(params)
    opt.step(params, random_arrays(1), 0.01)
    before = opt.state_arrays()
    bad = opt.state_arrays()
    for k in bad:
        if k != "t":
            bad[k] = bad[k] + 1.0
    change(bad)
    with pytest.raises(ValueError, match=message):
        opt.load_state_arrays(bad)
    after = opt.state_arrays()
    assert opt.t == 1
    for k in before:
        assert np.array_equal(before[k], after[k])


def test_load_state_of_other_model_size_rejected():
    small = {"head.W": np.zeros((2, 2))}
    state = Adam(small).state_arrays()
    with pytest.raises(ValueError, match="missing"):
        Adam(random_arrays(0)).load_state_arrays(state)


# --- construction ---

def test_registry_defaults_and_hyperparams():
    assert set(OPTIMIZERS) == {"adam", "rmsprop", "adagrad", "sgd"} == set(DEFAULT_LR)
    assert all(OPTIMIZERS[n].name == n for n in OPTIMIZERS)
    assert all(lr > 0 for lr in DEFAULT_LR.values())
    params = random_arrays(0)
    assert make_optimizer("adam", params).hyperparams() == {
        "name": "adam", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
    assert make_optimizer("rmsprop", params).hyperparams() == {
        "name": "rmsprop", "alpha": 0.95, "eps": 1e-8, "weight_decay": 0.0}
    assert make_optimizer("adagrad", params).hyperparams() == {"name": "adagrad", "eps": 1e-8, "weight_decay": 0.0}
    assert make_optimizer("sgd", params, momentum=0.9, weight_decay=0.1).hyperparams() == {
        "name": "sgd", "momentum": 0.9, "weight_decay": 0.1}


def test_unknown_optimizer_name():
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'.*adam, rmsprop, adagrad, sgd"):
        make_optimizer("adamw", random_arrays(0))


@pytest.mark.parametrize(
    "name,hyper,message",
    [("adam", {"beta1": 1.0}, "beta1"), ("adam", {"beta2": -0.1}, "beta2"), ("adam", {"eps": 0.0}, "eps"),
     ("rmsprop", {"alpha": 1.5}, "alpha"), ("sgd", {"momentum": 1.0}, "momentum"),
     ("adam", {"weight_decay": -0.1}, "weight_decay"), ("sgd", {"weight_decay": float("nan")}, "weight_decay"),
     ("adagrad", {"weight_decay": float("inf")}, "weight_decay")],
)
def test_bad_hyperparameters_rejected(name, hyper, message):
    with pytest.raises(ValueError, match=message):
        make_optimizer(name, random_arrays(0), **hyper)


def test_integer_parameters_rejected():
    with pytest.raises(ValueError, match="'w'.*float32 or float64"):
        Adam({"w": np.zeros(3, dtype=np.int64)})


# --- a quadratic: every optimizer minimises it ---

@pytest.mark.parametrize("name,hyper,lr", [("adam", {}, 0.05), ("rmsprop", {}, 0.01), ("adagrad", {}, 0.5),
                                           ("sgd", {}, 0.1), ("sgd", {"momentum": 0.9}, 0.02)])
def test_minimises_quadratic(name, hyper, lr):
    # loss = sum_k 0.5 * sum(d_k * (p_k - target_k)^2), an ill-conditioned bowl
    rng = np.random.default_rng(5)
    params = {k: np.zeros(s) for k, s in SHAPES.items()}
    targets = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    curvature = {k: rng.uniform(0.2, 2.0, s) for k, s in SHAPES.items()}

    def loss_and_grads():
        diffs = {k: params[k] - targets[k] for k in params}
        loss = sum(0.5 * float(np.sum(curvature[k] * diffs[k] ** 2)) for k in params)
        return loss, {k: curvature[k] * diffs[k] for k in params}

    opt = make_optimizer(name, params, **hyper)
    start, _ = loss_and_grads()
    for _ in range(300):
        _, grads = loss_and_grads()
        opt.step(params, grads, lr)
    end, _ = loss_and_grads()
    assert end < 0.01 * start


# --- learning-rate schedule ---

def test_schedule_warmup():
    s = LRSchedule(1e-2, warmup_steps=100, min_ratio=0.1)
    assert s(0) == pytest.approx(1e-4)
    assert s(49) == pytest.approx(5e-3)
    assert s(99) == pytest.approx(1e-2)
    assert s(0, progress=0.5) == pytest.approx(1e-4)  # warm-up ignores progress


def test_schedule_cosine_and_constant():
    s = LRSchedule(1e-2, warmup_steps=10, min_ratio=0.1)
    assert s(10, progress=0.0) == pytest.approx(1e-2)
    assert s(500, progress=0.5) == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5))
    assert s(1000, progress=1.0) == pytest.approx(1e-3)
    assert s(1000, progress=1.7) == pytest.approx(1e-3)  # clamped
    assert s(10, progress=-0.3) == pytest.approx(1e-2)
    rates = [s(20, progress=p) for p in np.linspace(0, 1, 11)]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert s(10) == s(10**6) == 1e-2  # unknown length: constant after warm-up


def test_schedule_without_warmup_and_json_round_trip():
    s = LRSchedule(3e-3, warmup_steps=0, min_ratio=0.0)
    assert s(0) == 3e-3
    assert s(0, progress=1.0) == pytest.approx(0.0, abs=1e-18)
    t = LRSchedule.from_json(json.loads(json.dumps(s.to_json())))
    assert t.to_json() == s.to_json() == {"base_lr": 3e-3, "warmup_steps": 0, "min_ratio": 0.0}
    assert [t(i, p) for i, p in [(0, 0.3), (5, None)]] == [s(i, p) for i, p in [(0, 0.3), (5, None)]]


@pytest.mark.parametrize("args,message", [((0.0,), "learning rate"), ((1e-3, -1), "warmup_steps"),
                                          ((1e-3, 2.5), "warmup_steps"), ((1e-3, 10, 1.5), "min_ratio")])
def test_schedule_rejects_bad_values(args, message):
    with pytest.raises(ValueError, match=message):
        LRSchedule(*args)


def test_schedule_from_json_missing_key():
    with pytest.raises(ValueError, match="min_ratio"):
        LRSchedule.from_json({"base_lr": 1e-3, "warmup_steps": 5})
