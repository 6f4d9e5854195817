"""Where a resume trains, and what it may never do: overwrite newer steps, mix two runs, write
or delete outside its run; and that a run split into budget-stopped sessions ends exactly as
the uninterrupted run does (README, Reliability: the resume rule, exact resume)."""

import shutil

import pytest

from test_hostile_input import _edit_meta
from helpers.train_helpers import (TINY, assert_same_arrays, events, files_snapshot, load,
                                   make_corpus, train)

SHORT = [*TINY, "--eval-every", 3, "-q"]


@pytest.fixture
def world(tmp_path):
    """Two finished runs, a (10 steps, best.npz at step 3 or later) and b, under tmp/runs."""
    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    for name, steps in (("a", 10), ("b", 6)):
        result = train(corpus, *SHORT, "--max-steps", steps, "--checkpoint-every", 4,
                       "--out-dir", out, "--name", name, "--seed", 5)
        assert result.exit_code == 0, result.stderr
    return tmp_path


def older_best(world):
    """Make a's best.npz older than its latest.npz (step 3 against 10), as after a long run."""
    run = world / "runs" / "a"
    _edit_meta(run / "latest.npz", run / "best.npz", lambda m, a: m["training"].update(step=3))


def copy_of_b_in_a(world):
    shutil.copy(world / "runs" / "b" / "latest.npz", world / "runs" / "a" / "from-b.npz")


def b_over_a_latest(world):
    shutil.copy(world / "runs" / "b" / "latest.npz", world / "runs" / "a" / "latest.npz")


def corrupt_latest(world):
    (world / "runs" / "a" / "latest.npz").write_bytes(b"PK\x03\x04 not a zip any more")


def b_into_legacy_log(world):
    """a's log from before run ids: its start events lose theirs."""
    log = world / "runs" / "a" / "log.jsonl"
    log.write_text(log.read_text().replace('"run_id"', '"old_key"'))
    copy_of_b_in_a(world)


REFUSED = [  # (setup, --resume target under tmp, phrases)
    (older_best, "runs/a/best.npz", ["is at step 3, behind the run's latest.npz at step 10",
                                     "overwrite the 7 steps", "--name NEW_NAME"]),
    (copy_of_b_in_a, "runs/a/from-b.npz", ["belongs to another run", "--name NEW_NAME"]),
    (b_over_a_latest, "runs/a", ["belongs to another run", "--name NEW_NAME"]),
    (b_over_a_latest, "runs/a/latest.npz", ["belongs to another run"]),
    (corrupt_latest, "runs/a/best.npz", ["latest.npz cannot be read", "--name NEW_NAME"]),
    (b_into_legacy_log, "runs/a/from-b.npz", ["belongs to another run"]),
]


@pytest.mark.parametrize("setup, target, phrases", REFUSED,
                         ids=[f"{s.__name__} {t}" for s, t, _ in REFUSED])
def test_a_resume_that_would_lose_or_mix_steps_is_refused(world, setup, target, phrases):
    setup(world)
    before = files_snapshot(world)
    result = train("--resume", world / target, "--max-steps", 30)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("Error: ")
    for phrase in phrases:
        assert phrase in result.stderr, (phrase, result.stderr)
    assert files_snapshot(world) == before


def test_the_hint_branches_a_new_run_and_leaves_the_old_one_alone(world):
    """Resuming on purpose from an older checkpoint: --name starts a new run from it."""
    older_best(world)
    run = world / "runs" / "a"
    before = files_snapshot(run)
    result = train("--resume", run / "best.npz", "--name", "from-best", "--max-steps", 8,
                   "--out-dir", world / "runs", "-q")
    assert result.exit_code == 0, result.stderr
    assert files_snapshot(run) == before
    branch = world / "runs" / "from-best"
    start = events(branch, "start")[0]
    assert start["step"] == 3 and start["parent"]["step"] == 3
    assert start["run_id"] != events(run, "start")[0]["run_id"]
    assert load(branch / "latest.npz").training.run_id == start["run_id"]
    assert load(branch / "latest.npz").training.step == 8


@pytest.mark.parametrize("target", ["runs/a", "runs/a/latest.npz", "a"])
def test_name_of_the_run_itself_resumes_in_place(world, target, monkeypatch):
    monkeypatch.chdir(world)
    result = train("--resume", target, "--name", "a", "--max-steps", 12, "--out-dir", "runs",
                   "-q")
    assert result.exit_code == 0, result.stderr
    assert load(world / "runs" / "a" / "latest.npz").training.step == 12
    assert sorted(p.name for p in (world / "runs").iterdir()) == ["a", "b"]


