"""The ASGI app: routes, the API key, CORS, the body limit, and one error shape for all.

Routes: `POST /v1/completions` (OpenAI), `GET /v1/models`, `GET /generate` (rnn-writer),
`GET /health` (public), `GET /status` (streams per model), `GET /` (the playground page, or
for a client that does not ask for HTML, rnn-writer's greeting) and `GET /page.js`. Every
refusal is OpenAI's `{"error": {...}}` with its status (see `requests.ApiError`); nothing
answers with a traceback.
"""

import asyncio
import contextlib
import hmac
import json
import time
from importlib import resources
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from charrnn.blas import single_threaded_blas
from charrnn.serve.batcher import Batcher, Job
from charrnn.serve.requests import ApiError, Limits, read_completion, read_generate
from charrnn.serve.responses import Choices

MAX_BODY = 1 << 20  # bytes: a larger request body is refused (413)
STREAM_FLUSH_SECONDS = 0.02  # a stream writes at most this often (the first text at once)
DISCONNECT_POLL = 0.25  # seconds between checks that a non-streaming client is still there
PUBLIC = {"/health", "/", "/page.js"}  # open even with an API key


class Server:
    """What the routes share: the models, their batchers, the key and the limits."""

    def __init__(self, models, api_key, limits):
        self.models, self.api_key, self.limits = models, api_key, limits
        self.batchers = {name: Batcher(served, limits.max_streams)
                         for name, served in models.items()}

    def start(self, loop):
        """Start the loops; they hand events over in `loop` (the server's event loop)."""

        def post(fn):  # from a batcher's thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(fn)

        for batcher in self.batchers.values():
            batcher.post = post
            batcher.start()

    def stop(self):
        """End every stream in flight (each gets its last event) and the loops."""
        for batcher in self.batchers.values():
            batcher.stop()

    def check_key(self, request):
        if self.api_key is None or request.url.path in PUBLIC:
            return
        given = request.headers.get("authorization", "")
        scheme, _, key = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                key.strip().encode(), self.api_key.encode()):
            raise ApiError(401, "a valid API key is needed: send the header "
                                "'Authorization: Bearer KEY'.", code="invalid_api_key")


def make_app(models, api_key=None, limits=None, cors_origins=()):
    """The ASGI app (Starlette) serving `models` ({name: `charrnn.serve.ServedModel`}, e.g.
    from `charrnn.serve.load_models`): run it under any ASGI server, e.g.
    `uvicorn.run(make_app(load_models(["shakespeare"], "checkpoints")))`.

    api_key: every route but /health and the page needs `Authorization: Bearer KEY`.
    limits: a `charrnn.serve.Limits`. cors_origins: origins whose pages may call the API.
    While the app runs, BLAS is single-threaded in its process (the batched products are
    the same numbers as a lone stream's only then). `app.state.server.stop()` ends the
    streams in flight at once (`charrnn serve` calls it on Ctrl-C or SIGTERM).
    """
    server = Server(models, api_key, limits or Limits())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        with single_threaded_blas():
            server.start(asyncio.get_running_loop())
            try:
                yield
            finally:
                server.stop()

    routes = [Route("/v1/completions", _completions, methods=["POST"]),
              Route("/v1/models", _models), Route("/v1/models/{name:path}", _model),
              Route("/generate", _generate), Route("/health", _health),
              Route("/status", _status), Route("/", _root), Route("/page.js", _page_js)]
    middleware = [Middleware(CORSMiddleware, allow_origins=list(cors_origins),
                             allow_methods=["GET", "POST"],
                             allow_headers=["authorization", "content-type"])] \
        if cors_origins else []
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={ApiError: _api_error, HTTPException: _http_error,
                                        Exception: _crash})
    app.state.server = server
    return app


def _server(request):
    server = request.app.state.server
    server.check_key(request)
    return server


async def _api_error(request, exc):
    return JSONResponse(exc.body(), status_code=exc.status,
                        headers={"retry-after": "1"} if exc.status == 429 else None)


async def _http_error(request, exc):
    codes = {404: "not_found", 405: "method_not_allowed"}
    message = {404: f"there is nothing at {request.url.path}; see GET /v1/models, "
                    "POST /v1/completions, GET /generate, GET /health.",
               405: f"{request.method} is not allowed on {request.url.path}."}
    return await _api_error(request, ApiError(
        exc.status_code, message.get(exc.status_code, str(exc.detail)),
        code=codes.get(exc.status_code)))


async def _crash(request, exc):
    return await _api_error(request, ApiError(500, "the server failed on this request; it "
                                                   "keeps serving others.", type="server_error"))


async def _body(request):
    """The request's JSON body, at most MAX_BODY bytes (413 beyond)."""
    too_big = ApiError(413, f"the request body is over {MAX_BODY:,} bytes.",
                       code="body_too_large")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise too_big
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise too_big
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}.", code="invalid_json") \
            from None


