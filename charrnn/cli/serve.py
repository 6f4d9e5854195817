"""`charrnn serve`: parse the options, load the models, run the app under uvicorn.

Imports nothing heavy at module level (numpy, starlette and uvicorn load when the command
runs), so that `charrnn --help` stays fast. The app itself is `charrnn.serve`.
"""

import signal

import click

from charrnn.cli.base import _OUT_DIR, _complete_runs

SERVE_NEEDS = ("charrnn serve needs starlette and uvicorn; install them with: "
               "pip install starlette uvicorn")
STOP_SECONDS = 1.0  # after Ctrl-C, how long uvicorn waits for responses still being written


@click.command("serve")
@click.argument("targets", nargs=-1, metavar="[RUN|CKPT]...", shell_complete=_complete_runs)
@_OUT_DIR
@click.option("--host", default="127.0.0.1",
              help="Address to listen on; 0.0.0.0 exposes the server to the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000,
              help="Port to listen on; 0 picks a free one (the start line says which).")
@click.option("--api-key", envvar="CHARRNN_API_KEY", show_envvar=True, default=None,
              help="Require 'Authorization: Bearer KEY' on every route but /health and "
                   "the page.")
@click.option("--max-streams", type=click.IntRange(1, 4096), default=64,
              help="Streams generated at once per model (a request's n x prompts); a "
                   "request that does not fit gets 429 and Retry-After: 1.")
@click.option("--max-tokens", type=click.IntRange(1), default=4096,
              help="The most characters a choice may ask for (max_tokens).")
@click.option("--max-prompt", type=click.IntRange(1), default=16384,
              help="The longest prompt, in characters.")
@click.option("--cors-origin", multiple=True, metavar="ORIGIN",
              help="Let pages from ORIGIN (e.g. http://localhost:3000) call the API; "
                   "repeatable; '*' for any.")
def serve_command(targets, out_dir, host, port, api_key, max_streams, max_tokens, max_prompt,
                  cors_origin):
    """Serve models over HTTP: OpenAI completions, rnn-writer, a playground page.

    Without RUN|CKPT, every run under --out-dir that has a checkpoint; each model is
    named by its run (a loose .npz by its file name without .npz). The page is at the
    URL the start line gives; the API is POST /v1/completions (OpenAI's shape, a token
    being a character), GET /v1/models, GET /generate (rnn-writer), GET /health.
    Ctrl-C or SIGTERM stops within 2 seconds, ending the streams in flight.

    \b
    Examples:
      charrnn serve                             every run, on 127.0.0.1:8000
      charrnn serve shakespeare --port 0        one run, on a free port
      CHARRNN_API_KEY=secret charrnn serve --host 0.0.0.0
    """
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise click.ClickException(SERVE_NEEDS) from None
    from charrnn.serve import Limits, load_models, make_app

    models = load_models(targets, out_dir)
    limits = Limits(max_tokens=max_tokens, max_prompt=max_prompt, max_streams=max_streams)
    app = make_app(models, api_key=api_key, limits=limits, cors_origins=cors_origin)
    sock = _listen(host, port)
    url = f"http://{_shown_host(host)}:{sock.getsockname()[1]}/"
    line = (f"serving {', '.join(models)} at {url} (the page; the API under {url}v1"
            f"{', API key required' if api_key else ''}); Ctrl-C stops")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=STOP_SECONDS)
    server = _make_server(config, line)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
        if server.stopping:
            click.echo("stopped.", err=True)


def _terminated(signum, frame):
    """SIGTERM, re-raised by uvicorn once it has shut down: exit 143 (128 + SIGTERM)."""
    raise SystemExit(128 + signum)


def _listen(host, port):
    """A bound socket for host:port (port 0: a free one); an error sentence if it cannot be."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: "
                                   f"{getattr(exc, 'strerror', None) or exc}.") from None
    return sock


def _shown_host(host):
    return f"[{host}]" if ":" in host else host


def _make_server(config, line):
    """A uvicorn server that prints `line` on stderr once it listens and, on Ctrl-C or
    SIGTERM, ends the app's streams at once (their responses end cleanly) before it shuts
    down."""
    import uvicorn

    class Server(uvicorn.Server):
        stopping = False

        async def startup(self, sockets=None):
            await super().startup(sockets)
            if self.started:
                click.echo(line, err=True)

        def handle_exit(self, sig, frame):
            self.stopping = True
            self.config.app.state.server.stop()
            super().handle_exit(sig, frame)

    return Server(config)
