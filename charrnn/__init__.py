"""charrnn: character-level recurrent networks (RNN, LSTM, GRU) trained with a numpy BPTT engine."""

__version__ = "0.1.0"
