"""A small real OpenAI-compatible upstream for the gateway tests.

Why here: loadgen/null_server.py and serve-sim were not there when these
tests were written; swap in whichever lands first. It counts what the gateway
sends it (calls, batch sizes, aborted streams) so tests can assert on it.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from scheduler.gateway.embed_batch import as_inputs

DIM = 8


class Upstream:
    def __init__(self, name: str, model: str = "tiny", embed_model: str = "mini",
                 token_delay_s: float = 0.0, embed_delay_s: float = 0.0) -> None:
        self.name = name
        self.model = model
        self.embed_model = embed_model
        self.token_delay_s = token_delay_s
        self.stall_s = 0.0  # extra pause before every token after the first
        self.hung = False  # /health never answers (like a SIGSTOPped engine)
        self.embed_delay_s = embed_delay_s
        self.calls: list[tuple[str, dict]] = []
        self.embed_batches: list[int] = []
        self.running = 0
        self.max_running = 0
        self.aborted = 0
        self.completed = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> Upstream:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embed)
        self.runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Like a killed engine: the port closes and open connections drop."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _health(self, _r: web.Request) -> web.Response:
        if self.hung:  # a paused engine: the port is open, nothing answers
            await asyncio.sleep(3600)
        return web.Response(text="")

    async def _metrics(self, _r: web.Request) -> web.Response:
        return web.Response(text=(
            f"vllm:num_requests_running{{model_name=\"{self.model}\"}} {self.running}\n"
            f"vllm:num_requests_waiting{{model_name=\"{self.model}\"}} 0\n"
            f"vllm:kv_cache_usage_perc{{model_name=\"{self.model}\"}} 0.1\n"))

    async def _models(self, _r: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": self.model, "object": "model"}, {"id": self.embed_model, "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.calls.append((request.path, body))
        chat = request.path.endswith("chat/completions")
        n = min(64, body.get("max_completion_tokens") or body.get("max_tokens") or 16)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if body.get("stream"):
                return await self._stream(request, chat, n)
            await asyncio.sleep(self.token_delay_s * n)
            text = " ".join(["tok"] * n)
            choice = ({"index": 0, "message": {"role": "assistant", "content": text},
                       "finish_reason": "length"} if chat else
                      {"index": 0, "text": text, "finish_reason": "length"})
            self.completed += 1
            return web.json_response({
                "id": "x", "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()), "model": body["model"], "choices": [choice],
                "usage": {"prompt_tokens": 4, "completion_tokens": n, "total_tokens": 4 + n},
                "served_by": self.name})
        except asyncio.CancelledError:
            self.aborted += 1
            raise
        finally:
            self.running -= 1

    async def _stream(self, request: web.Request, chat: bool, n: int) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        for i in range(n):
            await asyncio.sleep(self.token_delay_s if i == 0 else
                                self.token_delay_s + self.stall_s)
            if chat:
                delta = {"content": "tok "} if i else {"role": "assistant", "content": "tok "}
                choice = {"index": 0, "delta": delta, "finish_reason": None}
                obj = "chat.completion.chunk"
            else:
                choice = {"index": 0, "text": "tok ", "finish_reason": None}
                obj = "text_completion"
            if i == n - 1:
                choice["finish_reason"] = "length"
            chunk = {"id": "x", "object": obj, "created": 0, "model": self.model,
                     "choices": [choice]}
            await out.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await out.write(b"data: [DONE]\n\n")
        self.completed += 1
        return out

    async def _embed(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append((request.path, body))
        # OpenAI's forms: a string, a list of them, one list of token ids, or several
        texts = as_inputs(body["input"])
        self.embed_batches.append(len(texts))
        self.running += 1
        try:
            await asyncio.sleep(self.embed_delay_s)
        finally:
            self.running -= 1
        data = []
        for i, t in enumerate(texts):
            seed = len(t) if isinstance(t, str) else sum(t)
            vec = [float(seed + k) for k in range(DIM)]
            if body.get("encoding_format") == "base64":
                import base64
                import struct
                vec = base64.b64encode(struct.pack(f"<{DIM}f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vec})
        self.completed += 1
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": 3 * len(texts),
                                            "total_tokens": 3 * len(texts)}})


def backend(name: str, up: Upstream, caps: list[str], model: str, conc: int = 4) -> dict:
    """A [[backends]] entry for `up`."""
    return {"name": name, "kind": "openai", "capabilities": caps, "model": model,
            "url": up.url, "max_concurrency": conc, "device": "cpu"}
