"""The HTML rendering of an `Explanation`: one self-contained page (`charrnn explain --html`).

The page is the template `page.html` (inline CSS and JavaScript) with the numbers
embedded: a JSON object in a <script type="application/json"> element, and the activations of
each (layer, array) as base64 text in a <script type="text/plain"> element of its own, decoded
only when that array is first shown. Nothing is fetched (its Content-Security-Policy forbids
it), so it works offline from file://. Everything taken from the text reaches the page as
JSON with <, >, & and the line separators escaped, so no text (not even "</script>") can
end the element it sits in, and the page's script shows it with textContent only.

Activations are stored as four bits per value, two values a byte, unit by unit: unit u of an
array maps its range [lo_u, hi_u] onto 0..15 (the colour scale has 8 steps; the hover shows the
value to 1/30 of the unit's range). What a page holds (`embedded`): the output state h of every
layer, every unit (what a reader picks first); then the other states (the LSTM's c) and the
gates if the page stays within PAGE_BUDGET bytes of codes; and, of the arrays left out, the
traces of the units the finder names and of --unit, so that every button of the page works.
So a page of 10,000 characters of the default model (LSTM 2×384) is about 5.8 MB, and one of
2,000 characters holds every array. A page whose h arrays alone exceed PAGE_CODES bytes is
refused (explain fewer characters).
"""

from __future__ import annotations

import base64
import json
import os
from importlib import resources
from pathlib import Path

import numpy as np

from charrnn import files
from charrnn.charts import PALETTE
from charrnn.explain.core import SATURATION, ExplainError, unit_centre
from charrnn.explain.view import DIVERGING, SURPRISE

PAGE_CODES = 48 * 2**20  # bytes of 4-bit codes a page embeds at most (~64 MB of base64)
PAGE_BUDGET = 4 * 2**20  # the arrays beyond h are embedded while the codes stay within this
LEVELS = 15  # the largest code: 16 levels, 4 bits a value
KEEP_BYTES = 512 * 2**20  # activations `explain` keeps in memory for a page at most
TOP_K = 5  # the predictions a hover shows


def _packed(n, H):
    """Bytes of the 4-bit codes of one (n, H) array."""
    return (n * H + 1) // 2


def page_options(config, n, window=100, arrays="auto"):
    """The options of `explain.explain` that a page of n characters needs: every array kept
    in memory when they fit KEEP_BYTES (else the states), so that `render` can embed the
    finder's units whatever it leaves out; the gradient-flow panel only when the text is longer
    than a `window` (a short text gets a page without it). arrays: "auto" (what fits the
    budget, see the module's docstring), "states" or "all" (embedded in full, up to
    PAGE_CODES)."""
    cell, L, H = config.cell_spec, config.num_layers, config.hidden_size
    full = {"auto": 1, "states": len(cell.states), "all": len(cell.states) + len(cell.gates)}
    if arrays not in full:
        raise ExplainError(f"the page's arrays are 'auto', 'states' or 'all', not {arrays!r}.")
    if L * full[arrays] * _packed(n, H) > PAGE_CODES:
        most = 2 * PAGE_CODES // (H * L * full[arrays])
        raise ExplainError(f"a page of {n:,} characters would hold too many activations for "
                           f"this model ({L * full[arrays] * _packed(n, H) / 2**20:,.0f} MB "
                           f"of them); explain at most {most:,} characters in a page.")
    every = len(cell.states) + len(cell.gates)
    keep = "all" if n * H * L * every * 4 <= KEEP_BYTES or arrays == "all" else "states"
    return {"top_k": TOP_K, "arrays": keep, "find": True, "saturation": True,
            "gradient_flow": n - 1 >= window}


def embedded(e, arrays="auto"):
    """The (layer, name) arrays of `e.activations` a page embeds in full, in order: h of every
    layer, then (for "auto", while the codes stay within PAGE_BUDGET) the other states, then
    the gates; "states" or "all": those, in full."""
    cfg, cell = e.config, e.config.cell_spec
    n, H, L = len(e.text), cfg.hidden_size, cfg.num_layers
    groups = [cell.states[:1], cell.states[1:], cell.gates]
    wanted = {"states": 2, "all": 3}.get(arrays)
    chosen = []
    for k, names in enumerate(groups):
        pairs = [(layer, a) for layer in range(L) for a in names if (layer, a) in e.activations]
        within = (len(chosen) + len(pairs)) * _packed(n, H) <= PAGE_BUDGET
        if k == 0 or (wanted is not None and k < wanted) or (wanted is None and within):
            chosen += pairs
        elif wanted is None:
            break
    return chosen


