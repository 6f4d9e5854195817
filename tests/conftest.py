import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _restore_sigint():
    """Every test starts with Python's own Ctrl-C handler: an interrupted `charrnn train` run
    in-process (CliRunner) deliberately leaves SIGINT ignored until its process exits."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, signal.default_int_handler)
