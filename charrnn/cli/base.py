"""What every `charrnn` command shares: the click group and its error boundary (one line of
error, exit 1; Ctrl-C 130), stdout hygiene, the parameter types, the shared options and
arguments (--out-dir, RUN|CKPT, --format) with shell completion, and small printing helpers.

Library modules (and numpy with them) are imported inside the commands, so that
`charrnn --help` stays fast; the options' choices, defaults and help come from the numpy-free
`charrnn.config` and cell table (`charrnn.cells`).
"""

import contextlib
import errno
import io
import math
import os
import sys

import click

from charrnn import cells
from charrnn._version import __version__
from charrnn.errors import CharRNNError
from charrnn.jsonvalues import printable
from charrnn.runs import DEFAULT_OUT_DIR, OUT_DIR_ENV
from charrnn.terminal import fit, shown_path


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}


class CharRNNGroup(click.Group):
    """A click group that ends every command with one line of error and exit 1, never a
    traceback: a library `CharRNNError`, running out of memory, and output that cannot be
    written (stdout full, closed or not open for writing, or in an encoding that cannot show
    the text); Ctrl-C exits 130 without click's "Aborted!". A pipe closed by its reader
    (`charrnn logs | head`) stays quiet, as click makes it."""

    def _main_shell_completion(self, ctx_args, prog_name, complete_var=None):
        """Shell completion, as click does it; run by hand, without the variables the shell
        sets (COMP_WORDS, COMP_CWORD), one line saying how to use it instead of a KeyError."""
        try:
            super()._main_shell_completion(ctx_args, prog_name, complete_var)
        except KeyError as exc:
            click.echo(f"Error: shell completion needs the variable {exc.args[0]} that the "
                       "shell sets; install it with: eval \"$(_CHARRNN_COMPLETE=bash_source "
                       "charrnn)\" (zsh_source, fish_source for zsh and fish).", err=True)
            sys.exit(1)

    def invoke(self, ctx):
        try:
            return self._invoke(ctx)
        except click.ClickException as exc:  # click adds "Error: "; no escape sequences, wrapped
            exc.message = fit(f"Error: {printable(exc.message)}")[len("Error: "):]
            raise

    def _invoke(self, ctx):
        _guard_closed_stdout()
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a full disk shows here, not in the interpreter's last flush
            return result
        except CharRNNError as exc:  # a path in it may hold escape sequences: shown escaped
            raise click.ClickException(printable(str(exc))) from None
        except KeyboardInterrupt:
            ctx.exit(130)  # 128 + SIGINT, as shells report it
        except MemoryError:
            raise click.ClickException(
                "charrnn ran out of memory (a limit such as ulimit -v, or the machine's "
                "memory); files already written are intact."
            ) from None
        except UnicodeEncodeError as exc:
            _drop_stdout()
            raise click.ClickException(
                f"stdout's encoding ({exc.encoding}) cannot show {exc.object[exc.start]!r}; "
                "set PYTHONIOENCODING=utf-8, or write to a file."
            ) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # click quiets a closed pipe
            if exc.filename is not None:  # a path the user gave (stdout's errors name none)
                raise click.ClickException(
                    f"cannot use {_cut_path(exc.filename)}: {exc.strerror or exc}.") from None
            _drop_stdout()
            raise click.ClickException(f"cannot write to stdout: {exc.strerror or exc}.") \
                from None


def _cut_path(path, keep=60):
    """A path as an error names it: escaped, relative where shorter, its middle left out when
    it is longer than `keep` characters (it may be thousands), with its length."""
    text = shown_path(os.fsdecode(path))
    if len(text) <= keep:
        return text
    return f"{text[:keep // 2]}…{text[-keep // 2:]} ({len(text):,} characters)"


class _ClosedStdout(io.TextIOBase):
    """What sys.stdout becomes when charrnn was started with stdout closed: writing to it fails
    (EBADF), so a command that has output to show says it cannot, and one that has none
    (train) is not bothered."""

    encoding = "utf-8"

    def writable(self):
        return True

    def write(self, text):
        raise OSError(errno.EBADF, "stdout is closed")


def _guard_closed_stdout():
    """With stdout closed at start, Python's sys.stdout is None and file descriptor 1 is free:
    the next file opened (a run's lock or log) would get it. Park /dev/null on it, and make
    writes to sys.stdout fail instead of vanishing."""
    if sys.stdout is None:
        try:
            os.fstat(1)
        except OSError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        sys.stdout = _ClosedStdout()


