"""The size of `charrnn explain --html`'s page (charrnn/explain/html.py): bounded per character
and per unit, so that 10,000 characters of the default model (the size rule's 10-minute
choice) make a page of at most 8 MB (it was 21 MB, and 12.6 MB for 2,000 characters), and a
short text gets a page without the gradient-flow panel instead of an error."""

import numpy as np
import pytest

from charrnn import explain, sizing
from charrnn.explain import html as explain_html
from charrnn.data import Vocab
from charrnn.model import CharRNN, ModelConfig

TEXT = "the quick brown fox jumps over the lazy dog; THE QUICK BROWN FOX!\n"
PER_CHAR = 100  # bytes a page holds per character besides activations: nats, top 5, text
PER_VALUE = 4 / 3 / 2  # bytes per activation value: 4 bits, in base64


def page_bytes(model, vocab, n):
    text = (TEXT * (n // len(TEXT) + 1))[:n]
    e = explain.explain(model, vocab, text, **explain_html.page_options(model.config, n))
    return len(explain_html.render(e, "t", "m").encode("utf-8")), e


@pytest.mark.parametrize("cell, H, L", [("lstm", 48, 2), ("gru", 40, 1)])
def test_a_page_over_its_budget_grows_by_its_h_arrays_per_character(monkeypatch, cell, H, L):
    """Past the budget (0 here, as for 10,000 characters of the default model) a page embeds
    h of each layer in full and of the rest only the finder's units: its growth per character
    is bounded by PER_CHAR + PER_VALUE per unit of each layer."""
    monkeypatch.setattr(explain_html, "PAGE_BUDGET", 0)
    vocab = Vocab(TEXT)
    model = CharRNN(ModelConfig(cell, vocab.size, H, L), seed=1)
    (small, _), (large, e) = page_bytes(model, vocab, 300), page_bytes(model, vocab, 1500)
    slope = (large - small) / 1200
    assert slope <= PER_CHAR + PER_VALUE * L * H + 1, slope
    assert explain_html.embedded(e) == [(layer, "h") for layer in range(L)]
    assert slope >= PER_VALUE * L * H  # every h unit is in it


def test_within_the_budget_every_array_is_embedded():
    vocab = Vocab(TEXT)
    model = CharRNN(ModelConfig("lstm", vocab.size, 16, 2), seed=1)
    _, e = page_bytes(model, vocab, 300)
    assert len(explain_html.embedded(e)) == 2 * (2 + 4)


class Sized:
    """What `embedded` reads of an Explanation: the config, the text's length, the arrays."""

    def __init__(self, config, n):
        self.config, self.text = config, " " * n
        self.activations = dict.fromkeys(explain.array_names(config, "all"))


@pytest.mark.parametrize("size", ["medium", "large"])
def test_10000_characters_of_the_default_model_make_at_most_8_mb(size):
    """The default model of a 10-minute run (medium: LSTM 2×384) and the next size up."""
    assert sizing.auto_size(10, 1_000_000) == "medium"
    preset = sizing.PRESETS[size]
    cfg = ModelConfig("lstm", 65, preset.hidden_size, preset.num_layers)
    n = 10_000
    explain_html.page_options(cfg, n)  # not refused
    arrays = explain_html.embedded(Sized(cfg, n))
    assert arrays == [(layer, "h") for layer in range(preset.num_layers)]
    assert n * (PER_CHAR + PER_VALUE * len(arrays) * preset.hidden_size) <= 8e6


def test_a_short_text_gets_a_page_without_gradient_flow():
    vocab = Vocab(TEXT)
    model = CharRNN(ModelConfig("lstm", vocab.size, 8, 1), seed=1)
    options = explain_html.page_options(model.config, 7)
    assert options["gradient_flow"] is False
    e = explain.explain(model, vocab, "the fox", **options)
    page = explain_html.render(e, "t", "m")
    assert '"flow":null' in page
    assert explain_html.page_options(model.config, 101)["gradient_flow"] is True


def test_the_codes_are_four_bits_a_value_unit_by_unit():
    values = np.array([[0.0, -1.0], [1.0, 1.0], [0.6, 0.2]], dtype=np.float32)  # (n=3, H=2)
    lo, hi, packed = explain_html._codes(values)
    assert lo.tolist() == [0.0, -1.0] and hi.tolist() == [1.0, 1.0]
    flat = np.stack([packed & 15, packed >> 4], axis=1).ravel()[:6]
    assert flat.tolist() == [0, 15, 9, 0, 15, 9]  # unit 0's three values, then unit 1's
