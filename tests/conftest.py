import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True, scope="session")
def _speed_cache(tmp_path_factory):
    """`--engine auto`'s measured speeds go to a cache of this session's, not the user's
    (~/.cache/charrnn): shared by the tests, so a shape is measured once per session."""
    import os

    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(autouse=True)
def _restore_sigint():
    """Every test starts with Python's own Ctrl-C handler: an interrupted `charrnn train` run
    in-process (CliRunner) deliberately leaves SIGINT ignored until its process exits."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, signal.default_int_handler)
