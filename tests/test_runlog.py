"""charrnn.runlog: reading, writing, repairing and exporting a run's log.jsonl."""

import json

from charrnn import runlog
from test_runs import make_records, write_run


# ----------------------------------------------------------------------------- read_log


def test_read_log_round_trips_records(tmp_path):
    records = make_records()
    run_dir = write_run(tmp_path, "a", records)
    assert runlog.read_log(run_dir / "log.jsonl") == records


def test_read_log_skips_torn_last_line_silently(tmp_path):
    records = make_records(end=None)
    run_dir = write_run(tmp_path, "a", records, tail='{"event": "train", "step": 21')
    contents = runlog.read_log_with_problems(run_dir / "log.jsonl")
    assert contents.records == records
    assert contents.torn_tail and contents.bad_lines == 0


def test_log_writer_appends_lines_and_ends_a_torn_one(tmp_path):
    records = make_records(end=None)
    run_dir = write_run(tmp_path, "a", records, tail='{"event": "train", "step": 21')
    with runlog.LogWriter(run_dir) as log:
        log.end_torn_line()
        log.end_torn_line()  # the line is whole now: nothing more to end
        log.write({"event": "start", "step": 20})
    contents = runlog.read_log_with_problems(run_dir / "log.jsonl")
    assert contents.records == [*records, {"event": "start", "step": 20}]
    assert contents.bad_lines == 1 and not contents.torn_tail
    (tmp_path / "new").mkdir()
    with runlog.LogWriter(tmp_path / "new") as log:  # a new run: an empty log has nothing torn
        log.end_torn_line()
    assert (tmp_path / "new" / "log.jsonl").read_bytes() == b""


def test_read_log_counts_bad_lines_in_the_middle_and_skips_blank_ones(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"event": "start", "step": 0}\n\ngarbage\n[1, 2]\n\xff\xfe\n'
                     b'{"event": "end", "step": 1}\n\n')
    contents = runlog.read_log_with_problems(path)
    assert [r["event"] for r in contents.records] == ["start", "end"]
    assert contents.bad_lines == 3 and not contents.torn_tail


def test_read_log_missing_and_empty_files(tmp_path):
    assert runlog.read_log(tmp_path / "nope.jsonl") == []
    (tmp_path / "empty.jsonl").write_text("")
    assert runlog.read_log(tmp_path / "empty.jsonl") == []


# ----------------------------------------------------------------------------- export


def test_records_csv_columns_and_cells():
    records = [{"event": "train", "step": 1, "time": 0.5, "epoch": 0.1, "loss": 2.0},
               {"event": "eval", "step": 1, "time": 0.5, "epoch": 0.1, "val_loss": 2.1,
                "extra": {"a": 1}, "none": None}]
    assert runlog.record_columns(records) == ["event", "step", "epoch", "time", "loss",
                                            "val_loss", "extra", "none"]
    lines = runlog.records_csv(records).splitlines()
    assert lines[1] == "train,1,0.1,0.5,2.0,,,"
    assert lines[2] == 'eval,1,0.1,0.5,,2.1,"{""a"": 1}",'
    assert json.loads(runlog.records_json(records)) == records
    assert runlog.records_json([]) == "[]"
