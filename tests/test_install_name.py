"""Every install line installs this project (issue 29, item 6): the name `charrnn` on the
Python Package Index belongs to an unrelated project, so ours is distributed as
`charrnn-bptt` (the import package and the command stay `charrnn`). An install line in the
README, the package's messages and help, the benchmarks or CI names this project (`.`, from a
clone, with extras that setup.cfg defines, or `charrnn-bptt`) or a known third-party package.
"""

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "charrnn-bptt"
THIRD_PARTY = {"torch", "matplotlib", "starlette", "uvicorn", "onnx", "onnxruntime", "pytest",
               "playwright", "httpx", "openai", "numpy", "click", "tqdm", "rich",
               "threadpoolctl", "pip", "setuptools", "wheel"}


def _setup():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    return config


def install_lines():
    """(file, what follows `pip install`) for every install line of the README, the package,
    the benchmarks and CI."""
    files = [ROOT / "README.md", *sorted((ROOT / "charrnn").rglob("*.py")),
             *sorted((ROOT / "charrnn").rglob("*.html")),
             *sorted((ROOT / "benchmarks").rglob("*.py")), *sorted((ROOT / ".ci").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        for rest in install_rests(path.read_text("utf-8")):
            yield path.relative_to(ROOT), rest


def install_rests(text):
    """What follows each `pip install` in `text`, up to the end of its line, a comment, a
    backtick or a semicolon."""
    return [m.group(1) for m in re.finditer(r"pip3? install\b([^\n`#;]*)", text)]


def requirements(rest):
    """The requirements an install line names: its words that are not options, without
    quotes, version specifiers or the punctuation of the sentence around them."""
    for word in rest.split():
        closes = word.count('"') % 2 == 1 and not word.startswith('"')  # a string ends here
        word = word.strip("'\"")
        if word != ".":
            word = word.rstrip(").,:'\"")
        if word and not word.startswith(("-", "(", "<", "{")):
            yield word
        if closes:
            return


def check(requirement, extras):
    """None if `requirement` installs this project or a known package, else why not."""
    match = re.fullmatch(r"(\.|[A-Za-z0-9][A-Za-z0-9._-]*)(\[([^\]]*)\])?([<>=!~].*)?",
                         requirement)
    if not match:
        return f"{requirement!r} is not a requirement"
    name, wanted = match.group(1), match.group(3)
    if name in (".", DISTRIBUTION):
        unknown = [e for e in (wanted or "").split(",") if e and e not in extras]
        return f"extras {unknown} are not in setup.cfg" if unknown else None
    if name.lower() in THIRD_PARTY and not wanted:
        return None
    return f"{requirement!r} is not this project ({DISTRIBUTION}) or a known package"


def test_the_distribution_is_named_charrnn_bptt_and_the_command_charrnn():
    config = _setup()
    assert config["metadata"]["name"] == DISTRIBUTION
    assert config["options.entry_points"]["console_scripts"].split("=")[0].strip() == "charrnn"


def test_every_install_line_installs_this_project_or_a_known_package():
    extras = set(_setup()["options.extras_require"])
    lines = list(install_lines())
    assert any(path.name == "README.md" for path, _ in lines)  # the scan finds them
    problems = [f"{path}: pip install{rest}: {why}" for path, rest in lines
                for requirement in requirements(rest) if (why := check(requirement, extras))]
    assert problems == []


def test_the_checker_refuses_the_name_of_the_unrelated_project():
    extras = {"torch", "plot", "test"}
    assert check("charrnn[torch]", extras) is not None
    assert check("charrnn", extras) is not None
    assert check(".[torch]", extras) is None and check(".[nothing]", extras) is not None
    assert check("torch==2.13.0", extras) is None and check(DISTRIBUTION, extras) is None
    (rest,) = install_rests("pip install '.[torch]'  # PyTorch >= 2.1")
    assert list(requirements(rest)) == [".[torch]"]
    (rest,) = install_rests('python -m pip install --quiet ".[test]"\n')
    assert list(requirements(rest)) == [".[test]"]
    (rest,) = install_rests("(`pip install '.[plot]'` or pip install matplotlib).")[1:]
    assert list(requirements(rest)) == ["matplotlib"]
    (rest,) = install_rests('raise Error("it needs onnx: pip install onnx") from None')
    assert list(requirements(rest)) == ["onnx"]
