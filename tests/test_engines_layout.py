"""The numpy <-> torch parameter layout (charrnn.engines.layout): numpy only, no PyTorch."""

import numpy as np
import pytest

from charrnn.config import ModelConfig
from charrnn.engines import layout
from charrnn.model import CharRNN
from charrnn.optim import make_optimizer

H = 5


def _model(cell, layers=3):
    return CharRNN(ModelConfig(cell, vocab_size=7, hidden_size=H, num_layers=layers), seed=2,
                   dtype=np.float64)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 3])
def test_parameters_go_to_torch_and_back_exactly(cell, layers):
    model = _model(cell, layers)
    model.params = {k: np.random.default_rng(1).standard_normal(v.shape)
                    for k, v in model.params.items()}  # every entry distinct
    torch_layout = layout.to_torch(cell, model.params, H)
    G = model.cell.G
    assert torch_layout["layers.0.w_ih"].shape == (G * H, 7)
    assert torch_layout[f"layers.{layers - 1}.w_hh"].shape == (G * H, H)
    assert ("layers.0.b_hh" in torch_layout) == (cell == "gru")
    back = layout.from_torch(cell, torch_layout, H)
    assert back.keys() == model.params.keys()
    for k, v in model.params.items():
        assert np.array_equal(back[k], v) and back[k].dtype == v.dtype, k


def test_lstm_gates_are_reordered_i_f_g_o_and_gru_keeps_r_z_n_with_its_two_biases():
    model = _model("lstm", 1)
    Wx = np.repeat(np.arange(4.0), H)[None].repeat(7, axis=0)  # numpy block k holds k: i f o g
    t = layout.to_torch("lstm", {**model.params, "layers.0.Wx": Wx}, H)
    assert list(t["layers.0.w_ih"][::H, 0]) == [0.0, 1.0, 3.0, 2.0]  # torch order i f g o
    g = _model("gru", 1).params
    t = layout.to_torch("gru", {**g, "layers.0.bx": np.arange(3.0 * H),
                                "layers.0.bh": -np.arange(3.0 * H)}, H)
    assert np.array_equal(t["layers.0.b_ih"], np.arange(3.0 * H))  # n's hidden bias stays
    assert np.array_equal(t["layers.0.b_hh"], -np.arange(3.0 * H))  # in b_hh (inside r *)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_optimizer_state_goes_to_torch_and_back_exactly(cell):
    model = _model(cell, 2)
    opt = make_optimizer("adam", model.params)
    rng = np.random.default_rng(3)
    for per_key in opt.state.values():
        for a in per_key.values():
            a[...] = rng.standard_normal(a.shape)
    opt.t = 7
    flat = opt.state_arrays()
    slots, t = layout.optim_to_torch(cell, flat, H)
    assert set(slots) == {"m", "v"} and t == 7
    back = layout.optim_from_torch(cell, slots, t, H)
    assert back.keys() == flat.keys()
    assert all(np.array_equal(back[k], flat[k]) for k in flat)


def test_carried_state_round_trip_and_unknown_cells():
    state = ((np.arange(10.0).reshape(5, 2), np.ones((5, 2))),)
    t = layout.state_to_torch(state)
    assert t[0][0].shape == (1, 2, 5) and t[0][0][0, 1, 3] == state[0][0][3, 1]
    back = layout.state_from_torch(t)
    assert all(np.array_equal(a, b) for a, b in zip(back[0], state[0]))
    with pytest.raises(ValueError, match="no form of the 'toy' cell"):
        layout.check_cell("toy")
