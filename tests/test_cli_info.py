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
