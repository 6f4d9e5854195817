"""`charrnn export`: a trained model outside Python, read from its checkpoint alone (no torch).

    web      one self-contained HTML page that writes in the browser (`web.py`, with the
             JavaScript of `charrnn.js` and the template `page.html`), offline from file://
    web-dir  the same as index.html, charrnn.js, model.json and model.bin, for people who put
             the model in their own page
    onnx     a one-step ONNX graph, ids and state in, logits and next state out (`onnx.py`)

A format computes each cell with code of its own (a JavaScript step function, ONNX nodes).
`REGISTRY` lists, per format, the cells it has that code for; `check_cell` refuses any other
cell of the table up front, in one sentence, so that a cell added to the table without its
exporter code never gets a page or a graph that computes something else.
"""

from charrnn.errors import CharRNNError

FORMATS = ("web", "web-dir", "onnx")


class ExportError(CharRNNError):
    """A model that cannot be exported, or an output that cannot be written."""


# format -> the cells it can compute, and what computes them there: charrnn.js's STEPS (the
# tests hold the two equal) and onnx.py's LAYERS
REGISTRY = {
    "web": {"lstm": "stepLSTM", "gru": "stepGRU", "rnn": "stepRNN"},
    "onnx": {"lstm": "lstm_layer", "gru": "gru_layer", "rnn": "rnn_layer"},
}
REGISTRY["web-dir"] = REGISTRY["web"]


def check_cell(cell, fmt):
    """ExportError unless format `fmt` can compute cell `cell` (a name of the cell table)."""
    known = REGISTRY[fmt]
    if cell not in known:
        what = "a JavaScript step" if fmt.startswith("web") else "ONNX nodes"
        raise ExportError(f"charrnn export --format {fmt} cannot export a {cell} model: the "
                          f"exporter has no {what} for that cell (it has {', '.join(known)}).")


def export(ckpt, fmt, out, half=False, name="model"):
    """Write checkpoint `ckpt` (a `checkpoint.Checkpoint`) in format `fmt` to `out` (a path, or
    "-" for stdout with web and onnx). `half`: float16 weights (web formats only). `name`
    labels the model on the page. Returns the number of bytes written."""
    check_cell(ckpt.config.cell, fmt)
    if fmt == "onnx":
        if half:
            raise ExportError("--half applies to the web formats; an ONNX graph keeps float32 "
                              "weights.")
        from charrnn.export import onnx as onnx_export
        from charrnn.export.output import write_file

        return write_file(out, onnx_export.build(ckpt).SerializeToString())
    from charrnn.export import web

    if fmt == "web":
        return web.write_page(out, ckpt, half, name)
    return web.write_dir(out, ckpt, half, name)
