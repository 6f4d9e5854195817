"""`charrnn eval`: a checkpoint's score on a text file."""

import os
import sys

import click

from charrnn.cli.base import (_FORMAT, _OUT_DIR, _complete_runs, _echo_json, _load_checkpoint,
                              _print_fields)
from charrnn.units import DIGITS

DEFAULT_WINDOWS = 12_800  # --count: nanoGPT's evaluation, 200 batches of 64 windows


@click.command("eval")
@click.argument("paths", nargs=-1, metavar="[RUN|CKPT] FILE", shell_complete=_complete_runs)
@click.option("--encoding", default="utf-8", help="Text encoding of FILE.")
@click.option("--windows", "window_length", type=click.IntRange(min=1), default=None,
              metavar="T", help="Also score random windows of T characters, each read from the "
              "zero state (nanoGPT's protocol: 256).")
@click.option("--count", type=click.IntRange(min=1), default=None,
              show_default=f"{DEFAULT_WINDOWS:,}",
              help="How many windows --windows scores (nanoGPT's: 200 batches of 64).")
@click.option("--seed", type=click.IntRange(min=0), default=None, show_default="0",
              help="Seed of the windows' random starts.")
@_FORMAT
@_OUT_DIR
def eval_command(paths, encoding, fmt, out_dir, window_length, count, seed):
    """Score a checkpoint on a text file, in nats and bits per character.

    The perplexity and the number of characters scored are shown too. RUN|CKPT as for
    `charrnn sample` (default: the newest run). The whole file is one stream: each character
    is predicted from all the text before it, the state carried through.
    Characters the model does not know are skipped, counted and reported; a model trained with
    --min-count or --max-vocab reads them as its U+FFFD instead. Ctrl-C stops early and shows
    the score of the text read so far, marked partial (exit 130).

    --windows T adds the score a transformer reports: the mean over --count windows at random
    starts (--seed), each reading T characters from the zero state and predicting the next
    T, so that early positions have little context (higher than the full pass).

    \b
    Examples:
      charrnn eval test.txt                           the newest run
      charrnn eval shakespeare test.txt --format json
      charrnn eval checkpoints/shakespeare/latest.npz test.txt
      charrnn eval shakespeare test.txt --windows 256 --count 12800
    """
    if len(paths) not in (1, 2):
        raise click.UsageError("give FILE, or RUN|CKPT and FILE.")
    if len(paths) == 1 and _names_a_checkpoint(paths[0], out_dir):
        raise click.UsageError(f"{paths[0]} is a run or checkpoint: give the text file to score "
                               f"after it, e.g. charrnn eval {paths[0]} test.txt.")
    if window_length is None and (count, seed) != (None, None):
        raise click.UsageError("--count and --seed choose the windows of --windows T: give it "
                               "too.")
    from tqdm import tqdm

    from charrnn.data import format_chars, read_text
    from charrnn.scoring import check_windows, encode_for_scoring, score_text, score_text_windows

    target, file = (None, *paths) if len(paths) == 1 else paths
    path, ckpt = _load_checkpoint(target, out_dir)
    text = read_text(file, encoding)
    encoded = encode_for_scoring(ckpt.vocab, text)
    count, seed = count or DEFAULT_WINDOWS, seed or 0
    to_read = max(encoded.ids.size - 1, 0)
    if window_length is not None:
        check_windows(encoded.ids.size, window_length, count)  # before the full pass, not after
        to_read += window_length * count
    windows, cut = None, False  # cut: Ctrl-C before the first chunk of windows was scored
    with tqdm(total=to_read, unit="char", unit_scale=True, leave=False, dynamic_ncols=True,
              file=sys.stderr, disable=None) as bar:
        result = score_text(ckpt.model, ckpt.vocab, text, encoded, progress=bar.update)
        if window_length is not None and not result.partial:
            try:
                windows = score_text_windows(ckpt.model, encoded.ids, window_length, count,
                                             seed, progress=bar.update)
            except KeyboardInterrupt:
                cut = True  # the full pass is still shown
    partial = result.partial or cut or (windows is not None and windows.partial)
    if fmt == "json":
        _echo_json({"checkpoint": str(path), "file": str(file), **result.to_json(),
                    "windows": windows and windows.to_json()})
        _exit_if_interrupted(partial)
        return
    replace = ckpt.vocab.replacement is not None  # U+FFFD stands for the characters it lacks
    left_out = f"{result.chars_replaced if replace else result.chars_skipped:,}"
    if result.unknown_chars:
        shown = format_chars(result.unknown_chars, 40, quoted=False)
        left_out += f" (unknown to the model: {shown})"
    _print_fields([
        ("checkpoint", path), ("file", file),
        ("nats/char", f"{result.nats_per_char:.{DIGITS}f}"),
        ("bits/char", f"{result.bits_per_char:.{DIGITS}f}"),
        ("perplexity", f"{result.perplexity:.3f}"),
        ("scored", f"{result.chars_scored:,} characters"
                   + (f" of {result.chars_to_score:,}: partial, interrupted"
                      if result.partial else "")),
        ("read as U+FFFD" if replace else "skipped", left_out),
        *(_windows_rows(windows) if windows else []),
        *([("windows", "none scored: interrupted")] if cut else []),
    ])
    _exit_if_interrupted(partial)


def _windows_rows(windows):
    """The table's rows for a `WindowScore`: its score, then which windows."""
    done = windows.chars_scored // windows.length
    which = (f"{windows.count:,} windows of {windows.length:,} characters from the zero state, "
             f"at random (seed {windows.seed})")
    if windows.partial:
        which += f"; {done:,} scored: partial, interrupted"
    return [("windows", f"{windows.nats_per_char:.{DIGITS}f} nats/char, "
                        f"{windows.bits_per_char:.{DIGITS}f} bits/char"), ("", which)]


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