async def _completions(request):
    server = _server(request)
    completion = read_completion(await _body(request), server.models, server.limits)
    return await _serve(request, server, completion)


async def _generate(request):
    """rnn-writer's call: {"start_text" (as it was sent: rnn-writer decodes it), "completions",
    "time"}."""
    server = _server(request)
    started = time.monotonic()
    completion = read_generate(dict(request.query_params), server.models, server.limits)
    choices = await _collect(request, server, completion)
    raw = [part.partition(b"=")[2] for part in request.scope["query_string"].split(b"&")
           if part.startswith(b"start_text=")]
    return JSONResponse({"start_text": raw[0].decode("latin-1") if raw else "",
                         "completions": [choices.text(i) for i in range(completion.n)],
                         "time": f"{time.monotonic() - started:.2f}"})


async def _serve(request, server, completion):
    if completion.stream:
        queue, job = _submit(server, completion)
        return StreamingResponse(_events(server, job, queue, Choices(completion)),
                                 media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})
    return JSONResponse((await _collect(request, server, completion)).body())


def _submit(server, completion):
    """Queue a Job for `completion`; its events arrive on the returned asyncio queue (the
    batcher runs `deliver` in the event loop)."""
    queue = asyncio.Queue()
    deliver = queue.put_nowait
    job = Job(server.models[completion.model], completion, deliver)
    server.batchers[completion.model].submit(job)
    return queue, job


async def _collect(request, server, completion):
    """Every choice, done; a client that goes away meanwhile frees its streams."""
    queue, job = _submit(server, completion)
    choices = Choices(completion)
    batcher = server.batchers[completion.model]
    checked = time.monotonic()
    try:
        while not choices.done:
            try:
                events = await asyncio.wait_for(queue.get(), DISCONNECT_POLL)
            except asyncio.TimeoutError:
                events = []
            if isinstance(events, ApiError):
                raise events
            for event in events:
                choices.add(event)
            if time.monotonic() - checked >= DISCONNECT_POLL:
                checked = time.monotonic()
                if await request.is_disconnected():
                    return choices
    finally:
        if not choices.done:
            batcher.cancel(job)
    return choices


async def _events(server, job, queue, choices):
    """The server-sent events of a streaming completion: a chunk per choice per batch of
    events (whatever arrived since the last write), each choice's last one with its
    finish_reason, then [DONE]. A client that goes away frees its streams at once."""
    batcher = server.batchers[job.request.model]
    last = 0.0
    try:
        while not choices.done:
            arrived = [await queue.get()]
            wait = last + STREAM_FLUSH_SECONDS - time.monotonic()
            if wait > 0:  # at most one write per STREAM_FLUSH_SECONDS, as `charrnn sample`
                await asyncio.sleep(wait)
            while not queue.empty():
                arrived.append(queue.get_nowait())
            last = time.monotonic()
            failed = next((e for e in arrived if isinstance(e, ApiError)), None)
            if failed is not None:
                yield _sse(failed.body())
                return
            pieces = {}  # index -> [text, logprobs, finish]
            for event in (e for events in arrived for e in events):
                text, logprobs = choices.add(event)
                piece = pieces.setdefault(event.index, ["", None, None])
                piece[0] += text
                if logprobs is not None:
                    piece[1] = logprobs if piece[1] is None else {
                        k: piece[1][k] + v for k, v in logprobs.items()}
                piece[2] = event.finish
            for index, (text, logprobs, finish) in sorted(pieces.items()):
                yield _sse(choices.chunk(index, text, logprobs, finish))
        if job.request.include_usage:
            yield _sse(choices.usage_chunk())
        yield "data: [DONE]\n\n"
    finally:
        if not choices.done:
            batcher.cancel(job)


def _sse(data):
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _models(request):
    server = _server(request)
    return JSONResponse({"object": "list",
                         "data": [m.describe() for m in server.models.values()]})


async def _model(request):
    server = _server(request)
    name = unquote(request.path_params["name"])
    if name not in server.models:
        raise ApiError(404, f"the model '{name}' is not served here.", param="model",
                       code="model_not_found")
    return JSONResponse(server.models[name].describe())


async def _health(request):
    return JSONResponse({"status": "ok"})


async def _status(request):
    server = _server(request)
    return JSONResponse({"models": {
        name: {"streams": b.streams, "generating": b.generating, "max_streams": b.max_streams}
        for name, b in server.batchers.items()}})


async def _root(request):
    """The page for browsers; rnn-writer's start-up check (it asks for JSON) gets a greeting."""
    server = request.app.state.server
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"message": f"charrnn serve: {', '.join(server.models)}"})
    return Response(_asset("page.html"), media_type="text/html; charset=utf-8")


async def _page_js(request):
    return Response(_asset("page.js"), media_type="text/javascript; charset=utf-8")


def _asset(name):
    return resources.files("charrnn.serve").joinpath(name).read_bytes()
