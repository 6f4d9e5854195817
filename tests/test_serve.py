"""`charrnn.serve` behind a real uvicorn server on 127.0.0.1, spoken to by the real `openai`
client and httpx: completions, streaming, n, stop, logprobs, echo; reproducibility against
`charrnn sample`; concurrency; disconnects; bad input; the API key; rnn-writer's calls."""

import json
import math
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, unquote

import httpx
import numpy as np
import openai
import pytest

from charrnn.beam import log_softmax
from charrnn.sampling import warmup_ids
from charrnn.serve import Limits, load_models, make_app
from charrnn.serve import batcher as batcher_module
from charrnn.serve.batcher import PROMPT_CHUNK, Batcher, Job
from charrnn.serve.requests import read_completion
from charrnn.stepper import Stepper
from helpers.serve_helpers import WAIT, make_run, sample, serving, streams, wait_for

LIMITS = Limits(max_tokens=10**6, max_prompt=2000, max_streams=40)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def models(runs):
    return load_models(["tiny"], runs)


@pytest.fixture(scope="module")
def url(models):
    with serving(make_app(models, limits=LIMITS)) as base:
        yield base


@pytest.fixture(scope="module")
def client(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=WAIT)


def solo(runs, prompt, n, seed, temp=None, top_p=None, top_k=None, stop=()):
    """What `charrnn sample` generates after the prime (its stdout without prime and newline)."""
    args = ["--seed", seed, "-n", n, "--prime", prompt]
    args += ["--temp", temp] if temp is not None else []
    args += ["--top-p", top_p] if top_p is not None else []
    args += ["--top-k", top_k] if top_k is not None else []
    for s in stop:
        args += ["--stop", s]
    out = sample(runs, *args)
    assert out.startswith(prompt) and out.endswith("\n")
    return out[len(prompt):-1]


CASES = [  # prompt, max_tokens, seed, temperature, top_p, top_k
    ("the cat", 60, 3, 0.8, None, None),
    ("", 50, 7, 1.0, None, None),
    ("why is", 40, 11, 0.5, 0.9, None),
    ("a dog", 40, 5, 1.3, None, 4),
    ("we walk", 30, 0, 0.0, None, None),
    ("she", 45, 123456, 0.9, 0.7, 6),
]


@pytest.mark.parametrize("prompt,n,seed,temp,top_p,top_k", CASES)
def test_seeded_completion_equals_charrnn_sample(client, runs, prompt, n, seed, temp, top_p,
                                                 top_k):
    extra = {"top_k": top_k} if top_k else None
    got = client.completions.create(model="tiny", prompt=prompt, max_tokens=n, seed=seed,
                                    temperature=temp, top_p=top_p, extra_body=extra)
    assert got.object == "text_completion" and got.model == "tiny"
    choice = got.choices[0]
    assert choice.text == solo(runs, prompt, n, seed, temp, top_p, top_k)
    assert choice.finish_reason == "length" and choice.index == 0
    assert got.usage.completion_tokens == n and got.usage.prompt_tokens == len(prompt)
    assert got.usage.total_tokens == n + len(prompt)


