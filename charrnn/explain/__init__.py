"""Looking inside a model: `core` computes the numbers (an `Explanation` of numpy arrays),
`features` describes a text character by character for the unit finder, `view` renders an
Explanation in the terminal and `html` as one self-contained page (`page.html`).

The names below are the computation's (`charrnn.explain.core`), so that
`from charrnn.explain import explain` reads as before the package.
"""

from charrnn.explain.core import (HORIZON_RATIO, SATURATION, ExplainError, Explanation,
                                  FeatureMatch, GateSaturation, GradientFlow, Unit, array_names,
                                  check_span, check_window, explain, flow_starts, make_unit,
                                  measure_flow, memory_needed, state_gradients, unit_centre)

__all__ = ["HORIZON_RATIO", "SATURATION", "ExplainError", "Explanation", "FeatureMatch",
           "GateSaturation", "GradientFlow", "Unit", "array_names", "check_span", "check_window",
           "explain", "flow_starts", "make_unit", "measure_flow", "memory_needed",
           "state_gradients", "unit_centre"]