def test_a_checkpoint_outside_any_run_starts_a_new_one_and_writes_nothing_beside_it(world):
    loose = world / "loose"
    loose.mkdir()
    shutil.copy(world / "runs" / "a" / "latest.npz", loose / "latest.npz")
    (loose / ".tmp-latest-abcdefgh.npz").write_bytes(b"someone else's")
    before = files_snapshot(loose)
    result = train("--resume", loose / "latest.npz", "--max-steps", 12, "--out-dir",
                   world / "runs", "-q")
    assert result.exit_code == 0, result.stderr
    assert files_snapshot(loose) == before and len(list(loose.iterdir())) == 2
    assert load(world / "runs" / "c" / "latest.npz").training.step == 12  # named as new runs


def test_every_checkpoint_and_start_event_carries_the_run_id(world):
    run = world / "runs" / "a"
    assert train("--resume", run, "--max-steps", 12, "-q").exit_code == 0
    ids = {r["run_id"] for r in events(run, "start")}
    assert len(ids) == 1 and len(ids.pop()) == 32
    assert load(run / "latest.npz").training.run_id == events(run, "start")[0]["run_id"]
    assert load(run / "best.npz").training.run_id == events(run, "start")[0]["run_id"]


def test_a_checkpoint_from_before_run_ids_resumes_and_gets_one(world):
    run = world / "runs" / "a"
    for name in ("latest.npz", "best.npz"):
        _edit_meta(run / name, run / name, lambda m, a: m["training"].pop("run_id"))
    log = run / "log.jsonl"
    log.write_text(log.read_text().replace('"run_id"', '"old_key"'))
    assert train("--resume", run, "--max-steps", 12, "-q").exit_code == 0
    new_id = events(run, "start")[-1]["run_id"]
    assert new_id and load(run / "latest.npz").training.run_id == new_id


@pytest.mark.parametrize("name, kept", [
    (".tmp-latest-abcd1234.npz", False),  # what a killed save leaves: removed
    (".tmp-best-zz_9zz_9.npz", False),
    (".tmp-notes.txt", True),  # anything else, even with charrnn's prefix, stays
    (".tmp-latest-abcd1234.npz.keep", True),
    (".tmp-latest-toolongname.npz", True),
])
def test_only_charrnn_temporaries_are_deleted(world, name, kept):
    run = world / "runs" / "a"
    (run / name).write_bytes(b"x")
    assert train("--resume", run, "--max-steps", 11, "-q").exit_code == 0
    assert (run / name).exists() == kept


def test_a_temporary_name_that_is_a_link_is_not_followed_or_removed(world):
    run = world / "runs" / "a"
    target = world / "precious.npz"
    target.write_bytes(b"keep me")
    (run / ".tmp-latest-abcd1234.npz").symlink_to(target)
    assert train("--resume", run, "--max-steps", 11, "-q").exit_code == 0
    assert target.read_bytes() == b"keep me" and (run / ".tmp-latest-abcd1234.npz").is_symlink()


# ----------------------------------------------------------------------------- exact resume


def _session_runs(corpus, out, cell_options, budgets, common):
    """Train `out/straight` with the last budget in one go and `out/split` in sessions, one
    per budget (each a --max-steps), stopping early when the run ends on its own."""
    assert train(corpus, *common, *cell_options, "--max-steps", budgets[-1], "--name",
                 "straight").exit_code == 0
    assert train(corpus, *common, *cell_options, "--max-steps", budgets[0], "--name",
                 "split").exit_code == 0
    for budget in budgets[1:]:
        if events(out / "split", "end")[-1]["reason"] != "max_steps":
            break  # the run ended on its own (early stopping): nothing left to resume
        result = train("--resume", out / "split", "--max-steps", budget, "--engine", "numpy",
                       "-q")
        assert result.exit_code == 0, result.stderr


def _scheduled_evals(run):
    return [{k: r[k] for k in ("step", "val_loss", "best_val_loss")}
            for r in events(run, "eval") if not r.get("final")]


