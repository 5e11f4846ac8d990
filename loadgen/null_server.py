"""A trivial OpenAI-compatible server: the load generator's self-check.

Why: to measure the client's own ceiling and timing accuracy, the server must
cost (almost) nothing and answer with a known pace: first token after
`ttft_ms`, then one token every `tpot_ms`, on absolute deadlines. `fault`
makes it misbehave on purpose (garbage SSE, a stream closed mid-way, HTTP
500) so tests can check that such requests fail with a reason.

    python -m loadgen.null_server --port P --ttft-ms X --tpot-ms Y
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
from typing import Any

import numpy as np
from aiohttp import web

FAULTS = ("none", "garbage", "close", "http500", "error_event")
EMBED_DIM = 384
BACKLOG = 4096  # many client connections at once (multi-process runs) must not be refused


def _role_chunk(rid: str, model: str) -> bytes:
    """vLLM's first chat chunk: the role, no output yet."""
    obj = {"id": rid, "object": "chat.completion.chunk", "model": model,
           "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _chunk(kind: str, rid: str, model: str, text: str | None, usage: dict | None = None) -> bytes:
    obj: dict[str, Any]
    if kind == "chat":
        choices = [] if text is None else [{"index": 0, "delta": {"content": text}, "finish_reason": None}]
        obj = {"id": rid, "object": "chat.completion.chunk", "model": model, "choices": choices}
    else:
        choices = [] if text is None else [{"index": 0, "text": text, "finish_reason": None}]
        obj = {"id": rid, "object": "text_completion", "model": model, "choices": choices}
    if usage is not None:
        obj["usage"] = usage
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def embed_text(text: str, dim: int = EMBED_DIM) -> list[float]:
    """A deterministic unit vector per text (so retrieval is repeatable)."""
    seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    v = np.random.default_rng(seed).standard_normal(dim)
    return (v / np.linalg.norm(v)).round(6).tolist()


class NullServer:
    def __init__(self, ttft_ms: float = 0.0, tpot_ms: float = 0.0, fault: str = "none"):
        if fault not in FAULTS:
            raise ValueError(f"fault: {fault!r} is not one of {', '.join(FAULTS)}")
        if ttft_ms < 0 or tpot_ms < 0:
            raise ValueError("ttft_ms and tpot_ms must be >= 0")
        self.ttft = ttft_ms / 1000
        self.tpot = tpot_ms / 1000
        self.fault = fault
        self.requests = 0
        self.headers_seen: list[dict] = []  # last few requests' X- headers, for tests

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completion)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "null", "object": "model"}]})

    def _note(self, request: web.Request) -> None:
        self.requests += 1
        if len(self.headers_seen) < 64:
            self.headers_seen.append({k: v for k, v in request.headers.items() if k.lower().startswith("x-")})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "chat")

    async def _completion(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "completion")

    async def _generate(self, request: web.Request, kind: str) -> web.StreamResponse:
        t_start = time.monotonic()
        body = await request.json()
        self._note(request)
        if self.fault == "http500":
            return web.json_response({"error": {"message": "null server: injected failure"}}, status=500)
        n = int(body.get("max_tokens") or 16)
        model = body.get("model", "null")
        rid = request.headers.get("X-Request-Id", "null")
        prompt = body.get("prompt") if kind == "completion" else " ".join(
            m.get("content", "") for m in body.get("messages", []))
        usage = {"prompt_tokens": len(str(prompt).split()), "completion_tokens": n,
                 "total_tokens": len(str(prompt).split()) + n}
        if not body.get("stream"):
            text = "tok " * n
            choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                      if kind == "chat" else {"index": 0, "text": text, "finish_reason": "length"})
            await asyncio.sleep(self.ttft + self.tpot * max(0, n - 1))
            return web.json_response({"id": rid, "model": model, "choices": [choice], "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "x-sage-backend": "null"})
        await resp.prepare(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        head = _role_chunk(rid, model) if kind == "chat" else b""
        tok = _chunk(kind, rid, model, "tok ")  # every token chunk is the same bytes
        if self.fault == "garbage":
            await resp.write(b"data: {not json at all\n\n")
            return resp
        if self.fault == "error_event":
            await resp.write(b'data: {"error": {"message": "engine overloaded", "code": 503}}\n\n')
            return resp
        if self.ttft == 0 and self.tpot == 0:
            parts = [head] + [tok] * n
            if include_usage:
                parts.append(_chunk(kind, rid, model, None, usage))
            await resp.write(b"".join(parts) + b"data: [DONE]\n\n")
            return resp
        if head:
            await resp.write(head)
        for i in range(n):
            delay = t_start + self.ttft + i * self.tpot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await resp.write(tok)
            if self.fault == "close" and i == n // 2:
                if request.transport is not None:  # None once the client has gone
                    request.transport.close()  # the stream ends mid-way, no [DONE]
                return resp
        if include_usage:
            await resp.write(_chunk(kind, rid, model, None, usage))
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def _embeddings(self, request: web.Request) -> web.Response:
        t_start = time.monotonic()
        body = await request.json()
        self._note(request)
        if self.fault == "http500":
            return web.json_response({"error": {"message": "null server: injected failure"}}, status=500)
        if self.fault in ("garbage", "close"):
            return web.Response(text="<html>not json</html>", content_type="application/json")
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts:
            return web.json_response({"error": {"message": "input: expected text(s)"}}, status=400)
        delay = t_start + self.ttft - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        data = [{"object": "embedding", "index": i, "embedding": embed_text(str(t))} for i, t in enumerate(texts)]
        n_tok = sum(len(str(t).split()) for t in texts)
        return web.json_response({"object": "list", "data": data, "model": body.get("model", "null"),
                                  "usage": {"prompt_tokens": n_tok, "total_tokens": n_tok}},
                                 headers={"x-sage-backend": "null"})


async def start(host: str = "127.0.0.1", port: int = 0, **kw) -> tuple[web.AppRunner, int, NullServer]:
    """Start in the running loop; returns (runner, bound port, server). Stop with runner.cleanup()."""
    srv = NullServer(**kw)
    runner = web.AppRunner(srv.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=BACKLOG)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, bound, srv


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m loadgen.null_server", description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ttft-ms", type=float, default=0.0)
    ap.add_argument("--tpot-ms", type=float, default=0.0)
    ap.add_argument("--fault", choices=FAULTS, default="none")
    a = ap.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(NullServer(a.ttft_ms, a.tpot_ms, a.fault).app(), host=a.host, port=a.port,
                access_log=None, print=None, backlog=BACKLOG)


if __name__ == "__main__":
    main()
