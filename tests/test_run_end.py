"""How a session ends: its last step's validation loss measured (done line, log, logs, info,
best.npz), and option changes on resume that become the run's only once they trained."""

import json

from click.testing import CliRunner

from charrnn.cli import cli
from helpers.train_helpers import TINY, events, load, make_corpus, train


def run_cli(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


def test_a_run_shorter_than_eval_every_ends_with_its_validation_loss(tmp_path):
    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    result = train(corpus, *TINY, "--seed", 3, "--max-steps", 7, "--eval-every", 200,
                   "--out-dir", out, "--name", "short")
    assert result.exit_code == 0, result.stderr
    final = events(out / "short", "eval")
    assert [(r["step"], r["final"]) for r in final] == [(7, True)]
    val = final[0]["val_loss"]
    end = events(out / "short", "end")[-1]
    assert end["val_loss"] == val and end["best_val_loss"] is None  # no scheduled evaluation
    done = next(line for line in result.stderr.splitlines() if line.startswith("done"))
    assert f"validation loss {val:.4f} nats/char" in done
    best = load(out / "short" / "best.npz").training
    assert (best.step, best.val_loss) == (7, val)
    assert load(out / "short" / "latest.npz").training.val_loss == val

    info = json.loads(run_cli("info", "short", "--out-dir", out, "--format", "json").stdout)
    assert info["checkpoint"].endswith("best.npz") and info["training"]["val_loss"] == val
    assert f"{val:.4f} nats/char" in run_cli("info", "short", "--out-dir", out).stdout
    [summary] = json.loads(run_cli("logs", "--out-dir", out, "--format", "json").stdout)
    assert (summary["last_val_loss"], summary["last_val_step"]) == (val, 7)
    records = json.loads(run_cli("logs", "short", "--out-dir", out, "--format", "json").stdout)
    assert [(r["step"], r["val_loss"], r["final"]) for r in records if r["event"] == "eval"] \
        == [(7, val, True)]
    assert ",final" in run_cli("logs", "short", "--out-dir", out, "--format", "csv").stdout
    assert f"{val:.3f} nats/char" in run_cli("logs", "short", "--out-dir", out).stdout
    assert "using" in run_cli("sample", "short", "--out-dir", out, "-n", 5).stderr


def test_a_run_ending_on_an_eval_step_is_not_evaluated_twice(tmp_path):
    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    assert train(corpus, *TINY, "--seed", 3, "--max-steps", 6, "--eval-every", 3, "-q",
                 "--out-dir", out, "--name", "r").exit_code == 0
    assert [(r["step"], r.get("final")) for r in events(out / "r", "eval")] == \
        [(3, None), (6, None)]
    assert events(out / "r", "end")[-1]["val_loss"] == events(out / "r", "eval")[-1]["val_loss"]


def test_a_final_evaluation_better_than_the_best_leaves_best_npz_to_the_schedule(tmp_path):
    """best.npz stays the scheduled evaluations' best (what a resumed run continues from); the
    end's measurement is logged and shown beside it."""
    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    result = train(corpus, *TINY, "--seed", 3, "--max-steps", 22, "--eval-every", 5,
                   "--learning-rate", 0.02, "--lr-schedule", "constant", "--out-dir", out,
                   "--name", "r")
    assert result.exit_code == 0, result.stderr
    result = train("--resume", out / "r", "--max-steps", 27, "--engine", "numpy", "-q")
    assert result.exit_code == 0, result.stderr
    evals = events(out / "r", "eval")
    assert [(r["step"], r.get("final")) for r in evals] == \
        [(5, None), (10, None), (15, None), (20, None), (22, True), (25, None), (27, True)]
    scheduled = [r for r in evals if not r.get("final")]
    best = min(scheduled, key=lambda r: r["val_loss"])
    assert load(out / "r" / "best.npz").training.step == best["step"]
    assert all(r["best_val_loss"] == best["val_loss"] for r in evals if r["step"] >= 25)
    # `logs` names best.npz's evaluation as the best, and the end's as the last
    [summary] = json.loads(run_cli("logs", "--out-dir", out, "--format", "json").stdout)
    assert (summary["best_val_loss"], summary["best_val_step"]) == (best["val_loss"],
                                                                    best["step"])
    assert (summary["last_val_loss"], summary["last_val_step"]) == (evals[-1]["val_loss"], 27)


def test_no_validation_split_says_so(tmp_path):
    corpus = make_corpus(tmp_path / "c.txt")
    result = train(corpus, *TINY, "--max-steps", 3, "--val-fraction", 0, "--out-dir",
                   tmp_path / "runs", "--name", "r")
    assert result.exit_code == 0, result.stderr
    assert "no validation split" in result.stderr
    assert events(tmp_path / "runs" / "r", "eval") == []