def test_streaming_yields_the_same_text_then_done(client, url):
    kwargs = dict(model="tiny", prompt="the cat", max_tokens=200, seed=9, temperature=0.9)
    whole = client.completions.create(**kwargs).choices[0].text
    chunks = list(client.completions.create(stream=True, **kwargs))
    assert len(chunks) >= 1
    assert "".join(c.choices[0].text for c in chunks) == whole
    assert [c.choices[0].finish_reason for c in chunks][-1] == "length"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    raw = httpx.post(f"{url}/v1/completions", json={**kwargs, "stream": True}, timeout=WAIT)
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [e for e in raw.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert "".join(json.loads(e[6:])["choices"][0]["text"] for e in events[:-1]) == whole


def test_stream_usage_chunk(client):
    chunks = list(client.completions.create(model="tiny", prompt="a", max_tokens=20, seed=1,
                                            stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 20


def test_n_choices_each_equal_their_seed(client, runs):
    got = client.completions.create(model="tiny", prompt="the", max_tokens=40, n=3, seed=20,
                                    temperature=0.8)
    assert [c.index for c in got.choices] == [0, 1, 2]
    for c in got.choices:
        assert c.text == solo(runs, "the", 40, 20 + c.index, 0.8)
    assert got.usage.completion_tokens == 120
    texts = {c.text for c in got.choices}
    assert len(texts) > 1  # different seeds, different texts


def test_prompt_list_indexes_choices_by_prompt(client, runs):
    got = client.completions.create(model="tiny", prompt=["the cat", "a dog"], max_tokens=30,
                                    n=2, seed=4, temperature=0.8)
    assert [c.index for c in got.choices] == [0, 1, 2, 3]
    for c in got.choices:
        prompt = ["the cat", "a dog"][c.index // 2]
        assert c.text == solo(runs, prompt, 30, 4 + c.index, 0.8)


def test_stop_ends_a_choice_as_charrnn_sample_does(client, runs):
    for stop in (["."], [" the", "!"], ["?", "."]):
        got = client.completions.create(model="tiny", prompt="the cat", max_tokens=300, seed=2,
                                        temperature=0.8, stop=stop).choices[0]
        assert got.text == solo(runs, "the cat", 300, 2, 0.8, stop=stop)
        assert got.finish_reason == "stop"
        assert not any(s in got.text for s in stop)
    never = client.completions.create(model="tiny", prompt="a", max_tokens=20, seed=2,
                                      stop="\u2603").choices[0]
    assert never.finish_reason == "length" and len(never.text) == 20


def test_streamed_stop_never_shows_the_stop_text(client):
    kwargs = dict(model="tiny", prompt="the", max_tokens=300, seed=6, temperature=0.8)
    free = client.completions.create(**kwargs).choices[0].text
    stop = free[20:23]  # a three-character stop text that occurs
    whole = client.completions.create(stop=stop, **kwargs).choices[0]
    assert whole.finish_reason == "stop" and whole.text == free[:free.index(stop)]
    chunks = list(client.completions.create(stream=True, stop=stop, **kwargs))
    assert "".join(c.choices[0].text for c in chunks) == whole.text
    assert chunks[-1].choices[0].finish_reason == "stop"


def _model_logprobs(models, prompt, text):
    """Log-probabilities of each character of `text` after the context and `prompt`, by a
    plain one-stream Stepper: (V,) float64 arrays, one per character of text."""
    served = models["tiny"]
    stepper = Stepper(served.model, 1)
    context, ids = warmup_ids(served.vocab, prompt, "error", served.context)
    for i in np.concatenate([context, ids]):
        logits = stepper.step(np.array([i]))
    out = []
    for ch in text:
        out.append(log_softmax(logits)[0])
        logits = stepper.step(served.vocab.encode(ch))
    return out


def test_logprobs_are_the_models_own(client, models):
    got = client.completions.create(model="tiny", prompt="the cat", max_tokens=30, seed=8,
                                    temperature=1.2, logprobs=3).choices[0]
    lp = got.logprobs
    assert "".join(lp.tokens) == got.text and len(lp.tokens) == 30
    assert lp.text_offset == list(range(30))
    chars = models["tiny"].vocab.chars
    for k, (token, value, top, exact) in enumerate(zip(
            lp.tokens, lp.token_logprobs, lp.top_logprobs,
            _model_logprobs(models, "the cat", got.text))):
        assert value == pytest.approx(exact[chars.index(token)], abs=1e-9)
        best = np.argsort(-exact, kind="stable")[:3]
        assert list(top) == [chars[j] for j in best]
        assert list(top.values()) == pytest.approx(list(exact[best]), abs=1e-9)
    zero = client.completions.create(model="tiny", prompt="a", max_tokens=5, seed=1,
                                     logprobs=0).choices[0].logprobs
    assert zero.top_logprobs == [{}] * 5 and len(zero.token_logprobs) == 5


def test_echo_returns_the_prompt_first(client, models, runs):
    got = client.completions.create(model="tiny", prompt="we walk", max_tokens=20, seed=3,
                                    temperature=0.8, echo=True, logprobs=1).choices[0]
    generated = solo(runs, "we walk", 20, 3, 0.8)
    assert got.text == "we walk" + generated
    lp = got.logprobs
    assert "".join(lp.tokens) == got.text
    assert lp.text_offset == list(range(len(got.text)))
    # the tiny run keeps a training context, so even the prompt's first character is predicted
    exact = _model_logprobs(models, "", "we walk")
    chars = models["tiny"].vocab.chars
    for k, ch in enumerate("we walk"):
        assert lp.token_logprobs[k] == pytest.approx(exact[k][chars.index(ch)], abs=1e-9)
    streamed = client.completions.create(model="tiny", prompt="we walk", max_tokens=20, seed=3,
                                         temperature=0.8, echo=True, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == got.text
    only = client.completions.create(model="tiny", prompt="we walk", max_tokens=0, echo=True)
    assert only.choices[0].text == "we walk" and only.choices[0].finish_reason == "length"


def test_32_concurrent_seeded_requests_each_equal_their_solo_output(client):
    prompts = ["the cat", "", "a dog ran", "why", "she reads a book by the sea. " * 6, "is"]
    requests = [dict(model="tiny", prompt=prompts[k % len(prompts)], max_tokens=60 + 7 * k,
                     seed=100 + k, temperature=[0.6, 1.0, 1.4][k % 3],
                     top_p=0.9 if k % 4 == 0 else None,
                     extra_body={"top_k": 5} if k % 5 == 0 else None,
                     stop=["!"] if k % 7 == 0 else None, stream=k % 2 == 1)
                for k in range(32)]

    def run(kwargs):
        result = client.completions.create(**kwargs)
        if kwargs["stream"]:
            chunks = list(result)
            return "".join(c.choices[0].text for c in chunks), chunks[-1].choices[0].finish_reason
        return result.choices[0].text, result.choices[0].finish_reason

    alone = [run(r) for r in requests]  # one at a time: nothing else is being served
    for attempt in range(2):  # all at once, twice
        with ThreadPoolExecutor(32) as pool:
            together = list(pool.map(run, requests))
        assert together == alone


def test_disconnect_mid_stream_frees_its_streams(url):
    body = {"model": "tiny", "prompt": "the", "max_tokens": 10**6, "n": 3, "stream": True}
    with httpx.Client(timeout=WAIT) as http:
        with http.stream("POST", f"{url}/v1/completions", json=body) as response:
            assert response.status_code == 200
            chunks = response.iter_bytes()  # (dropping the iterator would close the stream)
            next(chunks)  # generating: the first chunk is here
            assert streams(url, "tiny") == 3
    # a million characters take minutes: back to zero within WAIT only if they were freed
    wait_for(lambda: streams(url, "tiny") == 0, "the streams to be freed")


def test_disconnect_while_waiting_for_a_whole_response_frees_its_streams(url):
    body = json.dumps({"model": "tiny", "prompt": "the", "max_tokens": 10**6}).encode()
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as conn:
        conn.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        wait_for(lambda: streams(url, "tiny") == 1, "the request to be generating")
    wait_for(lambda: streams(url, "tiny") == 0, "the streams to be freed")


BAD = [  # body (or raw bytes), status, param, code
    (b"{not json", 400, None, "invalid_json"),
    (b"\xff\xfe", 400, None, "invalid_json"),
    ([1, 2], 400, None, None),
    ({"model": "tiny"}, 400, "prompt", None),
    ({"prompt": "a"}, 400, "model", None),
    ({"model": "nope", "prompt": "a"}, 404, "model", "model_not_found"),
    ({"model": "tiny", "prompt": "a", "colour": 1}, 400, "colour", None),
    ({"model": "tiny", "prompt": 5}, 400, "prompt", None),
    ({"model": "tiny", "prompt": [1, 2, 3]}, 400, "prompt", None),
    ({"model": "tiny", "prompt": []}, 400, "prompt", None),
    ({"model": "tiny", "prompt": "a" * 2001}, 400, "prompt", "prompt_too_long"),
    ({"model": "tiny", "prompt": "a\u20acZ"}, 400, "prompt", "unknown_characters"),
    ({"model": "tiny", "prompt": "a", "max_tokens": "ten"}, 400, "max_tokens", None),
    ({"model": "tiny", "prompt": "a", "max_tokens": -1}, 400, "max_tokens", None),
    ({"model": "tiny", "prompt": "a", "max_tokens": 10**6 + 1}, 400, "max_tokens", None),
    ({"model": "tiny", "prompt": "a", "max_tokens": 2.5}, 400, "max_tokens", None),
    ({"model": "tiny", "prompt": "a", "max_tokens": True}, 400, "max_tokens", None),
    ({"model": "tiny", "prompt": "a", "temperature": -0.1}, 400, "temperature", None),
    ({"model": "tiny", "prompt": "a", "temperature": "hot"}, 400, "temperature", None),
    (b'{"model": "tiny", "prompt": "a", "temperature": NaN}', 400, "temperature", None),
    ({"model": "tiny", "prompt": "a", "top_p": 0}, 400, "top_p", None),
    ({"model": "tiny", "prompt": "a", "top_p": 1.5}, 400, "top_p", None),
    ({"model": "tiny", "prompt": "a", "top_k": 0}, 400, "top_k", None),
    ({"model": "tiny", "prompt": "a", "n": 0}, 400, "n", None),
    ({"model": "tiny", "prompt": "a", "n": 41}, 400, "n", None),
    ({"model": "tiny", "prompt": ["a", "b"], "n": 21}, 400, "n", None),
    ({"model": "tiny", "prompt": "a", "stop": [""]}, 400, "stop", None),
    ({"model": "tiny", "prompt": "a", "stop": 5}, 400, "stop", None),
    ({"model": "tiny", "prompt": "a", "stop": ["x"] * 17}, 400, "stop", None),
    ({"model": "tiny", "prompt": "a", "stream": "yes"}, 400, "stream", None),
    ({"model": "tiny", "prompt": "a", "stream_options": {"include_usage": True}}, 400,
     "stream_options", None),
    ({"model": "tiny", "prompt": "a", "seed": -1}, 400, "seed", None),
    ({"model": "tiny", "prompt": "a", "logprobs": 21}, 400, "logprobs", None),
    ({"model": "tiny", "prompt": "a", "echo": 1}, 400, "echo", None),
    ({"model": "tiny", "prompt": "a", "unknown": "ignore"}, 400, "unknown", None),
    ({"model": "tiny", "prompt": "a", "suffix": "end"}, 400, "suffix", "unsupported_parameter"),
    ({"model": "tiny", "prompt": "a", "best_of": 2}, 400, "best_of", "unsupported_parameter"),
    ({"model": "tiny", "prompt": "a", "presence_penalty": 0.5}, 400, "presence_penalty",
     "unsupported_parameter"),
    ({"model": "tiny", "prompt": "a", "frequency_penalty": -1}, 400, "frequency_penalty",
     "unsupported_parameter"),
    ({"model": "tiny", "prompt": "a", "logit_bias": {"5": 10}}, 400, "logit_bias",
     "unsupported_parameter"),
]


def _assert_error(response, status, param=None, code=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"].endswith(".")
    assert "Traceback" not in response.text
    assert error["param"] == param and (code is None or error["code"] == code)
    return error


def _still_serving(url):
    assert httpx.get(f"{url}/health", timeout=WAIT).json() == {"status": "ok"}
    ok = httpx.post(f"{url}/v1/completions", timeout=WAIT,
                    json={"model": "tiny", "prompt": "the", "max_tokens": 5})
    assert ok.status_code == 200 and len(ok.json()["choices"][0]["text"]) == 5


@pytest.mark.parametrize("body,status,param,code", BAD)
def test_bad_input_is_an_openai_error_and_the_server_keeps_serving(url, body, status, param,
                                                                   code):
    if isinstance(body, bytes):
        response = httpx.post(f"{url}/v1/completions", content=body, timeout=WAIT,
                              headers={"content-type": "application/json"})
    else:
        response = httpx.post(f"{url}/v1/completions", json=body, timeout=WAIT)
    error = _assert_error(response, status, param, code)
    if param and status == 400 and code != "unknown_characters":
        assert param in error["message"]
    _still_serving(url)


def test_unknown_characters_are_named_and_can_be_skipped(url, client, runs):
    error = httpx.post(f"{url}/v1/completions", timeout=WAIT,
                       json={"model": "tiny", "prompt": "the \u20acat", "max_tokens": 5}).json()
    assert "'\u20ac'" in error["error"]["message"] and "skip" in error["error"]["message"]
    got = client.completions.create(model="tiny", prompt="the \u20accat", max_tokens=20, seed=1,
                                    extra_body={"unknown": "skip"})
    assert got.choices[0].text == solo(runs, "the cat", 20, 1)


def test_oversized_body_is_413(url):
    big = json.dumps({"model": "tiny", "prompt": "a" * (1 << 20)})
    _assert_error(httpx.post(f"{url}/v1/completions", content=big, timeout=WAIT), 413,
                  code="body_too_large")

    def chunks():  # no content-length: the limit holds while reading
        for _ in range(20):
            yield b" " * 100_000

    _assert_error(httpx.post(f"{url}/v1/completions", content=chunks(), timeout=WAIT), 413,
                  code="body_too_large")
    _still_serving(url)


def test_wrong_routes_and_methods(url):
    _assert_error(httpx.get(f"{url}/v1/completions", timeout=WAIT), 405,
                  code="method_not_allowed")
    _assert_error(httpx.get(f"{url}/nothing/here", timeout=WAIT), 404, code="not_found")
    _assert_error(httpx.get(f"{url}/v1/models/nope", timeout=WAIT), 404, "model",
                  "model_not_found")
    _assert_error(httpx.get(f"{url}/generate?n=many", timeout=WAIT), 400, "n")
    _assert_error(httpx.get(f"{url}/generate?model=nope", timeout=WAIT), 404, "model")
    _still_serving(url)


def test_models_lists_the_served_models(client, url):
    listed = client.models.list()
    assert [m.id for m in listed.data] == ["tiny"]
    assert listed.data[0].object == "model" and listed.data[0].owned_by == "charrnn"
    one = httpx.get(f"{url}/v1/models/tiny", timeout=WAIT).json()
    assert one["id"] == "tiny" and one["cell"] == "lstm" and one["hidden_size"] == 24


def test_too_many_streams_is_429_with_retry_after(models):
    with serving(make_app(models, limits=Limits(max_streams=2, max_tokens=10**6))) as url:
        body = {"model": "tiny", "prompt": "a", "max_tokens": 10**6, "n": 2, "stream": True}
        with httpx.Client(timeout=WAIT) as http:
            with http.stream("POST", f"{url}/v1/completions", json=body) as held:
                chunks = held.iter_bytes()
                next(chunks)
                busy = http.post(f"{url}/v1/completions",
                                 json={"model": "tiny", "prompt": "a", "max_tokens": 3})
                error = _assert_error(busy, 429, code="too_many_streams")
                assert busy.headers["retry-after"] == "1" and "retry" in error["message"]
        wait_for(lambda: streams(url, "tiny") == 0, "the streams to be freed")
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        assert len(client.completions.create(model="tiny", prompt="a", max_tokens=3)
                   .choices[0].text) == 3


def test_api_key_is_required_except_for_health_and_the_page(models):
    with serving(make_app(models, api_key="s3cret", limits=LIMITS)) as url:
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
        assert httpx.get(f"{url}/", headers={"accept": "text/html"}).status_code == 200
        assert httpx.get(f"{url}/page.js").status_code == 200
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"},
                        {"authorization": "Basic s3cret"}):
            for method, path in (("GET", "/v1/models"), ("POST", "/v1/completions"),
                                 ("GET", "/generate?start_text=a"), ("GET", "/status")):
                response = httpx.request(method, f"{url}{path}", headers=headers,
                                         json={"model": "tiny", "prompt": "a"})
                _assert_error(response, 401, code="invalid_api_key")
        wrong = openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.completions.create(model="tiny", prompt="a", max_tokens=3)
        right = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0)
        assert len(right.completions.create(model="tiny", prompt="a", max_tokens=3)
                   .choices[0].text) == 3
        assert streams(url, "tiny", {"authorization": "Bearer s3cret"}) == 0


def test_rnn_writer_start_up_and_tab(url):
    # at start, rnn-writer GETs / with request-json (it asks for JSON) and wants no error
    hello = httpx.get(f"{url}/", headers={"accept": "application/json"}, timeout=WAIT)
    assert hello.status_code == 200 and "tiny" in hello.json()["message"]
    # on Tab: /generate?start_text=<encodeURIComponent(text)>&n=<suggestions>
    text = "the cat's 100% sure & done, is it"
    sent = quote(text, safe="-_.!~*'()")  # what JavaScript's encodeURIComponent gives
    reply = httpx.get(f"{url}/generate?start_text={sent}&n=5", timeout=WAIT).json()
    assert set(reply) == {"start_text", "completions", "time"}
    assert unquote(reply["start_text"]) == text  # rnn-writer: decodeURIComponent(start_text)
    assert len(reply["completions"]) == 5 and float(reply["time"]) >= 0
    for suggestion in reply["completions"]:
        assert isinstance(suggestion, str) and suggestion
        assert suggestion[-1] in ".!?" or len(suggestion) == 200
        assert not any(c in suggestion[:-1] for c in ".!?")
    capped = httpx.get(f"{url}/generate?start_text=a&n=50", timeout=WAIT).json()
    assert len(capped["completions"]) == 10  # torch-rnn-server's cap
    empty = httpx.get(f"{url}/generate", timeout=WAIT).json()
    assert empty["start_text"] == "" and len(empty["completions"]) == 1


def test_a_long_prompt_is_read_between_steps_of_running_streams(models, monkeypatch):
    """While a prompt is read, the running streams keep stepping: a chunk of PROMPT_CHUNK
    prompt characters, then one step, never the whole prompt at once."""
    monkeypatch.setattr(batcher_module, "FLUSH_SECONDS", 0.0)  # hand over after every step
    served = models["tiny"]
    batcher = Batcher(served, 8)
    log = []  # (which job, event count) in delivery order
    first = threading.Event()

    def job(name, prompt, length):
        request = read_completion({"model": "tiny", "prompt": prompt, "max_tokens": length,
                                   "seed": 1}, {"tiny": served}, LIMITS)

        def deliver(events):
            log.append((name, len(events)))
            first.set()

        return Job(served, request, deliver)

    batcher.start()
    try:
        batcher.submit(job("running", "the", 10**6))
        assert first.wait(WAIT)
        start = len(log)
        prompt = "we walk home at night. " * 14  # 322 characters
        batcher.submit(job("long", prompt, 5))
        wait_for(lambda: any(name == "long" for name, _ in log[start:]), "the long prompt")
        joined = next(k for k in range(start, len(log)) if log[k][0] == "long")
        steps_meanwhile = sum(1 for name, _ in log[start:joined] if name == "running")
        assert steps_meanwhile >= math.ceil(len(prompt) / PROMPT_CHUNK) - 1
    finally:
        batcher.stop()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_per_stream_steps_are_exactly_the_solo_steps(cell):
    """The batch's numbers are each stream's own: a per_stream Stepper of N streams gives
    bit for bit the logits of N one-stream Steppers, through regrouping (resized + state),
    where a matrix product over the streams would round differently."""
    from charrnn.config import ModelConfig
    from charrnn.model import CharRNN

    rng = np.random.default_rng(0)
    model = CharRNN(ModelConfig(cell, 30, 40, 2), seed=1)
    for p in model.params.values():
        p *= 3  # larger weights: saturated gates, the hardest case for rounding
    alone = [Stepper(model, 1) for _ in range(5)]
    batch = Stepper(model, 5, per_stream=True)
    for t in range(40):
        ids = rng.integers(0, 30, 5)
        if t == 20:  # regroup as the batcher does: streams 3, 0, 4 go on together
            state = batch.state
            batch = batch.resized(3)
            assert batch.per_stream and batch.N == 3
            batch.state = [tuple(a[:, [3, 0, 4]] for a in layer) for layer in state]
            alone = [alone[3], alone[0], alone[4]]
        ids = ids[:batch.N]
        logits = batch.step(ids)
        for n, stepper in enumerate(alone):
            assert np.array_equal(logits[n], stepper.step(ids[n:n + 1])[0]), (t, n)
