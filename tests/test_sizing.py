"""The size rule (`charrnn.sizing`): monotone in the budget and the corpus, the user's options
always kept, and the choice applied to the model and recorded in the start line and the log."""

import math

import pytest
from click.testing import CliRunner

from charrnn import sizing
from charrnn.cli import cli
from charrnn.config import SIZES
from helpers.train_helpers import events, load, make_corpus, train

ORDER = list(sizing.PRESETS)  # tiny < small < medium < large
MINUTES = [0.1, 0.2, 0.25, 0.5, 1, 2, 4.9, 5, 10, 19.9, 20, 30, 60, 120, 600]
CHARS = [500, 5_000, 19_999, 20_000, 90_000, 199_999, 200_000, 1_000_000, 10**7, 10**8]


def test_every_named_size_is_a_preset():
    assert SIZES == ("auto", *sizing.PRESETS)


@pytest.mark.parametrize("chars", CHARS)
def test_more_time_never_picks_a_smaller_model(chars):
    ranks = [ORDER.index(sizing.auto_size(m, chars)) for m in MINUTES]
    assert ranks == sorted(ranks)


@pytest.mark.parametrize("minutes", MINUTES)
def test_a_larger_corpus_never_picks_a_smaller_model(minutes):
    ranks = [ORDER.index(sizing.auto_size(minutes, c)) for c in CHARS]
    assert ranks == sorted(ranks)


def test_the_table_spans_every_size():
    assert sizing.auto_size(0.2, 10**6) == "tiny"
    assert sizing.auto_size(0.5, 10**6) == sizing.auto_size(2, 10**6) == "small"
    assert sizing.auto_size(10, 10**6) == "medium"
    assert sizing.auto_size(30, 10**6) == "large"
    assert sizing.auto_size(600, 10_000) == "small"  # a tiny corpus caps the size
    assert sizing.auto_size(600, 100_000) == "medium"


@pytest.mark.parametrize("size", list(sizing.PRESETS))
def test_dropout_grows_with_time_and_shrinks_with_the_corpus(size):
    by_time = [sizing.choose(size, 10**6, m * 60).dropout for m in MINUTES]
    assert by_time == sorted(by_time)
    by_corpus = [sizing.choose(size, c, 600).dropout for c in CHARS]
    assert by_corpus == sorted(by_corpus, reverse=True)
    assert all(0 <= d <= sizing.MAX_DROPOUT for d in by_time + by_corpus)


def test_dropout_follows_the_passes_over_the_text():
    assert sizing.dropout_for(0.5) == sizing.dropout_for(1) == 0  # under one pass: none
    assert sizing.dropout_for(6.5, 2, 384) == pytest.approx(0.2)  # tiny-shakespeare, 10 min
    assert sizing.dropout_for(13.3) == pytest.approx(0.18)  # small, 10 min: 0.1 ~ 0.25
    assert sizing.dropout_for(19.6, 2, 384) > 0.35  # 0.35 overfitted there
    assert sizing.dropout_for(70, 2, 384) == sizing.dropout_for(1e6) == sizing.MAX_DROPOUT
    assert sizing.dropout_for(math.inf) == sizing.MAX_DROPOUT  # an endless run
    # a bigger model memorises more in the same passes
    assert sizing.dropout_for(10, 1, 128) < sizing.dropout_for(10) < \
        sizing.dropout_for(10, 2, 384) < sizing.dropout_for(10, 2, 512) <= sizing.MAX_DROPOUT


