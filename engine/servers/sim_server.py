"""serve-sim: a simulated engine (engine.sim preset) behind an OpenAI-compatible server.

Why: to load the live gateway with many fast backends without GPUs. Tokens are
streamed at the pace the simulator models (vLLM V1 continuous batching and its
step cost), `/metrics` uses vLLM's names, embeddings take the modelled batch
time. Prompt size is counted as whitespace-separated words (the load
generator's synthetic prompts are one token per word); output size is
`max_tokens` (the simulated model never stops early). Hot paths build JSON by
hand: the server must keep up with ~1000 req/s shared by 8 instances on 2 cores.
Run with ``python -m engine.servers.sim_server`` or ``sagetui engine serve-sim``.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import uuid
from typing import Any

import numpy as np
from aiohttp import web

from engine.servers.common import (
    BadRequest,
    EngineMetrics,
    base_app,
    check_model,
    embedding_inputs,
    read_json,
    run,
)
from engine.servers.sim_driver import SimDriver, SimStream

# Embedding width per model, for the vectors a simulated embedding engine returns.
KNOWN_DIMS = {"all-MiniLM-L6-v2": 384, "BAAI/bge-large-en-v1.5": 1024}
_WORD = " tok"


def _count_words(text: Any, field: str) -> int:
    if not isinstance(text, str):
        raise BadRequest(f"{field}: must be a string", field)
    return len(text.split())


def prompt_size(body: dict[str, Any], chat: bool) -> int:
    """Prompt tokens as words; validates `messages` / `prompt`."""
    if chat:
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise BadRequest("messages: required, a non-empty list", "messages")
        n = 0
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise BadRequest(f"messages[{i}]: must be an object with a string 'role'",
                                 "messages")
            content = m.get("content", "")
            if isinstance(content, list):  # OpenAI content parts
                for j, part in enumerate(content):
                    if not isinstance(part, dict):
                        raise BadRequest(f"messages[{i}].content[{j}]: must be an object",
                                         "messages")
                    n += _count_words(part.get("text", ""), f"messages[{i}].content[{j}].text")
            elif content is not None:
                n += _count_words(content, f"messages[{i}].content")
        return max(n, 1)
    if "prompt" not in body:
        raise BadRequest("prompt: required", "prompt")
    prompt = body["prompt"]
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise BadRequest("prompt: one prompt per request (batched prompts unsupported)",
                             "prompt")
        prompt = prompt[0]
    return max(_count_words(prompt, "prompt"), 1)


def _int_field(body: dict[str, Any], name: str, default: int | None, lo: int) -> int:
    v = body.get(name, default)
    if v is None:
        raise BadRequest(f"{name}: required by the simulated engine (it never stops early)", name)
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadRequest(f"{name}: must be an integer", name)
    if v < lo:
        raise BadRequest(f"{name}: must be >= {lo}, got {v}", name)
    return v


class SimServer:
    """Routes for one preset: LLM presets serve chat/completions, embedding presets embeddings."""

    def __init__(self, preset: Any, *, stream_interval: int = 1, priority_scheduling: bool = False,
                 served_name: str | None = None, dim: int | None = None):
        from engine.sim.cost import LLMPreset

        self.preset = preset
        self.is_llm = isinstance(preset, LLMPreset)
        if self.is_llm:
            from engine.sim.llm import SimLLMEngine

            engine: Any = SimLLMEngine(preset, priority_scheduling=priority_scheduling,
                                       token_events=True)
        else:
            from engine.sim.embed import SimEmbeddingEngine

            engine = SimEmbeddingEngine(preset)
            dim = dim or preset.extra.get("dim") or KNOWN_DIMS.get(preset.model)
            if not dim:
                raise ValueError(f"dim: preset {preset.name!r} (model {preset.model!r}) has no "
                                 "known embedding width; pass --dim")
            vec = np.random.default_rng(0).standard_normal(dim).astype(np.float32)
            vec /= np.linalg.norm(vec)
            self._vec_float = json.dumps([round(float(x), 6) for x in vec])
            self._vec_b64 = json.dumps(base64.b64encode(vec.astype("<f4").tobytes()).decode())
        self.dim = dim
        self.driver = SimDriver(engine, stream_interval=stream_interval)
        self.served = list(dict.fromkeys([served_name or preset.model, preset.name]))
        self.metrics = EngineMetrics(self.served[0], lambda: engine.stats().running,
                                     lambda: engine.stats().waiting,
                                     lambda: engine.stats().kv_use)

    def app(self) -> web.Application:
        app = base_app(self.served, f"sagetui-sim {self.preset.name}", self.metrics)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completion)
        app.router.add_post("/v1/embeddings", self.embeddings)
        return app

    # -- generation -------------------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def completion(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _generate(self, request: web.Request, chat: bool) -> web.StreamResponse:
        if not self.is_llm:
            raise BadRequest(f"this engine serves embeddings only (preset {self.preset.name!r})",
                             code="unsupported")
        body = await read_json(request)
        model = check_model(body, self.served)
        prompt = prompt_size(body, chat)
        key = "max_completion_tokens" if chat and "max_tokens" not in body else "max_tokens"
        out = _int_field(body, key, None, 1)
        priority = _int_field(body, "priority", 0, -(2**31))
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise BadRequest("stream: must be a boolean", "stream")
        opts = body.get("stream_options") or {}
        if not isinstance(opts, dict):
            raise BadRequest("stream_options: must be an object", "stream_options")
        try:
            s = self.driver.submit_llm(prompt, out, priority)
        except ValueError as exc:
            raise BadRequest(str(exc), key) from exc
        try:
            if stream:
                return await self._stream(request, s, chat, model, prompt,
                                          bool(opts.get("include_usage")))
            while not s.done:
                await s.take()
            return self._full(chat, model, prompt, out)
        finally:
            self.driver.abort(s)  # no-op when finished; frees capacity if the client left

    async def _stream(self, request: web.Request, s: SimStream, chat: bool, model: str,
                      prompt: int, usage: bool) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        head = (f'data: {{"id":"{rid}","object":"'
                f'{"chat.completion.chunk" if chat else "text_completion"}",'
                f'"created":{int(time.time())},"model":{json.dumps(model)},"choices":[{{"index":0,')
        first = True
        while not s.done:
            n = await s.take()
            if not n:
                continue
            text = _WORD * n
            if chat:
                role = '"role":"assistant",' if first else ""
                piece = f'"delta":{{{role}"content":"{text}"}},"logprobs":null,"finish_reason":null}}]}}\n\n'
            else:
                piece = f'"text":"{text}","logprobs":null,"finish_reason":null}}]}}\n\n'
            first = False
            await resp.write((head + piece).encode())
        end = ('"delta":{},"logprobs":null,"finish_reason":"length"}]}\n\n' if chat
               else '"text":"","logprobs":null,"finish_reason":"length"}]}\n\n')
        tail = head + end
        if usage:
            tail += (f'data: {{"id":"{rid}","object":"{"chat.completion.chunk" if chat else "text_completion"}",'
                     f'"created":{int(time.time())},"model":{json.dumps(model)},"choices":[],'
                     f'"usage":{{"prompt_tokens":{prompt},"total_tokens":{prompt + s.total},'
                     f'"completion_tokens":{s.total}}}}}\n\n')
        await resp.write((tail + "data: [DONE]\n\n").encode())
        self.metrics.success.inc()
        self.metrics.prompt_tokens.inc(prompt)
        self.metrics.generation_tokens.inc(s.total)
        await resp.write_eof()
        return resp

    def _full(self, chat: bool, model: str, prompt: int, out: int) -> web.Response:
        text = _WORD * out
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length", "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        self.metrics.success.inc()
        self.metrics.prompt_tokens.inc(prompt)
        self.metrics.generation_tokens.inc(out)
        return web.json_response({
            "id": ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex,
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()), "model": model, "choices": [choice],
            "usage": {"prompt_tokens": prompt, "completion_tokens": out,
                      "total_tokens": prompt + out}})

    # -- embeddings -------------------------------------------------------------------------

    async def embeddings(self, request: web.Request) -> web.Response:
        if self.is_llm:
            raise BadRequest(f"this engine serves chat/completions only (preset "
                             f"{self.preset.name!r})", code="unsupported")
        body = await read_json(request)
        model = check_model(body, self.served)
        texts = embedding_inputs(body)
        tokens = sum(max(len(t.split()), 1) for t in texts)
        s = self.driver.submit_embedding(len(texts), tokens)
        try:
            while not s.done:
                await s.take()
        finally:
            self.driver.abort(s)
        vec = self._vec_b64 if body.get("encoding_format") == "base64" else self._vec_float
        items = ",".join(f'{{"object":"embedding","index":{i},"embedding":{vec}}}'
                         for i in range(len(texts)))
        self.metrics.success.inc()
        self.metrics.prompt_tokens.inc(tokens)
        return web.Response(
            text=(f'{{"object":"list","data":[{items}],"model":{json.dumps(model)},'
                  f'"usage":{{"prompt_tokens":{tokens},"total_tokens":{tokens}}}}}'),
            content_type="application/json")


def serve(*, preset: str, host: str = "127.0.0.1", port: int = 8100, stream_interval: int = 1,
          priority_scheduling: bool = False, served_name: str | None = None,
          dim: int | None = None) -> None:
    """Serve `preset` in real time until SIGINT/SIGTERM."""
    from engine.sim.presets import get_preset

    try:
        p = get_preset(preset)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from exc
    server = SimServer(p, stream_interval=stream_interval,
                       priority_scheduling=priority_scheduling, served_name=served_name, dim=dim)
    run(server.app(), host, port)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """serve-sim's flags. `--scheduling-policy` is vLLM's spelling, so a launched sim
    backend takes the same `extra_args` as the `vllm serve` it stands for."""
    p = argparse.ArgumentParser(prog="serve-sim", description=__doc__.splitlines()[0])
    p.add_argument("--preset", required=True, help="simulator preset (engine.sim.presets)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--stream-interval", type=int, default=1,
                   help="send a chunk every N tokens (like vLLM's --stream-interval)")
    p.add_argument("--priority-scheduling", action="store_true")
    p.add_argument("--scheduling-policy", choices=("fcfs", "priority"), default=None,
                   help="as vLLM's; priority = --priority-scheduling")
    p.add_argument("--served-name", default=None, help="model id (default: the preset's model)")
    p.add_argument("--dim", type=int, default=None, help="embedding width (embedding presets)")
    a = p.parse_args(argv)
    if a.scheduling_policy is not None:
        a.priority_scheduling = a.scheduling_policy == "priority"
    return a


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    try:
        serve(preset=a.preset, host=a.host, port=a.port, stream_interval=a.stream_interval,
              priority_scheduling=a.priority_scheduling, served_name=a.served_name, dim=a.dim)
    except ValueError as exc:
        sys.exit(f"serve-sim: {exc}")


if __name__ == "__main__":
    main()
