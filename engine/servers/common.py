"""What every sagetui engine server shares: OpenAI-style errors, request validation,
the `/v1/models`, `/health`, `/version`, `/metrics` routes and the run loop.

Why shared: serve-embed and serve-sim must look like vLLM to the gateway and the
load generator (same JSON shapes, same error bodies, same metric names).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

MAX_BODY_BYTES = 4 * 1024 * 1024


class BadRequest(Exception):
    """A client mistake: becomes a 4xx with an OpenAI-style error body naming the field."""

    def __init__(self, message: str, param: str | None = None, status: int = 400,
                 code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.status, self.code = message, param, status, code


def error_response(status: int, message: str, param: str | None = None,
                   code: str | None = None) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Callable) -> web.StreamResponse:
    """Client mistakes → 4xx JSON; aiohttp's own HTTP errors (404, 405, 413) keep their code."""
    try:
        return await handler(request)
    except BadRequest as exc:
        return error_response(exc.status, exc.message, exc.param, exc.code)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason or "error")


async def read_json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads)
    except web.HTTPRequestEntityTooLarge:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body: not valid JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise BadRequest("body: must be a JSON object")
    return body


def check_model(body: dict[str, Any], served: list[str]) -> str:
    """The requested model, which must be one we serve (absent means the first)."""
    model = body.get("model")
    if model is None:
        return served[0]
    if not isinstance(model, str):
        raise BadRequest("model: must be a string", "model")
    if model not in served:
        raise BadRequest(f"model: {model!r} does not exist; served: {', '.join(served)}",
                         "model", status=404, code="model_not_found")
    return model


def embedding_inputs(body: dict[str, Any]) -> list[str]:
    """`input` as a non-empty list of strings (a single string is one input)."""
    if "input" not in body:
        raise BadRequest("input: required", "input")
    inp = body["input"]
    if isinstance(inp, str):
        inp = [inp]
    if not isinstance(inp, list):
        raise BadRequest("input: must be a string or a list of strings", "input")
    if not inp:
        raise BadRequest("input: must not be empty", "input")
    for i, t in enumerate(inp):
        if not isinstance(t, str):
            raise BadRequest(f"input[{i}]: must be a string (token arrays are not supported)",
                             "input")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise BadRequest(f"encoding_format: {fmt!r} must be 'float' or 'base64'",
                         "encoding_format")
    return inp


def embedding_response(vectors: np.ndarray, model: str, tokens: int,
                       encoding_format: str = "float") -> web.Response:
    if encoding_format == "base64":
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(np.asarray(v, "<f4").tobytes()).decode()}
                for i, v in enumerate(vectors)]
    else:
        data = [{"object": "embedding", "index": i, "embedding": v}
                for i, v in enumerate(np.asarray(vectors, np.float32).tolist())]
    return web.json_response({"object": "list", "data": data, "model": model,
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


class EngineMetrics:
    """vLLM-named gauges and counters on a private registry (one per server)."""

    def __init__(self, model: str, running: Callable[[], float], waiting: Callable[[], float],
                 kv_use: Callable[[], float]):
        self.registry = CollectorRegistry()
        labels = {"model_name": model, "engine": "0"}
        for name, doc, fn in (
            ("vllm:num_requests_running", "Requests in model execution batches.", running),
            ("vllm:num_requests_waiting", "Requests waiting to be processed.", waiting),
            ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kv_use),
        ):
            g = Gauge(name, doc, list(labels), registry=self.registry)
            g.labels(**labels).set_function(fn)
        self.success = Counter("vllm:request_success", "Finished requests.", list(labels),
                               registry=self.registry).labels(**labels)
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Prefill tokens processed.",
                                     list(labels), registry=self.registry).labels(**labels)
        self.generation_tokens = Counter("vllm:generation_tokens", "Generated tokens.",
                                         list(labels), registry=self.registry).labels(**labels)

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})


def base_app(served: list[str], version: str, metrics: EngineMetrics) -> web.Application:
    """An app with the routes every engine server has; callers add their POST routes."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=MAX_BODY_BYTES)
    created = int(time.time())
    models = {"object": "list", "data": [
        {"id": m, "object": "model", "created": created, "owned_by": "sagetui", "root": m}
        for m in served]}

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="")

    async def get_version(_: web.Request) -> web.Response:
        return web.json_response({"version": version})

    async def get_models(_: web.Request) -> web.Response:
        return web.json_response(models)

    app.router.add_get("/health", health)
    app.router.add_get("/version", get_version)
    app.router.add_get("/v1/models", get_models)
    app.router.add_get("/metrics", metrics.handle)
    return app


def run(app: web.Application, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM (aiohttp handles both and runs cleanups), on uvloop if present."""
    import asyncio

    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    # Short shutdown: in-flight streams are cut after 1 s instead of aiohttp's 60 s.
    # handler_cancellation: a client that hangs up cancels its handler, which aborts the
    # request in the engine (as vLLM does), also for non-streamed requests.
    web.run_app(app, host=host, port=port, access_log=None, print=None, handle_signals=True,
                shutdown_timeout=1.0, handler_cancellation=True, loop=loop)
