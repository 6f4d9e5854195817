"""Reading a request body once, at the edge, into a typed object; every refusal one error shape.

The generation loop never sees raw JSON: `read_completion` turns the body of
`POST /v1/completions` into a `Completion`, `read_generate` the query of rnn-writer's
`GET /generate` into one, or raises `ApiError`, whose `body()` is OpenAI's error object
`{"error": {"message", "type", "param", "code"}}`. OpenAI fields charrnn cannot honour are
refused by name rather than ignored; so are fields it does not know.
"""

import math
from dataclasses import dataclass

from charrnn.config import DEFAULT_TEMPERATURE, UNKNOWN_CHOICES
from charrnn.data import format_chars

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for completions
MAX_LOGPROBS = 20  # the most top characters a position may list
MAX_STOPS = 16
GENERATE_MAX_N = 10  # torch-rnn-server's cap on rnn-writer's suggestions
GENERATE_LENGTH = 200  # the most characters of one rnn-writer suggestion
SENTENCE_ENDS = (".", "!", "?")  # where an rnn-writer suggestion ends (included)


class ApiError(Exception):
    """A request the server refuses: HTTP `status` and OpenAI's error fields."""

    def __init__(self, status, message, param=None, code=None, type="invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = (
            status, message, param, code, type)

    def body(self):
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (the command's --max-tokens, --max-prompt, --max-streams)."""

    max_tokens: int = 4096  # characters generated per choice
    max_prompt: int = 16384  # characters per prompt
    max_streams: int = 64  # streams generated at once, per model; a request's n x prompts


@dataclass(frozen=True)
class Completion:
    """A validated completion request: every field typed and in range."""

    model: str
    prompts: tuple  # of str; each prompt gets n choices
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float | None = None  # None: all characters
    top_k: int | None = None
    n: int = 1
    stop: tuple = ()
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage: a last chunk with usage
    seed: int | None = None  # None: fresh entropy; choice i uses seed + i
    logprobs: int | None = None  # top characters listed per position; None: no logprobs
    echo: bool = False
    unknown: str = "error"  # prompt characters the model lacks: error | skip | replace
    sentence: bool = False  # rnn-writer: end at a sentence end, and keep it

    @property
    def streams(self):
        return len(self.prompts) * self.n


def _fail(param, message, status=400, code=None):
    raise ApiError(status, message, param=param, code=code)


def _integer(body, name, default, low, high=None, what=""):
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(name, f"'{name}' must be an integer, not {_shown(value)}.")
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        _fail(name, f"'{name}' must be {bound}{what}, not {value}.")
    return value


def _number(body, name, default, low, high=None, low_open=False):
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(name, f"'{name}' must be a finite number, not {_shown(value)}.")
    if value < low or (low_open and value == low) or (high is not None and value > high):
        bound = f"{'above' if low_open else 'at least'} {low}" + (
            f" and at most {high}" if high is not None else "")
        _fail(name, f"'{name}' must be {bound}, not {value}.")
    return float(value)


def _boolean(body, name):
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        _fail(name, f"'{name}' must be true or false, not {_shown(value)}.")
    return value


def _shown(value):
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 40 else text[:37] + "..."


def _texts(body, name, allow_empty):
    """A str or a non-empty list of str -> tuple of str."""
    value = body.get(name)
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(t, str) for t in items):
        hint = (" (a token is a character here: send text, not token ids)"
                if isinstance(items, list) and items and all(
                    isinstance(t, (int, list)) and not isinstance(t, bool) for t in items)
                else "")
        _fail(name, f"'{name}' must be a string or a non-empty list of strings{hint}.")
    if not allow_empty and not all(items):
        _fail(name, f"'{name}' must not contain empty strings.")
    return tuple(items)


_UNSUPPORTED = {  # field: (the value charrnn honours, why the others are refused)
    "suffix": (None, "charrnn generates left to right; it cannot fill in before a suffix"),
    "best_of": (1, "charrnn does not rank candidates; ask for n choices instead"),
    "presence_penalty": (0, "charrnn samples from the model's own distribution"),
    "frequency_penalty": (0, "charrnn samples from the model's own distribution"),
    "logit_bias": ({}, "charrnn samples from the model's own distribution"),
}
_FIELDS = {"model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "n", "stop",
           "stream", "stream_options", "seed", "logprobs", "echo", "unknown", "user",
           *_UNSUPPORTED}


