"""`charrnn info`: a checkpoint's model, vocabulary and training state."""

import click

from charrnn.cli.base import (_CKPT_ARG, _FORMAT, _OUT_DIR, _echo_json, _load_checkpoint,
                              _print_fields)
from charrnn.config import show_option
from charrnn.units import fmt_loss


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

    path, ckpt = _load_checkpoint(target, out_dir)
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
        ("checkpoint", path),
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
