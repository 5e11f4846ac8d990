"""serve-embed: a sentence-transformers engine behind an OpenAI `/v1/embeddings` server.

Why: embedding backends must be reachable over HTTP exactly like vLLM's pooling
runner, so the gateway and the baselines treat every engine alike. Requests
are batched dynamically by engine.st_engine. Run with
``python -m engine.servers.embed_server`` or ``sagetui engine serve-embed``.
"""

from __future__ import annotations

import argparse
import sys

from aiohttp import web
from prometheus_client import Gauge

from engine.servers.common import (
    BadRequest,
    EngineMetrics,
    base_app,
    check_model,
    embedding_inputs,
    embedding_response,
    read_json,
    run,
)
from engine.st_engine import DTYPES, STEngine


def build_app(engine: STEngine, served_name: str | None = None) -> web.Application:
    """The aiohttp app for `engine` (already loaded); closes the engine on shutdown."""
    name = served_name or engine.name
    metrics = EngineMetrics(name, lambda: engine.running, lambda: engine.waiting, lambda: 0.0)
    import sentence_transformers

    # Device and dtype travel with the version string, so each run's backend row records them.
    version = (f"sentence-transformers {sentence_transformers.__version__} "
               f"({engine.device}, {engine.dtype})")
    app = base_app([name], version, metrics)
    Gauge("sagetui:embed_batches", "encode() calls so far (dynamic batches).",
          registry=metrics.registry).set_function(lambda: engine.batches)
    Gauge("sagetui:embed_texts", "Texts embedded so far.",
          registry=metrics.registry).set_function(lambda: engine.texts_done)

    async def embeddings(request: web.Request) -> web.Response:
        body = await read_json(request)
        model = check_model(body, [name])
        texts = embedding_inputs(body)
        dims = body.get("dimensions")
        if dims is not None and dims != engine.dim:
            raise BadRequest(f"dimensions: this model gives {engine.dim}, not {dims!r}",
                             "dimensions")
        res = await engine.embed(texts)
        tokens = sum(res.tokens)
        metrics.success.inc()
        metrics.prompt_tokens.inc(tokens)
        return embedding_response(res.vectors, model, tokens,
                                  body.get("encoding_format", "float"))

    async def on_cleanup(_: web.Application) -> None:
        await engine.close()

    app.router.add_post("/v1/embeddings", embeddings)
    app.on_cleanup.append(on_cleanup)
    return app


def serve(*, host: str = "127.0.0.1", port: int = 8001, device: str = "cpu",
          model: str | None = None, served_name: str | None = None, max_batch: int = 32,
          max_wait_ms: float = 5.0, threads: int | None = 1, dtype: str = "float32") -> None:
    """Load the model, then serve until SIGINT/SIGTERM."""
    engine = STEngine(model, device=device, max_batch=max_batch, max_wait_ms=max_wait_ms,
                      threads=threads, dtype=dtype)
    run(build_app(engine, served_name), host, port)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="serve-embed", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--model", default=None, help="model folder (default: packaged MiniLM)")
    p.add_argument("--served-name", default=None, help="model id to answer to")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1: no OpenMP spin-waiting on a shared CPU)")
    p.add_argument("--dtype", default="float32", choices=DTYPES,
                   help="compute dtype, whatever the checkpoint's (float16: CUDA only pays off)")
    a = p.parse_args(argv)
    try:
        serve(host=a.host, port=a.port, device=a.device, model=a.model,
              served_name=a.served_name, max_batch=a.max_batch, max_wait_ms=a.max_wait_ms,
              threads=a.threads, dtype=a.dtype)
    except ValueError as exc:
        sys.exit(f"serve-embed: {exc}")


if __name__ == "__main__":
    main()