def test_weight_decay_joins_a_heavy_dropout_unless_the_user_regularises():
    assert sizing.choose("auto", 1_003_854, 600).weight_decay == 0  # 10 minutes: dropout 0.2
    long = sizing.choose("auto", 1_003_854, 3600)
    assert long.dropout >= sizing.MAX_DROPOUT and long.weight_decay == sizing.WEIGHT_DECAY
    assert long.why.startswith(f"2×512, dropout {long.dropout:g}, weight decay 0.2: sized for")
    # by time and by corpus: never less weight decay for more passes
    by_time = [sizing.choose("auto", 10**6, m * 60).weight_decay for m in MINUTES]
    assert by_time == sorted(by_time) and by_time[0] == 0
    by_corpus = [sizing.choose("auto", c, 1800).weight_decay for c in CHARS]
    assert by_corpus == sorted(by_corpus, reverse=True)
    # a given --dropout takes the regularisation over; a given --weight-decay is kept
    assert sizing.choose("auto", 10**6, 3600, given={"dropout": 0.5}).weight_decay == 0
    kept = sizing.choose("auto", 10**6, 600, given={"weight_decay": 0.02})
    assert kept.weight_decay == 0.02 and "--weight-decay as given" in kept.why
    # measured with Adam: at another optimizer's rate the same lambda is another decay
    for optimizer in ("rmsprop", "adagrad", "sgd"):
        other = sizing.choose("auto", 1_003_854, 3600, optimizer=optimizer)
        assert other.dropout == long.dropout and other.weight_decay == 0
        assert "weight decay" not in other.why


def test_train_sets_the_chosen_weight_decay_unless_given():
    from charrnn.config import TrainConfig
    from charrnn.planning import apply_size_rule

    long = TrainConfig(max_steps=4000)  # 4,000 steps of 64 x 50: 2,370 passes over 5,400
    cfg, choice = apply_size_rule(long, {"max_steps": 4000}, 5400)
    assert choice.dropout >= sizing.MAX_DROPOUT
    assert (cfg.dropout, cfg.weight_decay) == (choice.dropout, sizing.WEIGHT_DECAY)
    given = {"max_steps": 4000, "weight_decay": 0.0}
    cfg, choice = apply_size_rule(long, given, 5400)
    assert cfg.weight_decay == 0.0 and "--weight-decay as given" in choice.why
    assert apply_size_rule(TrainConfig(max_steps=1), {"max_steps": 1}, 5400)[0].weight_decay == 0.0
    sgd = TrainConfig(max_steps=4000, optimizer="sgd")
    assert apply_size_rule(sgd, {"max_steps": 4000, "optimizer": "sgd"}, 5400)[0].weight_decay == 0.0


def test_a_step_budget_knows_its_passes_exactly():
    # 100 steps of 64 x 50 characters over 80,000 characters: 4 passes, whatever the speed
    for speed in (1e3, 1e5):
        choice = sizing.choose("auto", 80_000, work=100 * 64 * 50, speed=speed)
        assert choice.dropout == sizing.dropout_for(4.0, choice.num_layers, choice.hidden_size)
    # the size follows from the characters the budget trains on, at any speed
    for speed in (1e3, 1e4, 1e5, 1e6):
        assert sizing.choose("auto", 10**6, work=2 * 10**6, speed=speed).size == "small"
        assert sizing.choose("auto", 10**6, work=5 * 10**6, speed=speed).size == "medium"
        assert sizing.choose("auto", 10**6, work=10**7, speed=speed).size == "large"
    # with a time limit too, the first budget reached decides
    assert sizing.choose("auto", 10**6, 60, work=10**9, speed=1e4).size == "small"
    assert sizing.choose("auto", 10**6, 3600, work=2 * 10**6, speed=1e4).size == "small"
    # and the phrase names the step budget's characters, not a time it cannot know
    why = sizing.choose("auto", 10**6, work=5 * 10**6, speed=1e4).why
    assert why.endswith("sized for 5 passes over 1 M characters")
    assert "minute" not in why and "second" not in why


def test_the_users_options_win():
    choice = sizing.choose("auto", 10**6, 1800, given={"hidden_size": 100, "dropout": 0.05})
    assert (choice.size, choice.num_layers, choice.hidden_size, choice.dropout) == \
        ("large", 2, 100, 0.05)
    assert "--dropout as given" in choice.why and "--hidden-size as given" in choice.why
    named = sizing.choose("small", 10**6, 1800)
    assert (named.num_layers, named.hidden_size) == (2, 256)
    assert named.why.endswith("--size small")