def _assert_same_run(out):
    """The same latest.npz and best.npz (arrays and bookkeeping), the same scheduled
    evaluations, stop reason and best.npz writes, and the run's last step measured alike."""
    straight, split = out / "straight", out / "split"
    for name in ("latest.npz", "best.npz"):
        a, b = load(straight / name), load(split / name)
        assert_same_arrays(a, b)
        for key in ("step", "epoch", "batch", "rng", "best_val_loss", "bad_evals",
                    "last_eval_step", "lr_scale", "val_loss"):
            assert getattr(a.training, key) == getattr(b.training, key), (name, key)
    assert _scheduled_evals(straight) == _scheduled_evals(split)
    end_a, end_b = events(straight, "end")[-1], events(split, "end")[-1]
    assert (end_a["reason"], end_a["step"]) == (end_b["reason"], end_b["step"])
    assert end_a["val_loss"] == end_b["val_loss"] == load(split / "latest.npz").training.val_loss
    assert events(split, "eval")[-1]["step"] == end_b["step"]  # the last step is measured
    best_writes = [r["step"] for r in events(straight, "checkpoint") if r["kind"] == "best"]
    assert best_writes[-1] == [r["step"] for r in events(split, "checkpoint")
                               if r["kind"] == "best"][-1]
    scheduled = {r["step"] for r in events(straight, "eval") if not r.get("final")}
    assert [s for s in best_writes if s in scheduled] == \
        [r["step"] for r in events(split, "checkpoint") if r["kind"] == "best" and r["step"]
         in scheduled]


CELLS = {"lstm": ["--cell", "lstm", "--dropout", 0.2],
         "gru": ["--cell", "gru", "--optimizer", "rmsprop"],
         "rnn": ["--cell", "rnn", "--optimizer", "adagrad", "--num-layers", 1]}


@pytest.mark.parametrize("cell", list(CELLS))
def test_a_run_split_into_budget_stopped_sessions_ends_as_the_uninterrupted_run(tmp_path, cell):
    """Sessions of --max-steps 5, 10, 15, 20, evaluating every 3 steps (so that no session
    ends on an evaluation): the same best.npz, latest.npz, eval records and stop reason."""
    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    common = [*TINY, "--seed", 7, "--eval-every", 3, "--checkpoint-every", 4,
              "--lr-schedule", "constant", "--learning-rate", 0.02, "--out-dir", out, "-q"]
    _session_runs(corpus, out, CELLS[cell], [5, 10, 15, 20], common)
    _assert_same_run(out)
    assert len(events(out / "split", "start")) == 4
    # every session that ended off an evaluation step measured its last step, decided nothing
    finals = [r["step"] for r in events(out / "split", "eval") if r.get("final")]
    assert finals == [5, 10, 20]
    assert [r["step"] for r in events(out / "straight", "eval") if r.get("final")] == [20]


@pytest.mark.parametrize("cell", list(CELLS))
def test_a_first_session_shorter_than_eval_every_gets_a_best_npz_the_run_then_replaces(
        tmp_path, cell):
    """Sessions of 2 and 7 steps, evaluating every 3: the first session ends before any
    scheduled evaluation, so its end-of-session evaluation writes best.npz (something to sample
    from); the second session's scheduled evaluations then replace it exactly as the
    uninterrupted 7-step run has it."""
    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    common = [*TINY, "--seed", 7, "--eval-every", 3, "--checkpoint-every", 4,
              "--lr-schedule", "constant", "--learning-rate", 0.02, "--out-dir", out, "-q"]
    assert train(corpus, *common, *CELLS[cell], "--max-steps", 7, "--name",
                 "straight").exit_code == 0
    assert train(corpus, *common, *CELLS[cell], "--max-steps", 2, "--name", "split").exit_code == 0
    first = load(out / "split" / "best.npz").training
    assert (first.step, first.best_val_loss) == (2, None) and first.val_loss is not None
    assert events(out / "split", "eval")[-1]["final"] is True
    result = train("--resume", out / "split", "--max-steps", 7, "--engine", "numpy", "-q")
    assert result.exit_code == 0, result.stderr
    _assert_same_run(out)
    assert load(out / "split" / "best.npz").training.step in (3, 6)


@pytest.mark.parametrize("budgets", [[3, 6, 9, 12], [4, 8, 12], [1, 2, 3, 4, 5, 6, 7, 8, 9]])
def test_patience_stops_a_split_run_where_it_stops_the_uninterrupted_one(tmp_path, budgets):
    """Weights that cannot move (a rate of 1e-30): evaluations at 2, 4, 6, 8 never improve
    after the first, so --patience 3 stops both runs at step 8, early_stopping."""
    corpus = make_corpus(tmp_path / "c.txt")
    out = tmp_path / "runs"
    common = [*TINY, "--seed", 7, "--eval-every", 2, "--patience", 3, "--learning-rate",
              "1e-30", "--lr-schedule", "constant", "--dropout", 0, "--out-dir", out, "-q"]
    _session_runs(corpus, out, [], budgets, common)
    _assert_same_run(out)
    end = events(out / "split", "end")[-1]
    assert (end["reason"], end["step"]) == ("early_stopping", 8)
    result = train("--resume", out / "split", "--max-steps", 30)
    assert result.exit_code == 1 and "already reached its --patience 3" in result.stderr
