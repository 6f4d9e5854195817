"""What `charrnn export` can write: its formats, and per format the cells it has code for.

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
        what = "JavaScript step" if fmt.startswith("web") else "ONNX nodes"
        raise ExportError(f"charrnn export --format {fmt} cannot export a {cell} model: the "
                          f"exporter has no {what} for that cell (it has {', '.join(known)}).")
