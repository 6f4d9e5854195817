"""`charrnn info` through the command line."""

import json

from charrnn.data import Vocab
from test_cli_sample import run, runs  # noqa: F401 (runs: a fixture)
from test_sampling import trained


def test_info_json(runs):
    result = run("info", "hello", "--format", "json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    model, vocab = trained()
    assert info["config"] == model.config.to_json()
    assert info["num_params"] == model.num_params and info["vocab_size"] == vocab.size
    assert info["chars"] == vocab.chars == " ,dehlorw"
    assert info["training"] == {"step": 250, "epoch": 3.5, "best_val_loss": 0.01, "time": 12.5}
    assert info["format_version"] == 1 and info["file_size"] == (runs / "hello" / "best.npz").stat().st_size


def test_info_table_escapes_control_characters(tmp_path):
    from charrnn import checkpoint
    from charrnn.model import CharRNN, ModelConfig

    vocab = Vocab("ab\n\t\x00[red]")
    model = CharRNN(ModelConfig(vocab_size=vocab.size, hidden_size=4, num_layers=1))
    path = tmp_path / "m.npz"
    checkpoint.save(path, checkpoint.Checkpoint(model=model, vocab=vocab,
                                                training=checkpoint.TrainingState(step=12, time=3725.0)))
    result = run("info", path)
    assert result.exit_code == 0, result.output
    assert "\\x00\\t\\n" in result.stdout and "[]abder" in result.stdout
    assert "1h 02m" in result.stdout and "12" in result.stdout


def test_info_says_which_state_it_describes_and_names_the_file_once(runs):
    """Issue 29, item 5: best.npz is not the run's end; the path is shown once."""
    from charrnn import checkpoint

    hello = runs / "hello"
    latest = checkpoint.load(hello / "best.npz")
    latest.training.step = 300
    checkpoint.save(hello / "latest.npz", latest)
    result = run("info", "hello")
    assert result.exit_code == 0, result.output
    words = " ".join(result.stdout.split())
    assert "describes the state with the lowest validation loss (step 250), not the run's " \
           "end (latest.npz, step 300; charrnn logs checkpoints/hello shows the whole run)" in words
    assert result.stderr == "" and words.count("best.npz") == 1
    newest = run("info", str(hello / "latest.npz"))
    assert "describes the run's newest saved step" in " ".join(newest.stdout.split())


def test_info_escapes_control_characters_in_the_path(tmp_path):
    from test_sampling import HELLO, save_checkpoint

    folder = tmp_path / "\x1b[31mred"
    folder.mkdir()
    ckpt = save_checkpoint(folder / "best.npz", HELLO)
    for args in (("info", ckpt), ("explain", ckpt, "--text", HELLO), ("logs", folder),
                 ("explain", folder / "missing.txt")):
        result = run(*args)
        assert "\x1b" not in result.output, (args, result.output)
        assert "\\x1b[31mred" in result.output, (args, result.output)
