"""Optional engines beside the numpy one (`charrnn.engine`): the PyTorch engine and what it
needs. Only `layout` and `distributed`'s environment helpers import without PyTorch; `torch`
and `torch_optim` are imported by `charrnn.engine.make_engine` when `--engine torch` asks.
"""

from charrnn.errors import CharRNNError

ENGINES = ("numpy", "torch")  # the --engine choices; numpy is the default and always there
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