def check_writable(path):
    """ExplainError, before any work, if the page could not be written to `path`."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise ExplainError(f"{path} is a folder; give the page a file name, such as "
                           f"{path / 'explain.html'}.")
    if not folder.is_dir():
        raise ExplainError(f"cannot write {path}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ExplainError(f"cannot write {path}: permission denied.")
    files.check_target(path, "page", ExplainError)


def _script_json(obj):
    """JSON that is safe inside a <script> element: ASCII only, no <, > or &."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _codes(values):
    """(n, H) activations -> per-unit lo, hi (H,) and the packed 4-bit codes of the (H, n)
    transposed array, unit by unit: value k of the flattened codes is in byte k // 2, low
    nibble first."""
    lo, hi = values.min(axis=0), values.max(axis=0)
    step = np.where(hi > lo, hi - lo, 1.0) / LEVELS
    codes = np.rint((values - lo) / step).astype(np.uint8).T.ravel()
    if codes.size % 2:
        codes = np.append(codes, np.uint8(0))
    return lo, hi, codes[0::2] | (codes[1::2] << 4)


def _script(k, packed):
    return (f'<script type="text/plain" id="a{k}">'
            f'{base64.b64encode(packed.tobytes()).decode("ascii")}</script>')


def render(e, title, model_line, arrays="auto"):
    """The page (a str) of an Explanation computed with `page_options` (`arrays` as there)."""
    cfg, cell = e.config, e.config.cell_spec
    data = e.to_json()
    K = e.top_ids.shape[1]
    full, scripts = [], []
    shown = embedded(e, arrays)
    for layer, name in shown:
        lo, hi, packed = _codes(e.activations[layer, name])
        full.append({"layer": layer, "name": name, "id": f"a{len(scripts)}", "lo": lo.tolist(),
                     "hi": hi.tolist(), "centre": unit_centre(cfg, name)})
        scripts.append(_script(len(scripts), packed))
    singles = []  # the finder's units and --unit, when their array is not embedded in full
    named = [*e.units, *(u for m in (e.finder or []) for u, _ in m.units)]
    for u in dict.fromkeys(named):
        if (u.layer, u.array) not in shown:
            lo, hi, packed = _codes(e.unit(u)[:, None])
            singles.append({"layer": u.layer, "name": u.array, "index": u.index,
                            "id": f"a{len(scripts)}", "lo": lo.tolist(), "hi": hi.tolist(),
                            "centre": unit_centre(cfg, u.array)})
            scripts.append(_script(len(scripts), packed))
    left_out = [a for a in cell.states + cell.gates if (0, a) not in shown]
    page = {
        "title": title, "model": model_line, "text": e.text, "vocab": list(e.vocab_chars),
        "nats": [None] + np.round(e.nats[1:], 4).tolist(),
        "summary": {"nats": data["nats_per_char"], "bits": data["bits_per_char"],
                    "predicted": data["chars_predicted"], "skipped": e.skipped,
                    "spans": [[s["start"], s["end"], s["nats_per_char"]]
                              for s in data["surprising_spans"]]},
        "top": {"k": K, "ids": e.top_ids.ravel().tolist(),
                "probs": np.round(e.top_probs, 4).ravel().tolist()},
        "cell": {"layers": cfg.num_layers, "hidden": cfg.hidden_size, "states": cell.states,
                 "gates": cell.gates},
        "levels": LEVELS, "arrays": full, "singles": singles, "left_out": left_out,
        "start": [{"layer": u.layer, "array": u.array, "index": u.index} for u in e.units][:1],
        "finder": data["finder"],
        "saturation": data["saturation"], "saturation_bounds": list(SATURATION),
        "flow": data.get("gradient_flow"),
        "scales": {"surprise": {"edges": SURPRISE.edges, "colors": SURPRISE.colors,
                                "labels": SURPRISE.labels, "title": SURPRISE.title},
                   "diverging": DIVERGING},
        "palette": PALETTE,
    }
    template = resources.files("charrnn.explain").joinpath("page.html").read_text("utf-8")
    head, _, rest = template.partition("__CHARRNN_DATA__")
    middle, _, tail = rest.partition("__CHARRNN_ARRAYS__")
    return head + _script_json(page) + middle + "\n".join(scripts) + tail


def write(path, page):
    """Write the page atomically (`files.atomic_writer`): only a new name or a regular file is
    replaced, and nothing is left behind if the write fails or is interrupted."""
    with files.atomic_writer(path, "page", "w", "utf-8", ExplainError) as f:
        f.write(page)
