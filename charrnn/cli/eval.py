"""`charrnn eval`: a checkpoint's score on a text file."""

import os
import sys

import click

from charrnn.cli.base import (_FORMAT, _OUT_DIR, _complete_runs, _echo_json, _load_checkpoint,
                              _print_fields)


@click.command("eval")
@click.argument("paths", nargs=-1, metavar="[RUN|CKPT] FILE", shell_complete=_complete_runs)
@click.option("--encoding", default="utf-8", help="Text encoding of FILE.")
@_FORMAT
@_OUT_DIR
def eval_command(paths, encoding, fmt, out_dir):
    """Score a checkpoint on a text file, in nats and bits per character.

    The perplexity and the number of characters scored are shown too. RUN|CKPT as for
    `charrnn sample` (default: the newest run). The whole file is one stream: each character
    is predicted from all the text before it, the state carried through.
    Characters the model does not know are skipped, counted and reported; a model trained with
    --min-count or --max-vocab reads them as its U+FFFD instead. Ctrl-C stops early and shows
    the score of the text read so far, marked partial (exit 130).

    \b
    Examples:
      charrnn eval test.txt                           the newest run
      charrnn eval shakespeare test.txt --format json
      charrnn eval checkpoints/shakespeare/latest.npz test.txt
    """
    if len(paths) not in (1, 2):
        raise click.UsageError("give FILE, or RUN|CKPT and FILE.")
    if len(paths) == 1 and _names_a_checkpoint(paths[0], out_dir):
        raise click.UsageError(f"{paths[0]} is a run or checkpoint: give the text file to score "
                               f"after it, e.g. charrnn eval {paths[0]} test.txt.")
    import math

    import numpy as np
    from tqdm import tqdm

    from charrnn.data import REPLACEMENT, format_chars, read_text
    from charrnn.scoring import score_steps

    target, file = (None, *paths) if len(paths) == 1 else paths
    path, ckpt = _load_checkpoint(target, out_dir)
    text = read_text(file, encoding)
    vocab = ckpt.vocab
    replace = vocab.replacement is not None  # U+FFFD stands for the characters it lacks
    ids = vocab.encode(text, unknown="replace" if replace else "skip")
    replaced = 0  # occurrences of unknown characters read as U+FFFD
    if replace:
        replaced = int(np.count_nonzero(ids == vocab.replacement)) - text.count(REPLACEMENT)
    unknown = vocab.unknown_chars(text) if ids.size < len(text) or replaced else ""
    total = scored = 0
    try:
        with tqdm(total=max(ids.size - 1, 0), unit="char", unit_scale=True, leave=False,
                  dynamic_ncols=True, file=sys.stderr, disable=None) as bar:
            for total, done in score_steps(ckpt.model, ids):
                bar.update(done - scored)
                scored = done
    except KeyboardInterrupt:
        if not scored:
            raise
    partial = scored < ids.size - 1
    nats = total / scored
    result = {
        "checkpoint": str(path),
        "file": str(file),
        "nats_per_char": nats,
        "bits_per_char": nats / math.log(2),
        "perplexity": math.exp(nats),
        "chars_scored": scored,
        "chars_skipped": len(text) - ids.size,
        "chars_replaced": replaced,
        "unknown_chars": unknown,
        "partial": partial,  # interrupted: the scores of the first chars_scored characters
    }
    if fmt == "json":
        _echo_json(result)
        _exit_if_interrupted(partial)
        return
    left_out = f"{replaced if replace else result['chars_skipped']:,}"
    if unknown:
        left_out += f" (unknown to the model: {format_chars(unknown, 40, quoted=False)})"
    _print_fields([
        ("checkpoint", path), ("file", file),
        ("nats/char", f"{nats:.4f}"), ("bits/char", f"{result['bits_per_char']:.4f}"),
        ("perplexity", f"{result['perplexity']:.3f}"),
        ("scored", f"{scored:,} characters"
                   + (f" of {ids.size - 1:,}: partial, interrupted" if partial else "")),
        ("read as U+FFFD" if replace else "skipped", left_out),
    ])
    _exit_if_interrupted(partial)


def _names_a_checkpoint(arg, out_dir):
    """Whether `arg` (eval's only argument) means a checkpoint rather than a text file: a .npz,
    a directory, or the name of a run under --out-dir."""
    from charrnn import runs

    return (arg.endswith(".npz") or os.path.isdir(arg)
            or (not os.path.exists(arg) and runs.is_run_dir(os.path.join(out_dir, arg))))


def _exit_if_interrupted(partial):
    """Exit 130 (Ctrl-C) after an interrupted evaluation has shown its partial result."""
    if partial:
        click.get_current_context().exit(130)
