"""The units a model's loss is shown in: nats per character (natural log, what training
minimises and the log records) and bits per character (log base 2). Every message and field
that shows a loss shows it with `DIGITS` decimals, nats and bits alike; the compact run table
and run panel of `charrnn logs` round both to 3 (`ui.fmt_float`). Numpy-free.
"""

import math

DIGITS = 4  # decimals of every loss shown, in nats or bits


def bits(nats):
    """A loss in nats per character as bits per character."""
    return nats / math.log(2)


def fmt_loss(nats):
    """'1.2345 nats/char (1.7810 bits/char)': a loss as the commands show it."""
    return f"{nats:.{DIGITS}f} nats/char ({bits(nats):.{DIGITS}f} bits/char)"
