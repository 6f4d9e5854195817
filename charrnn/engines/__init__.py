"""Optional engines beside the numpy one (`charrnn.engine`): the PyTorch engine and what it
needs. Only `layout` and `distributed`'s environment helpers import without PyTorch; `torch`
and `torch_optim` are imported by `charrnn.engine.make_engine` when `--engine torch` asks.
"""

ENGINES = ("numpy", "torch")  # the --engine choices; numpy is the default and always there
DEVICES = "auto|cpu|cuda|cuda:N|mps"  # the --device forms (`engines.torch.resolve_device`)
