"""The web formats: a self-contained page (`--format web`) and a folder for embedding
(`--format web-dir`), both running `charrnn.js` over the checkpoint's weights.

The model travels as two parts, the same in both formats:
  model.json  format, charrnn version, the model config, the cell's bias names, the
              vocabulary (a list of characters in id order), the weights' dtype (float32, or
              float16 with --half), every tensor's name, shape and byte offset in model.bin,
              and what sampling reads: the training context fed before the prime, the start
              character's id, the id never generated (U+FFFD) and the default options
  model.bin   the parameters, little-endian, one after another, under their checkpoint names
              (layers.0.Wx, ..., head.b)
The single page embeds model.json as JSON in a <script type="application/json"> element and
model.bin as base64 text, so it makes no request at all (its Content-Security-Policy forbids
every fetch) and works from file://. The folder's index.html loads charrnn.js with a <script>
tag and fetches model.json and model.bin, which browsers allow from a web server but not
from file://: opened as a file it says so and names both ways out (serve the folder, or
export a single page). A float64 checkpoint is written as float32 (or float16).
"""

import base64
import html
import json
from importlib import resources

import numpy as np

from charrnn._version import __version__
from charrnn.config import DEFAULT_TEMPERATURE
from charrnn.export.output import check_dir_target, check_file_target, write_file, write_folder
from charrnn.sampling import prime_ids

FORMAT_VERSION = 1
DEFAULT_LENGTH = 500  # the page's default number of characters, as `charrnn sample -n`
SCRIPT = "charrnn.js"
# the single page may run its own inline code and nothing else; the folder's page may also
# load charrnn.js and fetch its model from the same server
CSP_PAGE = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"
CSP_DIR = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
           "connect-src 'self'")


def bundle(ckpt, half=False, name="model"):
    """(model.json as a dict, model.bin as bytes) of a checkpoint (see the module docstring)."""
    model, vocab, training = ckpt.model, ckpt.vocab, ckpt.training
    dtype = np.dtype("<f2" if half else "<f4")
    tensors, parts, offset = [], [], 0
    for key, value in model.params.items():
        data = np.ascontiguousarray(value, dtype=dtype).tobytes()
        tensors.append({"name": key, "shape": list(value.shape), "offset": offset})
        parts.append(data)
        offset += len(data)
    meta = {
        "format": "charrnn-web", "format_version": FORMAT_VERSION, "charrnn_version": __version__,
        "config": model.config.to_json(), "biases": list(model.cell.biases),
        "vocab": list(vocab.chars), "dtype": dtype.name, "tensors": tensors,
        "weights": "model.bin", "bytes": offset,
        "context": training.sample_context if training else "",
        "start": int(prime_ids(vocab, "")[0]),
        "banned": vocab.replacement if vocab.size > 1 else None,  # as sampling.generate
        "defaults": {"temperature": DEFAULT_TEMPERATURE, "length": DEFAULT_LENGTH},
        "about": {"name": name, "parameters": int(model.num_params),
                  "checkpoint_dtype": model.dtype.name,
                  "step": training.step if training else None,
                  "best_val_loss": training.best_val_loss if training else None},
    }
    return meta, b"".join(parts)


def _script_json(obj):
    """JSON that is safe inside a <script> element: ASCII only, no <, > or &."""
    text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def script():
    """The source of charrnn.js."""
    return resources.files("charrnn.export").joinpath(SCRIPT).read_text("utf-8")


def render(meta, scripts, source, csp):
    """The page (a str): page.html around `scripts` (HTML), loading the model from `source`
    ("embedded", or the URL of model.json)."""
    template = resources.files("charrnn.export").joinpath("page.html").read_text("utf-8")
    title = f"charrnn: {meta['about']['name']}"
    return (template.replace("__CHARRNN_CSP__", csp)
            .replace("__CHARRNN_TITLE__", html.escape(title))
            .replace("__CHARRNN_SOURCE__", html.escape(source))
            .replace("__CHARRNN_SCRIPTS__", scripts))


def page(ckpt, half=False, name="model"):
    """The single self-contained page of a checkpoint, as a str."""
    meta, data = bundle(ckpt, half, name)
    code = script().replace("</script", "<\\/script")  # it has none; a guard all the same
    scripts = (f'<script type="application/json" id="charrnn-model">{_script_json(meta)}</script>\n'
               f'<script type="text/plain" id="charrnn-weights">'
               f'{base64.b64encode(data).decode("ascii")}</script>\n<script>\n{code}</script>')
    return render(meta, scripts, "embedded", CSP_PAGE)


def write_page(path, ckpt, half=False, name="model"):
    """Write `page(...)` to `path` atomically ("-": stdout); returns the bytes written."""
    check_file_target(path)
    return write_file(path, page(ckpt, half, name).encode("utf-8"), "page")


def write_dir(path, ckpt, half=False, name="model"):
    """Write index.html, charrnn.js, model.json and model.bin into the folder `path`;
    returns the bytes written."""
    check_dir_target(path)
    meta, data = bundle(ckpt, half, name)
    index = render(meta, f'<script src="{SCRIPT}"></script>', "model.json", CSP_DIR)
    return write_folder(path, {
        SCRIPT: script().encode("utf-8"), "model.bin": data,
        "model.json": (json.dumps(meta, ensure_ascii=False, indent=1) + "\n").encode("utf-8"),
        "index.html": index.encode("utf-8")})
