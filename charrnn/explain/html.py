"""The HTML rendering of an `Explanation`: one self-contained page (`charrnn explain --html`).

The page is the template `page.html` (inline CSS and JavaScript) with the numbers
embedded: a JSON object in a <script type="application/json"> element, and the activations of
each (layer, array) as base64 text in a <script type="text/plain"> element of its own, decoded
only when that array is first shown. Nothing is fetched (its Content-Security-Policy forbids
it), so it works offline from file://. Everything taken from the text reaches the page as
JSON with <, >, & and the line separators escaped, so no text (not even "</script>") can
end the element it sits in, and the page's script shows it with textContent only.

Activations are stored as one byte per value: unit u of an array maps its range [lo_u, hi_u]
onto 0..255 (the colour scale has 8 steps; the hover shows the value to about 0.4% of the
range). A page holds at most PAGE_CODES of those bytes: every state and gate array if they
fit, else the state arrays (what the finder ranks) alone, else the text is too long for a page.
"""

from __future__ import annotations

import base64
import json
import os
from importlib import resources
from pathlib import Path

import numpy as np

from charrnn.charts import PALETTE
from charrnn.explain.core import SATURATION, ExplainError, unit_centre
from charrnn.explain.view import DIVERGING, SURPRISE

PAGE_CODES = 32 * 2**20  # bytes of activations a page embeds at most (~43 MB of base64)
TOP_K = 5  # the predictions a hover shows


def page_options(config, n):
    """The options of `explain.explain` that a page of n characters needs."""
    cell, per_array = config.cell_spec, n * config.hidden_size * config.num_layers
    if per_array * (len(cell.states) + len(cell.gates)) <= PAGE_CODES:
        arrays = "all"
    elif per_array * len(cell.states) <= PAGE_CODES:
        arrays = "states"
    else:
        most = PAGE_CODES // (config.hidden_size * config.num_layers * len(cell.states))
        raise ExplainError(f"a page of {n:,} characters would hold too many activations for "
                           f"this model ({per_array * len(cell.states) / 2**20:,.0f} MB for "
                           f"its states alone); explain at most {most:,} characters in a page.")
    return {"top_k": TOP_K, "arrays": arrays, "find": True, "saturation": True,
            "gradient_flow": True}


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


def _script_json(obj):
    """JSON that is safe inside a <script> element: ASCII only, no <, > or &."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _codes(values):
    """(n, H) activations -> per-unit lo, hi (H,) and (H, n) uint8 codes, unit by unit."""
    lo, hi = values.min(axis=0), values.max(axis=0)
    step = np.where(hi > lo, hi - lo, 1.0) / 255
    codes = np.rint((values - lo) / step).astype(np.uint8)
    return lo, hi, np.ascontiguousarray(codes.T)


def render(e, title, model_line):
    """The page (a str) of an Explanation computed with `page_options`."""
    cfg, cell = e.config, e.config.cell_spec
    data = e.to_json()
    K = e.top_ids.shape[1]
    arrays, scripts = [], []
    for k, ((layer, name), values) in enumerate(e.activations.items()):
        lo, hi, codes = _codes(values)
        arrays.append({"layer": layer, "name": name, "id": f"a{k}", "lo": lo.tolist(),
                       "hi": hi.tolist(), "centre": unit_centre(cfg, name)})
        scripts.append(f'<script type="text/plain" id="a{k}">'
                       f'{base64.b64encode(codes.tobytes()).decode("ascii")}</script>')
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
        "arrays": arrays,
        "start": [{"layer": u.layer, "array": u.array, "index": u.index} for u in e.units][:1],
        "finder": data["finder"],
        "saturation": data["saturation"], "saturation_bounds": list(SATURATION),
        "flow": data["gradient_flow"],
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
    """Write the page atomically: a temporary file beside it, renamed over it when complete."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExplainError(f"cannot write {path}: {exc.strerror or exc}.") from None