def _drop_stdout():
    """After a failed write to stdout, send what is still buffered to /dev/null, so that the
    interpreter's final flush does not fail again (with a traceback-like message)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


class SectionedCommand(click.Command):
    """A command whose --help lists its options under headings: `option_sections` is a list
    of (heading, [parameter names]); options in no section are listed last, under "Other"."""

    def __init__(self, *args, option_sections=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.option_sections = list(option_sections)

    def format_options(self, ctx, formatter):
        records = {p.name: p.get_help_record(ctx) for p in self.get_params(ctx)}
        placed = {name for _, names in self.option_sections for name in names}
        rest = [name for name in records if name not in placed]
        for heading, names in [*self.option_sections, ("Other", rest)]:
            rows = [records[name] for name in names if records.get(name)]
            if rows:
                with formatter.section(heading):
                    formatter.write_dl(rows)


def _complete_runs(ctx, param, incomplete):
    """Shell completion of a RUN|CKPT: the run names under --out-dir that start with
    `incomplete`, after a "file" item, so that the shell completes paths when no name matches
    (and always for a word that looks like a path)."""
    from click.shell_completion import CompletionItem

    from charrnn import runs

    items = [CompletionItem(incomplete, type="file")]
    if os.sep in incomplete or incomplete.startswith((".", "~")):
        return items
    try:
        names = runs.run_names(ctx.params.get("out_dir") or runs.default_out_dir())
    except CharRNNError:
        names = []
    return items + [CompletionItem(n) for n in names if n.startswith(incomplete)]


_OUT_DIR = click.option("--out-dir", default=DEFAULT_OUT_DIR, envvar=OUT_DIR_ENV,
                        show_envvar=True, type=click.Path(file_okay=False),
                        help="Directory holding the runs.")


@click.group(cls=CharRNNGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="charrnn")
def cli():
    """Train character-level RNN, LSTM and GRU language models on text, and sample from them.

    Runs are kept under --out-dir (default: $CHARRNN_HOME, else ./checkpoints). A RUN is a
    run's name there or its directory; a CKPT is a checkpoint file (.npz). `charrnn COMMAND
    --help` tells more.

    \b
    Examples:
      charrnn train                      10 minutes on the built-in demo corpus
      charrnn train shakespeare.txt      train on your own text; Ctrl-C saves
      charrnn sample --prime "ROMEO:"    generate text from the newest run
      charrnn logs                       list runs; `charrnn logs RUN` charts one
      charrnn eval RUN test.txt          a run's loss on a text, in bits/char
      charrnn info RUN                   model, vocabulary and training state
      charrnn explain RUN test.txt       what surprised it; its units, gates, gradients
      charrnn export RUN --format web -o page.html   a page that writes offline; or onnx
      charrnn serve                      an HTTP API (OpenAI, rnn-writer) and a page

    \b
    Shell completion, for bash (zsh, fish: zsh_source, fish_source):
      eval "$(_CHARRNN_COMPLETE=bash_source charrnn)"
    """
    import warnings

    # a warning (e.g. a worker process that failed, replaced by threads) is one line for users
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"


class Duration(click.ParamType):
    """A time span such as 90s, 10m, 1h30m (plain numbers are seconds) -> seconds."""

    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        from charrnn.config import parse_duration

        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class FiniteRange(click.FloatRange):
    """A click.FloatRange that also refuses nan and inf (nan passes every bound check)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class ExitOne:
    """Mixin for a click parameter type: a bad value is a one-line error with exit code 1 (a
    ClickException, like a library error), not a usage error with exit code 2."""

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as exc:
            raise click.ClickException(f"{param.opts[0]}: {exc.message}") from None


class StrictIntRange(ExitOne, click.IntRange):
    """A click.IntRange whose bad values exit 1."""


class StrictChoice(ExitOne, click.Choice):
    """A click.Choice whose bad values exit 1."""


class StopText(click.ParamType):
    """A --stop text, its escapes (\\n, \\t, \\uHHHH, ...) read by `charrnn.stops.unescape`;
    empty or badly escaped, an error with exit code 1 (as with `ExitOne`)."""

    name = "text"

    def convert(self, value, param, ctx):
        from charrnn.stops import unescape

        try:
            text = unescape(value)
        except ValueError as exc:
            raise click.ClickException(f"{param.opts[0]}: {exc}.") from None
        if not text:
            raise click.ClickException(f"{param.opts[0]}: a stop text cannot be empty.")
        lone = next((c for c in text if 0xD800 <= ord(c) <= 0xDFFF), None)
        if lone is not None:  # no text holds one: it is half of a UTF-16 pair, not a character
            raise click.ClickException(
                f"{param.opts[0]}: '{printable(value)}' holds a lone surrogate (\\u{ord(lone):04x}), which "
                "is half of a UTF-16 pair and no character; give the character itself.")
        return text


class CellChoice(click.Choice):
    """--cell: a name in the cell table (`charrnn.cells.CELLS`), read whenever the choices are
    needed (validation, --help, completion), so that a cell registered at run time counts."""

    def __init__(self):  # no fixed choices to store
        self.case_sensitive = True

    @property
    def choices(self):
        return tuple(cells.CELLS)


def _load_checkpoint(target, out_dir, note="", announce=True):
    """(path, Checkpoint) for a RUN|CKPT argument; says on stderr which file is used (unless
    not `announce`: a command whose output names it)."""
    from charrnn import checkpoint, runs

    path = runs.resolve_checkpoint(target, out_dir)
    ckpt = checkpoint.load(path)
    if announce:
        note_line(f"using {shown_path(path)}{note}")
    return path, ckpt


def note_line(text):
    """A note for the user on stderr, wrapped at spaces to the terminal's width."""
    click.echo(fit(text), err=True)


def _print_fields(fields):
    """A two-column table of (name, value) on stdout; values are never read as markup."""
    from rich.table import Table
    from rich.text import Text

    from charrnn import ui

    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in fields:
        table.add_row(name, Text(str(value)))
    ui.make_console().print(table)


def _echo_json(obj):
    import json

    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


_CKPT_ARG = click.argument("target", required=False, metavar="[RUN|CKPT]",
                           shell_complete=_complete_runs)
_FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                       help="json: one JSON object on stdout.")


@contextlib.contextmanager
def _stdout():
    """stdout, for generated text: an encoding that cannot write it is one line of error, and
    a reader that closed the pipe (`charrnn sample | head`) ends the command quietly."""
    out = sys.stdout
    try:
        yield out
    except UnicodeEncodeError:
        raise click.ClickException(
            f"stdout's encoding ({out.encoding}) cannot write the generated characters; "
            "set PYTHONIOENCODING=utf-8 or write to a file."
        ) from None
    except BrokenPipeError:  # the reader has all it wanted
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        except (OSError, ValueError):
            pass
