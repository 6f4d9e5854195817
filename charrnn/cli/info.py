"""`charrnn info`: a checkpoint's model, vocabulary and training state."""

import click

from charrnn.cli.base import (_CKPT_ARG, _FORMAT, _OUT_DIR, _echo_json, _load_checkpoint,
                              _print_fields)
from charrnn.config import show_option
from charrnn.terminal import shown_path
from charrnn.units import fmt_loss


def _describes(path, training):
    """Which state of its run a checkpoint holds, so that its numbers are not taken for the
    run's end (what `charrnn logs` shows): best.npz is the lowest validation loss, latest.npz
    the newest step; None for any other file."""
    from charrnn import checkpoint
    from charrnn.errors import CharRNNError
    from charrnn.runs import BEST_NAME, LATEST_NAME

    if path.name == LATEST_NAME:
        return (f"the run's newest saved step (charrnn logs {shown_path(path.parent)} shows "
                "the whole run)")
    if path.name != BEST_NAME:
        return None
    latest = path.parent / LATEST_NAME
    try:
        newest = checkpoint.read_training(latest) if latest.is_file() else None
    except CharRNNError:
        newest = None
    end = f", step {newest.step:,}" if newest is not None and newest.step is not None else ""
    at = f" (step {training['step']:,})" if training.get("step") is not None else ""
    return (f"the state with the lowest validation loss{at}, not the run's end ({LATEST_NAME}"
            f"{end}; charrnn logs {shown_path(path.parent)} shows the whole run)")


@click.command("info")
@_CKPT_ARG
@_FORMAT
@_OUT_DIR
def info_command(target, fmt, out_dir):
    """Show a checkpoint's model, vocabulary and training state.

    The model's config and parameter count, the file's format, the characters it knows,
    and the steps, epochs, time, best validation loss and training options of its run.
    RUN|CKPT as for `charrnn sample` (default: the newest run).

    \b
    Examples:
      charrnn info                                    the newest run
      charrnn info shakespeare --format json
      charrnn info checkpoints/shakespeare/latest.npz
    """
    from charrnn import checkpoint, ui
    from charrnn.data import format_chars

    path, ckpt = _load_checkpoint(target, out_dir, announce=False)  # its table names it
    meta = checkpoint.read_meta(path)
    training = ckpt.training.summary() if ckpt.training else {}  # none: a bare model
    info = {
        "checkpoint": str(path),
        "file_size": path.stat().st_size,
        "format_version": meta.get("format_version"),
        "charrnn_version": meta.get("charrnn_version"),
        "config": ckpt.config.to_json(),
        "dtype": ckpt.model.dtype.name,
        "num_params": int(ckpt.model.num_params),
        "vocab_size": ckpt.vocab.size,
        "chars": ckpt.vocab.chars,
        "training": training,
    }
    if fmt == "json":
        _echo_json(info)
        return
    c, best, measured = ckpt.config, training.get("best_val_loss"), training.get("val_loss")
    fields = [
        ("checkpoint", shown_path(path)),
        *([("describes", what)] if (what := _describes(path, training)) else []),
        ("file", f"{ui.fmt_count(info['file_size'])}B, format {info['format_version']}, "
                 f"written by charrnn {info['charrnn_version']}"),
        ("model", f"{c.cell}, {c.num_layers} layer(s) x {c.hidden_size} units, "
                  f"dropout {c.dropout:g}, {info['dtype']}"),
        ("parameters", f"{info['num_params']:,}"),
        ("vocabulary", f"{ckpt.vocab.size} characters"),
        ("characters", format_chars(ckpt.vocab.chars, quoted=False)),
        ("steps", ui.fmt_int(training.get("step"))),
        ("epochs", ui.fmt_float(training.get("epoch"), 2)),
        ("best val loss", "-" if best is None else fmt_loss(best)),
        ("val loss", "-" if measured is None else
         f"{fmt_loss(measured)} at step {ui.fmt_int(training.get('step'))}, these weights"),
        ("training time", ui.fmt_duration(training.get("time"))),
    ]
    if "train_config" in training:
        options = {**training["train_config"], "learning_rate": training["learning_rate"]}
        fields.append(("train config", ", ".join(f"{k}={show_option(k, v)}"
                                                 for k, v in options.items())))
    _print_fields(fields)
