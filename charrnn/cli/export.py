"""`charrnn export`: write a model for use outside charrnn (a web page, a folder of files for
your own page, an ONNX graph). Parses options and calls `charrnn.export`, nothing more.
"""

import sys

import click

from charrnn.cli.base import _CKPT_ARG, _OUT_DIR, _load_checkpoint
from charrnn.export import FORMATS


@click.command("export")
@_CKPT_ARG
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True,
              help="web: one HTML file that writes in the browser, offline; web-dir: a "
                   "folder (index.html, charrnn.js, model.json, model.bin) for your own "
                   "page; onnx: a one-step ONNX graph.")
@click.option("-o", "--output", "out", required=True, metavar="PATH",
              help="The file to write (a folder for web-dir); - writes web or onnx to "
                   "stdout.")
@click.option("--half", is_flag=True,
              help="Store the weights as float16: half the size (web formats).")
@_OUT_DIR
def export_command(target, fmt, out, half, out_dir):
    """Write a model for use outside charrnn: a web page, files to embed, or ONNX.

    RUN|CKPT as for `charrnn sample` (default: the newest run). Only the checkpoint is
    read (no PyTorch needed, whichever engine trained it). The page generates text in the
    browser with no server and no network, from file:// or any static host; its
    JavaScript API is charrnn.generate({prime, length, temperature, topK, topP, seed})
    and charrnn.next(text). The ONNX graph takes ids [N] and state [L, S, N, H] and gives
    logits [N, V] and next_state; its metadata holds the vocabulary and the config.

    \b
    Examples:
      charrnn export shakespeare --format web -o shakespeare.html
      charrnn export shakespeare --format web -o small.html --half
      charrnn export shakespeare --format web-dir -o site/model
      charrnn export shakespeare --format onnx -o shakespeare.onnx
    """
    from charrnn import export
    from charrnn.export import onnx as onnx_export
    from charrnn.export import output

    if half and fmt == "onnx":
        raise click.UsageError("--half applies to --format web and web-dir; an ONNX graph "
                               "keeps float32 weights.")
    if out == output.STDOUT and fmt == "web-dir":
        raise click.UsageError("--format web-dir writes a folder; give its path with -o.")
    if out == output.STDOUT and fmt == "onnx" and sys.stdout.isatty():
        raise click.UsageError("refusing to write a binary ONNX file to the terminal; "
                               "redirect stdout or give -o FILE.")
    check = output.check_dir_target if fmt == "web-dir" else output.check_file_target
    check(out)  # before any work
    path, ckpt = _load_checkpoint(target, out_dir)
    export.check_cell(ckpt.config.cell, fmt)
    if fmt == "onnx":
        onnx_export.require()  # the install hint before the work
    written = export.export(ckpt, fmt, out, half, name=f"{path.parent.name}/{path.name}")
    where = "stdout" if out == output.STDOUT else out
    click.echo(f"wrote {where} ({written / 1e6:,.2f} MB)", err=True)

