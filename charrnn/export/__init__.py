"""`charrnn export`: a trained model outside Python, read from its checkpoint alone (no torch).

    web      one self-contained HTML page that writes in the browser (`web.py`, with the
             JavaScript of `charrnn.js` and the template `page.html`), offline from file://
    web-dir  the same as index.html, charrnn.js, model.json and model.bin, for people who put
             the model in their own page
    onnx     a one-step ONNX graph, ids and state in, logits and next state out (`onnx.py`)

`registry.py` says which cells each format can compute, and refuses the others up front;
`output.py` writes files, folders and stdout without ever leaving half of one.
"""

from charrnn.export.registry import FORMATS, REGISTRY, ExportError, check_cell

__all__ = ["FORMATS", "REGISTRY", "ExportError", "check_cell", "export"]


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

        return write_file(out, onnx_export.build(ckpt).SerializeToString(), "ONNX graph")
    from charrnn.export import web

    if fmt == "web":
        return web.write_page(out, ckpt, half, name)
    return web.write_dir(out, ckpt, half, name)
