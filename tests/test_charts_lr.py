"""The learning-rate chart of `charrnn logs --lr` (charrnn/charts.py): its y labels must let
the reader tell a final rate of 3e-4 from a peak of 4e-3 (a linear axis read 0.004 / 0.002 /
0.000, so the final rate was read as 0)."""

import math
import re

import pytest
from rich.console import Console

from charrnn.charts import LineChart, chart_specs


def labels_of(spec, width=80):
    console = Console(width=width, record=True, color_system=None)
    console.print(LineChart(spec.series, spec.title, "step", spec.height, log_y=spec.log_y))
    text = console.export_text()
    return [float(v) for v in re.findall(r"^ *(\S+) ┤", text, re.M)], text


def cosine(peak, final, steps):
    return [final + (peak - final) * (1 + math.cos(math.pi * s / steps)) / 2
            for s in range(steps + 1)]


def records(rates):
    return [{"event": "train", "step": s, "loss": 2.0, "lr": lr} for s, lr in enumerate(rates)]


@pytest.mark.parametrize("height", [14, 8])  # the lr chart is half the loss chart's height
def test_a_final_rate_of_3e_4_is_read_between_two_close_labels(height):
    (lr,) = chart_specs([("r", records(cosine(4e-3, 3e-4, 500)))], lr=True,
                        height=2 * height)[1:]
    labels, text = labels_of(lr)
    assert "learning rate" in text
    below = [v for v in labels if v <= 3e-4]
    above = [v for v in labels if v >= 3e-4]
    assert below and above, labels
    assert min(above) / max(below) <= 2.5, labels  # e.g. 2e-4 and 5e-4: the order is readable
    assert max(labels) >= 4e-3 and 0 not in labels


def test_a_constant_rate_is_labelled_at_its_value():
    (lr,) = chart_specs([("r", records([2e-3] * 50))], lr=True)[1:]
    labels, _ = labels_of(lr)
    assert 2e-3 in labels


def test_the_loss_chart_keeps_its_linear_axis():
    loss, = chart_specs([("r", records([1e-3] * 5))])
    assert not loss.log_y