def read_completion(body, models, limits):
    """The `Completion` a JSON body (already parsed) asks for, among `models` (names)."""
    if not isinstance(body, dict):
        _fail(None, "the request body must be a JSON object.")
    extra = sorted(set(body) - _FIELDS)
    if extra:
        _fail(extra[0], f"unrecognized request argument: '{extra[0]}'.")
    for name, (honoured, why) in _UNSUPPORTED.items():
        value = body.get(name)
        if value is not None and (value != honoured or isinstance(value, bool)):
            _fail(name, f"'{name}' is not supported: {why}.", code="unsupported_parameter")
    model = read_model(body.get("model"), models, required=True)
    if "prompt" not in body:
        _fail("prompt", "'prompt' is required: the text to continue.")
    prompts = _texts(body, "prompt", allow_empty=True)
    for prompt in prompts:
        if len(prompt) > limits.max_prompt:
            _fail("prompt", f"the prompt has {len(prompt):,} characters; this server takes "
                            f"at most {limits.max_prompt:,}.", code="prompt_too_long")
    n = _integer(body, "n", 1, 1)
    if n * len(prompts) > limits.max_streams:
        _fail("n", f"'n' x prompts is {n * len(prompts)}; this server generates at most "
                   f"{limits.max_streams} streams at once.")
    stop = () if body.get("stop") is None else _texts(body, "stop", allow_empty=False)
    if len(stop) > MAX_STOPS:
        _fail("stop", f"'stop' may hold at most {MAX_STOPS} texts, not {len(stop)}.")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict) or set(options) - {"include_usage"}
                                or not isinstance(options.get("include_usage", False), bool)):
        _fail("stream_options", "'stream_options' may only be {\"include_usage\": true|false}.")
    stream = _boolean(body, "stream")
    if options is not None and not stream:
        _fail("stream_options", "'stream_options' needs \"stream\": true.")
    unknown = body.get("unknown", "error")
    if unknown not in UNKNOWN_CHOICES:
        _fail("unknown", f"'unknown' must be one of {', '.join(UNKNOWN_CHOICES)}, not "
                         f"{_shown(unknown)}.")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        _fail("user", "'user' must be a string.")
    return Completion(
        model=model, prompts=prompts, n=n, stop=stop, stream=stream, unknown=unknown,
        include_usage=bool(options and options.get("include_usage")),
        max_tokens=_integer(body, "max_tokens", DEFAULT_MAX_TOKENS, 0, limits.max_tokens,
                            " (this server's limit)"),
        temperature=_number(body, "temperature", DEFAULT_TEMPERATURE, 0),
        top_p=_top_p(_number(body, "top_p", None, 0, 1, low_open=True)),
        top_k=_integer(body, "top_k", None, 1),
        seed=_integer(body, "seed", None, 0, 2**63 - 1),
        logprobs=_integer(body, "logprobs", None, 0, MAX_LOGPROBS),
        echo=_boolean(body, "echo"))


def _top_p(value):
    return None if value is None or value >= 1 else value


def read_model(name, models, required=False):
    """The served model called `name` (404 if there is none); without a name, the only one."""
    if name is None and not required and len(models) == 1:
        return next(iter(models))
    if not isinstance(name, str):
        _fail("model", f"'model' is required: one of {', '.join(models)}.")
    if name not in models:
        raise ApiError(404, f"the model '{name}' is not served here; models: "
                            f"{', '.join(models)}.", param="model", code="model_not_found")
    return name


def read_generate(query, models, limits):
    """rnn-writer's `GET /generate?start_text=...&n=...` as a `Completion`: n (at most 10)
    continuations of start_text, each a sentence: it ends after its first '.', '!' or '?'."""
    extra = sorted(set(query) - {"start_text", "n", "model"})
    if extra:
        _fail(extra[0], f"unrecognized query parameter: '{extra[0]}'.")
    start = query.get("start_text", "")
    if len(start) > limits.max_prompt:
        _fail("start_text", f"start_text has {len(start):,} characters; this server takes at "
                            f"most {limits.max_prompt:,}.", code="prompt_too_long")
    try:
        n = int(query.get("n", "1"))
    except ValueError:
        _fail("n", f"'n' must be an integer, not {_shown(query['n'])}.")
    if n < 1:
        _fail("n", f"'n' must be at least 1, not {n}.")
    n = min(n, GENERATE_MAX_N, limits.max_streams)
    return Completion(model=read_model(query.get("model"), models), prompts=(start,), n=n,
                      max_tokens=min(GENERATE_LENGTH, limits.max_tokens), stop=SENTENCE_ENDS,
                      sentence=True, unknown="skip")


def unknown_prompt_error(missing, replaceable):
    """The 400 for prompt characters a model lacks (with "unknown": "error")."""
    replace = ', or read them as U+FFFD with "unknown": "replace"' if replaceable else ""
    return ApiError(400, f"the prompt has {len(missing)} character(s) the model does not know: "
                         f"{format_chars(missing, 20)}; drop them with \"unknown\": \"skip\""
                         f"{replace}.", param="prompt", code="unknown_characters")
