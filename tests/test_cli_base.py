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


def test_every_train_option_defaults_to_train_config():
    """The options of `charrnn train` are TrainConfig's fields with TrainConfig's defaults
    (and the few that are not training options)."""
    from dataclasses import fields

    from charrnn.cli import train_command
    from charrnn.config import TrainConfig

    config = {f.name: f.default for f in fields(TrainConfig)}
    options = {p.name: p.default for p in train_command.params if p.name in config}
    assert options == {name: config[name] for name in options}
    others = {p.name for p in train_command.params} - set(config)
    # engine, device and processes (--nproc-per-node) are the session's choice, not the run's:
    # a resume may change them
    assert others == {"corpus", "out_dir", "name", "resume", "init_from", "encoding", "quiet",
                      "engine", "device", "processes"}
    unexposed = set(config) - set(options)  # internal knobs, not on the command line
    assert unexposed == {"val_max_chars", "min_lr_ratio", "sample_length", "log_every"}


def test_train_choices_come_from_the_config_and_the_cell_table(monkeypatch):
    from charrnn import cells
    from charrnn.cli import train_command
    from charrnn.config import DTYPES, LR_SCHEDULES, OPTIMIZERS, SIZES
    from charrnn.engines import ENGINES

    choices = {p.name: tuple(p.type.choices) for p in train_command.params
               if hasattr(p.type, "choices")}
    assert choices == {"cell": tuple(cells.CELLS), "dtype": DTYPES, "optimizer": OPTIMIZERS,
                       "lr_schedule": LR_SCHEDULES, "size": SIZES, "engine": ENGINES}
    toy = cells.Cell("toy", gates=("a",), sigmoid_gates=0, states=("h",), biases=("b",),
                     fuse_input=True, module="charrnn.cells.rnn", summary="a test row")
    monkeypatch.setitem(cells.CELLS, "toy", toy)  # registered after the CLI was built
    help_text = CliRunner().invoke(cli, ["train", "--help"]).stdout
    assert f"[{'|'.join(cells.CELLS)}]" in help_text and "|rnn|" in help_text and "|toy]" in help_text
    cell = next(p for p in train_command.params if p.name == "cell")
    assert cell.type.convert("toy", cell, None) == "toy"
    refused = CliRunner().invoke(cli, ["train", "--cell", "transformer"])
    assert refused.exit_code == 2 and "'toy'" in refused.stderr


def test_help_does_not_import_numpy():
    """`charrnn --help` and each command's --help stay fast: numpy is never imported."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    code = ("import sys\nfrom charrnn.cli import cli\ntry:\n    cli(sys.argv[1:])\n"
            "except SystemExit:\n    pass\nprint('numpy' in sys.modules)")
    for args in (["--help"], ["train", "--help"], ["sample", "--help"], ["info", "--help"]):
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                              text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "Usage:" in done.stdout and done.stdout.rstrip().endswith("False"), args


# ----------------------------------------------------------------------------- issue 29: messages


def _invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def test_a_path_too_long_is_blamed_on_the_path_not_on_stdout(tmp_path):
    """Item 23: only stdout's own errors say stdout."""
    from test_sampling import HELLO, save_checkpoint

    ckpt = save_checkpoint(tmp_path / "hello.npz", HELLO, cell="gru")
    text = tmp_path / "hello.txt"
    text.write_text(HELLO * 5)
    long_name, long_path = "a" * 300, "/tmp/" + "b" * 200 + "/" + "c" * 4000
    for args in (("info", long_name), ("logs", long_name), ("sample", long_path),
                 ("explain", ckpt, text, "--html", long_name + ".html"),
                 ("train", text, "--out-dir", long_path, "--max-steps", 1)):
        result = _invoke(*args, "--out-dir", tmp_path) if args[0] in ("info", "logs") \
            else _invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "stdout" not in result.stderr, (args, result.stderr)
        assert "File name too long" in result.stderr and result.stderr.count("\n") == 1, \
            (args, result.stderr)
        assert len(result.stderr) < 200  # the path is shortened, not printed whole


def test_completion_run_by_hand_is_one_line():
    """Item 21: without COMP_WORDS and COMP_CWORD, one line instead of click's KeyError."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k not in ("COMP_WORDS", "COMP_CWORD")}
    env.update(_CHARRNN_COMPLETE="bash_complete", PYTHONPATH=str(Path(__file__).parents[1]))
    result = subprocess.run([sys.executable, "-m", "charrnn"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "COMP_WORDS" in result.stderr, result.stderr
    assert "bash_source" in result.stderr and "Traceback" not in result.stderr


def test_a_lone_surrogate_stop_text_is_refused_as_a_stop_text(tmp_path):
    """Item 25: the stop text itself is refused, not stdout's encoding."""
    from test_sampling import HELLO, save_checkpoint

    ckpt = save_checkpoint(tmp_path / "hello.npz", HELLO, cell="gru")
    for fmt in ("text", "jsonl"):
        result = _invoke("sample", ckpt, "--stop", "\\uD800", "-n", 5, "--format", fmt)
        assert result.exit_code == 1
        assert result.stderr.startswith("Error: --stop: ") and "lone surrogate" in result.stderr
        assert "stdout" not in result.stderr and result.stderr.count("\n") == 1
