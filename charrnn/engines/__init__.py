"""Optional engines beside the numpy one (`charrnn.engine`): the PyTorch engine and what it
needs, and `auto`, which picks one. Only `layout`, `auto` and `distributed`'s environment
helpers import without PyTorch; `torch` and `torch_optim` are imported through
`auto.load_torch` when an engine needs them.
"""

from charrnn.errors import CharRNNError

ENGINES = ("auto", "numpy", "torch")  # the --engine choices; auto the default (`auto`),
# numpy always there
DEVICES = "auto|cpu|cuda|cuda:N|mps"  # the --device forms (`engines.torch.resolve_device`)


class EngineBase:
    """What every engine shares: its dropout generator's state as checkpoints keep it
    (`self.rng`, a numpy Generator) and its optimizer's description (`self.optimizer`)."""

    @property
    def rng_state(self):
        return self.rng.bit_generator.state

    @rng_state.setter
    def rng_state(self, value):
        try:
            self.rng.bit_generator.state = value
        except (TypeError, ValueError, KeyError):
            raise CharRNNError("cannot resume: the checkpoint's random generator state is "
                               "damaged.") from None

    def optimizer_info(self):
        return self.optimizer.hyperparams()
