"""What every engine shares (the engine protocol itself is written in `charrnn.engines`)."""

from charrnn.errors import CharRNNError


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
