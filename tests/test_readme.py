"""The README's Quick start, run as a new user would run it: every command, in a fresh directory.

The install command is not run (the suite runs on an installed package); `charrnn train` gets
small sizes appended, so that the demo run takes seconds instead of 10 minutes.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SETUP = [["pip", "install", "."], ["charrnn", "train"]]  # the issue: exactly these two first
SMALL = ["--max-steps", "3", "--hidden-size", "16", "--batch-size", "4", "--seq-length", "16",
         "--warmup-steps", "0", "--eval-every", "2"]


def quick_start_blocks():
    """The commands of each fenced code block in the README's Quick start, as argument lists."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Quick start\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "README.md has no '## Quick start' section"
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", section.group(1), re.S | re.M)
    commands = [[shlex.split(line, comments=True) for line in block.splitlines()] for block in blocks]
    return [[argv for argv in block if argv] for block in commands]


def run(argv, cwd):
    """Run a README command in `cwd`: `charrnn` is this checkout's package under this Python."""
    assert argv[0] == "charrnn", f"the Quick start runs only charrnn commands, not {argv}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               PYTHONIOENCODING="utf-8", NO_COLOR="1", COLUMNS="120")
    return subprocess.run([sys.executable, "-m", "charrnn", *argv[1:]], cwd=cwd, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=300)


def test_quick_start_begins_with_exactly_two_setup_commands():
    blocks = quick_start_blocks()
    assert blocks, "the Quick start has no code block"
    assert blocks[0] == SETUP, f"the Quick start's first block must be {SETUP}, not {blocks[0]}"
    later = [argv[:2] for block in blocks[1:] for argv in block]
    assert ["charrnn", "sample"] in later and ["charrnn", "logs"] in later


def test_quick_start_commands_work_in_a_fresh_directory(tmp_path):
    commands = [argv for block in quick_start_blocks() for argv in block][1:]  # not pip install
    ran = set()
    for argv in commands:
        if argv[:2] == ["charrnn", "train"]:
            argv = argv + SMALL
        result = run(argv, tmp_path)
        shown = f"{shlex.join(argv)} exited {result.returncode}:\n{result.stderr}"
        assert result.returncode == 0, shown
        assert "Traceback" not in result.stderr, shown
        command = argv[1]
        ran.add(command)
        if command == "train":  # progress goes to stderr, the run to checkpoints/demo
            assert result.stdout == ""
            assert (tmp_path / "checkpoints" / "demo" / "latest.npz").is_file()
        elif command == "sample":  # generated text on stdout, from the run just trained
            assert result.stdout.strip(), "charrnn sample printed no text"
            assert "checkpoints/demo/" in result.stderr.replace(os.sep, "/")
        elif command == "logs":  # the run, listed as finished
            assert re.search(r"^\s*demo\s+finished\b", result.stdout, re.M), result.stdout
    assert {"train", "sample", "logs"} <= ran


def test_what_it_looks_like_is_todays_output_at_80_columns():
    """Issue 29, item 7: the captures fit 80 columns, name no path of the machine that made
    them, show today's panel (its size and engine rows) and say how they were made."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## What it looks like\n(.*?)(?=^## )", text, re.S | re.M).group(1)
    blocks = re.findall(r"^```text\n(.*?)^```", section, re.S | re.M)
    assert len(blocks) >= 4  # train, sample, the runs table, one run's panel and chart
    for block in blocks:
        for line in block.splitlines():
            assert len(line) <= 80, line
            assert not re.search(r"(^|[\s(])/(work|tmp|home|root|Users)/", line), line
    panel = next(block for block in blocks if "╭─" in block)
    rows = re.findall(r"^│ (\w[\w ]*?)  ", panel, re.M)
    assert "size" in rows and "engine" in rows, rows
    assert "done (" in blocks[0] and "checkpoints: best.npz and latest.npz in" in blocks[0]
    assert "80 columns" in section and "Xeon" in section