def test_the_phrase_says_what_and_why():
    choice = sizing.choose("auto", 1_003_854, 1800)
    assert choice.why == (f"2×512, dropout {choice.dropout:g}, weight decay 0.2: sized for 30 "
                          "minutes on 1 M characters at 22.3 k chars/s (2×256, the calibration "
                          "machine)")
    assert sizing.choose("auto", 10**6).why.endswith("sized for an endless run on 1 M characters")
    for seconds, said in [(1, "1 second"), (60, "1 minute"), (5400, "1.5 hours"), (40, "40 seconds")]:
        assert f"sized for {said} on" in sizing.choose("auto", 10**6, seconds).why
    measured = sizing.choose("auto", 10**6, 600, speed=31_400, measured="torch engine, cpu")
    assert measured.why.endswith("at 31.4 k chars/s (2×256, torch engine, cpu)")


# ---- through the command line


def start_of(run_dir):
    (start,) = events(run_dir, "start")
    return start


def test_train_sizes_the_model_and_says_so(tmp_path):
    corpus = make_corpus(tmp_path / "c.txt", chars=6000)
    result = train(corpus, "--out-dir", tmp_path / "runs", "--max-steps", "2",
                   "--batch-size", "4", "--seq-length", "16")
    assert result.exit_code == 0, result.output
    start = start_of(tmp_path / "runs" / "c")
    sized = start["sizing"]
    # 2 steps of 4 x 16 characters is well under a minute: tiny, and under one pass: no dropout
    assert (sized["size"], sized["num_layers"], sized["hidden_size"], sized["dropout"]) == \
        ("tiny", 1, 128, 0.0)
    assert sized["chars"] == start["config"]["train_chars"]
    assert f"size    {sized['why']}" in result.stderr
    assert "sized for" in sized["why"]
    model = start["config"]["model"]
    assert (model["num_layers"], model["hidden_size"], model["dropout"]) == (1, 128, 0.0)
    ckpt = load(tmp_path / "runs" / "c" / "latest.npz")
    assert (ckpt.config.num_layers, ckpt.config.hidden_size) == (1, 128)
    assert ckpt.training.train_config.size == "auto"
    logs = CliRunner().invoke(cli, ["logs", "c", "--out-dir", str(tmp_path / "runs")],
                              env={"COLUMNS": "200"})
    assert logs.exit_code == 0, logs.output
    assert f"size      {sized['why']}" in logs.stdout


def test_given_options_and_named_sizes_are_kept(tmp_path):
    corpus = make_corpus(tmp_path / "c.txt", chars=6000)
    result = train(corpus, "--out-dir", tmp_path / "runs", "--name", "a", "--max-steps", "1",
                   "--batch-size", "4", "--seq-length", "16", "--size", "small",
                   "--hidden-size", "24", "--dropout", "0.3")
    assert result.exit_code == 0, result.output
    sized = start_of(tmp_path / "runs" / "a")["sizing"]
    assert (sized["num_layers"], sized["hidden_size"], sized["dropout"]) == (2, 24, 0.3)
    assert sized["why"] == ("2×24, dropout 0.3: --size small (--dropout as given, "
                            "--hidden-size as given)")
    ckpt = load(tmp_path / "runs" / "a" / "latest.npz")
    assert (ckpt.config.num_layers, ckpt.config.hidden_size, ckpt.config.dropout) == (2, 24, 0.3)
    # all three given: nothing to choose, nothing recorded
    result = train(corpus, "--out-dir", tmp_path / "runs", "--name", "b", "--max-steps", "1",
                   "--batch-size", "4", "--seq-length", "16", "--hidden-size", "8",
                   "--num-layers", "1", "--dropout", "0")
    assert result.exit_code == 0, result.output
    assert "sizing" not in start_of(tmp_path / "runs" / "b")
    assert "size    " not in result.stderr


