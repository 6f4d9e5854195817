"""Bad checkpoints given to `charrnn sample`, `info` and `eval`: one sentence, exit 1, and
nothing is ever unpickled."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.cli import cli
from test_sampling import save_checkpoint


class Payload:
    """Unpickling this creates the file at `path` (what a malicious checkpoint would do)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def pickled_npz(path, marker):
    payload = np.empty(1, dtype=object)
    payload[0] = Payload(marker)
    np.savez(path, meta=payload, **{"params/head.b": np.zeros(3, np.float32)})
    return path


def truncated(tmp_path):
    good = save_checkpoint(tmp_path / "good.npz")
    data = good.read_bytes()
    (tmp_path / "bad.npz").write_bytes(data[: len(data) // 2])


def random_bytes(tmp_path):
    (tmp_path / "bad.npz").write_bytes(np.random.default_rng(0).bytes(5000))


def text_file(tmp_path):
    (tmp_path / "bad.npz").write_text("hello, I am not a checkpoint\n")


def foreign_npz(tmp_path):
    with open(tmp_path / "bad.npz", "wb") as f:
        np.savez(f, weights=np.ones((3, 3)), labels=np.arange(3))


def newer_format(tmp_path):
    good = save_checkpoint(tmp_path / "good.npz")
    with np.load(good, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta["format_version"] = 99
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(tmp_path / "bad.npz", "wb") as f:
        np.savez(f, **arrays)


def pickle_payload(tmp_path):
    pickled_npz(tmp_path / "bad.npz", tmp_path / "pwned")


CASES = {
    "truncated": (truncated, "is corrupt or truncated"),
    "random bytes": (random_bytes, "is not a charrnn checkpoint (not an .npz archive)"),
    "text file": (text_file, "is not a charrnn checkpoint (not an .npz archive)"),
    "another program's npz": (foreign_npz, "is an .npz archive but not a charrnn checkpoint"),
    "newer format": (newer_format, "was written by a newer charrnn (checkpoint format 99"),
    "pickle payload": (pickle_payload, "contains pickled Python objects; charrnn never unpickles"),
}


def invoke(command, path, tmp_path):
    if command == "eval":
        text = tmp_path / "t.txt"
        text.write_text("hello world")
        return CliRunner().invoke(cli, ["eval", str(path), str(text)])
    return CliRunner().invoke(cli, [command, str(path)])


@pytest.mark.parametrize("command", ["sample", "info", "eval"])
@pytest.mark.parametrize("case", list(CASES))
def test_bad_checkpoint_is_one_sentence_and_exit_1(tmp_path, case, command):
    make, message = CASES[case]
    make(tmp_path)
    result = invoke(command, tmp_path / "bad.npz", tmp_path)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "pwned").exists()


def test_the_payload_is_real(tmp_path):
    """The crafted file would create the marker if it were loaded with pickle allowed."""
    path = pickled_npz(tmp_path / "evil.npz", tmp_path / "marker")
    result = CliRunner().invoke(cli, ["sample", str(path)])
    assert result.exit_code == 1 and not (tmp_path / "marker").exists()
    with np.load(path, allow_pickle=True) as npz:
        npz["meta"]
    assert (tmp_path / "marker").exists()
