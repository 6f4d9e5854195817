"""The command-line group itself: help and version."""

from click.testing import CliRunner

from charrnn import __version__
from charrnn.cli import cli


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_help_short_and_long():
    for flag in ("-h", "--help"):
        result = CliRunner().invoke(cli, [flag])
        assert result.exit_code == 0
        assert "Usage: cli" in result.stdout or "Usage: charrnn" in result.stdout
        assert "train" in result.stdout