def test_size_is_part_of_the_shape_on_resume_and_init_from(tmp_path):
    corpus = make_corpus(tmp_path / "c.txt", chars=6000)
    base = ["--out-dir", tmp_path / "runs", "--batch-size", "4", "--seq-length", "16"]
    assert train(corpus, *base, "--max-steps", "1", "--hidden-size", "8").exit_code == 0
    run = tmp_path / "runs" / "c"
    before = (run / "latest.npz").read_bytes()
    result = train("--resume", run, "--max-steps", "2", "--size", "large", "--out-dir",
                   tmp_path / "runs")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: cannot resume with --size large: the run was trained with --size auto; drop "
        "those options or start a new run.")
    assert (run / "latest.npz").read_bytes() == before
    result = train(corpus, *base, "--name", "child", "--init-from", run, "--size", "small")
    assert result.exit_code == 1
    assert "drop --size." in result.stderr
    assert not (tmp_path / "runs" / "child").exists()
    # a resume keeps the model it was sized to, whatever the new budget
    result = train("--resume", run, "--max-steps", "3", "--out-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert load(run / "latest.npz").config.hidden_size == 8


# ---- the rule reads the engine's measured speed

SPEEDS = [2e3, 1e4, 22_300, 25e3, 1e5, 5e5, 5e6]


@pytest.mark.parametrize("chars", CHARS)
@pytest.mark.parametrize("minutes", [0.25, 1, 10, 60, 600])
def test_a_faster_engine_never_buys_a_smaller_model(minutes, chars):
    ranks = [ORDER.index(sizing.choose("auto", chars, minutes * 60, speed=s).size)
             for s in SPEEDS]
    assert ranks == sorted(ranks)


def test_the_calibration_speed_keeps_the_calibrated_table():
    for minutes in MINUTES:
        for chars in CHARS:
            assert sizing.auto_size(minutes, chars, sizing.PRESETS["small"].rate) == \
                sizing.auto_size(minutes, chars)


def test_ten_minutes_at_three_speeds():
    picks = {s: sizing.choose("auto", 1_003_854, 600, speed=s) for s in (25e3, 1e5, 5e5)}
    assert [picks[s].size for s in (25e3, 1e5, 5e5)] == ["medium", "large", "large"]
    assert "at 500 k chars/s (2×256, as given)" in picks[5e5].why


def test_the_largest_preset_only_when_the_characters_allow_it():
    big = sizing.PRESETS["xlarge"]
    hours = 3600.0
    # a GPU's speed and hours of budget: the xlarge model on a big corpus ...
    assert sizing.choose("auto", 10**7, 4 * hours, speed=5e5).size == "xlarge"
    assert sizing.choose("auto", big.min_corpus, 4 * hours, speed=5e5).size == "xlarge"
    # ... not on a text under its corpus size, nor where the budget cannot read enough
    assert sizing.choose("auto", big.min_corpus - 1, 4 * hours, speed=5e5).size == "large"
    assert sizing.choose("auto", 10**7, 600, speed=5e5).size == "large"
    assert sizing.choose("auto", 10**7, 4 * hours, speed=22_300).size == "large"  # a CPU
    assert sizing.choose("auto", 10**7, speed=5e5).size == "large"  # endless: no budget
    # with its dropout, from the passes it makes
    choice = sizing.choose("auto", 10**7, 8 * hours, speed=5e5)
    assert (choice.num_layers, choice.hidden_size) == (big.num_layers, big.hidden_size)
    passes = 8 * hours * sizing.rate("xlarge", 5e5) / 10**7
    assert choice.dropout == sizing.dropout_for(passes, 2, 1024) > 0


def test_the_users_options_win_at_any_speed():
    for speed in SPEEDS:
        choice = sizing.choose("auto", 10**7, 8 * 3600, speed=speed,
                               given={"num_layers": 3, "dropout": 0.1})
        assert (choice.num_layers, choice.dropout) == (3, 0.1)
        assert sizing.choose("small", 10**7, 8 * 3600, speed=speed).hidden_size == 256
