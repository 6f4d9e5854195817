"""The models a server holds: a checkpoint, its name, and the state after its context.

Every sample of a checkpoint made by `charrnn train` first reads the same context (see
`charrnn.sampling.sample_context`); a served model reads it once, at load, and each request
starts from a copy of that state, so that a request pays only for its own prompt.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charrnn import checkpoint, runs
from charrnn.blas import single_threaded_blas
from charrnn.errors import CharRNNError
from charrnn.sampling import warmup_ids
from charrnn.stepper import Stepper


@dataclass
class ServedModel:
    """One model behind the server. `warm` is the (state, logits) after reading the context
    (None without one); `stepper` a one-stream Stepper whose weights every stream shares."""

    name: str
    path: Path
    model: object  # CharRNN
    vocab: object  # Vocab
    context: str = ""
    created: int = 0  # the checkpoint's mtime, for /v1/models
    stepper: Stepper = field(init=False, repr=False)
    warm: tuple | None = field(init=False, repr=False)

    def __post_init__(self):
        self.stepper = Stepper(self.model, 1, per_stream=True)
        context_ids, _ = warmup_ids(self.vocab, "", "skip", self.context)
        self.warm = None
        if context_ids.size:
            with single_threaded_blas():  # as `charrnn sample` reads it: the same numbers
                for i in context_ids:
                    logits = self.stepper.step(np.array([i]))
            self.warm = (self.stepper.state, logits.copy())

    @property
    def banned(self):
        """The id never generated (U+FFFD, as in `sampling.generate`), or None."""
        return self.vocab.replacement if self.vocab.size > 1 else None

    def describe(self):
        """This model in OpenAI's /v1/models shape, with charrnn's own details."""
        c = self.model.config
        return {"id": self.name, "object": "model", "created": self.created,
                "owned_by": "charrnn", "cell": c.cell, "num_layers": c.num_layers,
                "hidden_size": c.hidden_size, "vocab_size": self.vocab.size,
                "chars": self.vocab.chars}


def load_models(targets, out_dir):
    """{name: ServedModel} for RUN|CKPT arguments; none: every run under `out_dir` that has a
    checkpoint. A run is named by its directory, a loose .npz by its file stem; two models of
    the same name raise CharRNNError."""
    if targets:
        paths = [runs.resolve_checkpoint(t, out_dir) for t in targets]
    else:
        paths = [runs.resolve_checkpoint(info.path, out_dir)
                 for info in runs.list_runs(out_dir) if info.has_checkpoint]
        if not paths:
            runs.newest_run(out_dir)  # raises the "no runs with a checkpoint in ..." error
    models = {}
    for path in paths:
        path = Path(path)
        run_dir = path.parent
        name = run_dir.name if runs.is_run_dir(run_dir) and path.name in runs.CHECKPOINT_NAMES \
            else path.stem
        if name in models:
            raise CharRNNError(f"two models would be called '{name}' ({models[name].path} and "
                               f"{path}); serve one of them, or rename a run.")
        ckpt = checkpoint.load(path)
        models[name] = ServedModel(
            name, path, ckpt.model, ckpt.vocab,
            context=ckpt.training.sample_context if ckpt.training else "",
            created=int(os.stat(path).st_mtime))
    return models
