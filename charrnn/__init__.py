"""charrnn: character-level recurrent networks (RNN, LSTM, GRU) trained with a numpy BPTT engine.

    import charrnn
    model = charrnn.load("checkpoints/shakespeare")     # a run directory or a .npz file
    print(model.sample(300, temperature=0.8, prime="ROMEO:", seed=1))

Submodules (and numpy) are imported on first use, so `import charrnn` stays light.
"""

from charrnn._version import __version__

__all__ = ["load", "resolve_checkpoint", "__version__"]


def resolve_checkpoint(target=None, out_dir=None):
    """The checkpoint file meant by `target`, as the commands read their RUN|CKPT argument.

    `out_dir` None means $CHARRNN_HOME, else ./checkpoints (as for the commands).
    None: the newest run under `out_dir` that has a checkpoint; an existing file: that file;
    otherwise a run directory or the name of a run under `out_dir`, whose best.npz (else
    latest.npz) is used. Raises RunError (a CharRNNError) when there is none.
    See `charrnn.runs.resolve_checkpoint`.
    """
    from charrnn import runs

    return runs.resolve_checkpoint(target, out_dir or runs.default_out_dir())


def load(path=None, out_dir=None):
    """Load a checkpoint for sampling: a `charrnn.sampling.LoadedModel`.

    `path` is a .npz checkpoint, a run directory (its best.npz, else latest.npz), a run name
    under `out_dir` (None: $CHARRNN_HOME, else ./checkpoints), or None for the newest run. The file is read without unpickling anything.
    The result has `.sample(length, temperature=, prime=, seed=, top_k=, top_p=) -> str`,
    `.generate(...)` yielding characters, `.vocab`, `.config`, `.model` and `.training`.
    """
    from charrnn import checkpoint
    from charrnn.sampling import LoadedModel

    ckpt_path = resolve_checkpoint(path, out_dir)
    ckpt = checkpoint.load(ckpt_path)
    return LoadedModel(ckpt.model, ckpt.vocab, ckpt.training, ckpt_path)
