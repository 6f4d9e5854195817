"""`charrnn serve`: checkpoints behind an HTTP API that real clients speak.

    from charrnn.serve import load_models, make_app
    app = make_app(load_models(["shakespeare"], "checkpoints"))   # an ASGI app
    # uvicorn.run(app, port=8000), or mount it in your own Starlette / FastAPI app

Parts, one job each: `requests` (a request body, validated once into a typed `Completion`;
`ApiError`, the one error shape), `models` (a checkpoint as a `ServedModel`), `batcher` (per
model, the loop that advances every stream in one batched step), `responses` (OpenAI's
response and stream shapes), `app` (routes, API key, CORS, limits), `page.html`/`page.js`
(the playground). Needs starlette (and uvicorn to run it).
"""

from charrnn.serve.app import make_app
from charrnn.serve.models import ServedModel, load_models
from charrnn.serve.requests import ApiError, Limits

__all__ = ["make_app", "load_models", "ServedModel", "Limits", "ApiError"]
