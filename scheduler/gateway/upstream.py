"""Raw request relay from the gateway to engines: a lean pooled HTTP/1.1 client.

Why not aiohttp's client on this path: per call it builds a request object, a
header multidict, a response object and timeout handles, and every streamed
chunk resumes a coroutine that then writes it out again; together that cost
more CPU than a bare proxy's whole hop (docs/benchmarks.md). Here a call is
one write on a kept-alive connection, httptools (the parser uvicorn uses)
reads the answer, and a streamed body goes from `data_received` straight to a
sink (the client's connection) with no task switch per chunk.

The gateway passes the engine's bytes through unparsed. Health probes
go through this pool too (`probe`); /metrics scrapes use engine.http.HTTPEngine
(aiohttp): one a second per engine.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httptools

_mono = time.monotonic


class UpstreamUnavailable(Exception):
    """The engine could not be reached: nothing was started there."""


class UpstreamBroken(Exception):
    """The connection ended after the engine took the request (or the gateway
    aborted the call): the answer is incomplete."""


class _Target:
    """One engine's address and the request head prefix for it."""

    __slots__ = ("host", "idle", "port", "prefix", "ssl")

    def __init__(self, base_url: str) -> None:
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"url: expected http(s)://host[:port], got {base_url!r}")
        self.host = u.hostname
        self.ssl: ssl.SSLContext | None = (ssl.create_default_context()
                                           if u.scheme == "https" else None)
        self.port = u.port or (443 if self.ssl else 80)
        self.prefix = u.path.rstrip("/").encode()
        self.idle: list[Conn] = []


class Conn(asyncio.Protocol):
    """One keep-alive connection carrying one call at a time; it is also the call's
    response (`status`, `content_type`, `head()`, `read()`, `first_body()`, `pipe()`)."""

    def __init__(self, pool: Pool, target: _Target) -> None:
        self.pool = pool
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.content_type = ""
        self._framed = False  # Content-Length or chunked: the end is known without EOF
        self._headed = False
        self.complete = False
        self._keep = False
        self.error: BaseException | None = None
        self._body: list[bytes] = []
        self._sink: Callable[[bytes, bytes], Any] | None = None
        self._waiter: asyncio.Future | None = None
        self._want = 0  # what the waiter waits for: 1 head, 2 some body, 3 the end
        self.last_read = 0.0
        self.idle_since = 0.0
        self._paused = False
        self._tail = b""  # written with the body's last piece (a stream's terminator)

    # -- asyncio protocol -------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        try:
            self.target.idle.remove(self)
        except ValueError:
            pass
        if self.complete or self.error is not None:
            return
        if self._headed and not self._framed:  # a body delimited by the close (HTTP/1.0)
            self.complete = True
            self.pool.active.discard(self)
            self._flush()
            self._wake()
            return
        if self._headed:
            self._fail(UpstreamBroken(f"connection closed mid-answer ({exc or 'EOF'})"))
        else:
            self._fail(UpstreamUnavailable(f"connection closed before an answer "
                                           f"({exc or 'EOF'})"))

    def data_received(self, data: bytes) -> None:
        self.last_read = _mono()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamBroken(f"malformed HTTP answer: {exc}"))
            self.abort()
            return
        self._flush()
        if self.complete:
            self.pool.active.discard(self)
        if self._want and self._ready():
            self._wake()

    def pause_reading(self) -> None:
        """The client reads slower than the engine writes: stop reading the engine."""
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self._paused:
            self._paused = False
            self.transport.resume_reading()

    # -- httptools callbacks ----------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        n = name.lower()
        if n == b"content-type":
            self.content_type = value.decode("latin-1")
        elif n == b"content-length" or (n == b"transfer-encoding"
                                         and b"chunked" in value.lower()):
            self._framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self._headed = True
        if self.status == 204 or self.status == 304:
            self._framed = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True
        self._keep = self.parser.should_keep_alive()

    # -- the call ---------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        assert self.transport is not None
        # the parser is reused: a kept connection is only ever between two answers
        self.status, self.content_type = 0, ""
        self._framed = self._headed = self.complete = self._keep = False
        self.error, self._sink, self._tail = None, None, b""
        self._body = []
        self.last_read = _mono()
        self.pool.active.add(self)  # its read timeout is watched by the pool's sweep
        self.transport.write(data)

    def _flush(self) -> None:
        sink = self._sink
        if sink is not None and (self._body or (self.complete and self._tail)):
            body = self._body
            data = body[0] if len(body) == 1 else b"".join(body)
            self._body = []
            if self.complete:
                sink(data, self._tail)
                self._tail = b""
            else:
                sink(data, b"")

    def _ready(self) -> bool:
        w = self._want
        return ((w == 1 and self._headed) or (w == 2 and (bool(self._body) or self.complete))
                or (w == 3 and self.complete))

    def _wake(self) -> None:
        fut = self._waiter
        if fut is not None and not fut.done():
            if self.error is not None:
                fut.set_exception(self.error)
            else:
                fut.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None and not self.complete:
            self.error = exc
            self.pool.active.discard(self)
            self._wake()

    async def _wait(self, want: int) -> None:
        if self.error is not None:
            raise self.error
        self._want = want
        if not self._ready():
            loop = self.pool.loop
            assert loop is not None
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._want = 0
        if self.error is not None:
            raise self.error

    async def head(self) -> None:
        """Wait for the status line and headers (`status`, `content_type`)."""
        await self._wait(1)

    async def read(self) -> bytes:
        """The whole body."""
        await self._wait(3)
        body, self._body = self._body, []
        return body[0] if len(body) == 1 else b"".join(body)

    async def first_body(self) -> bytes:
        """What of the body has come so far, once some has (b"" for an empty body)."""
        await self._wait(2)
        body, self._body = self._body, []
        return body[0] if len(body) == 1 else b"".join(body)

    async def pipe(self, sink: Callable[[bytes, bytes], Any], tail: bytes = b"") -> None:
        """Hand each piece of the rest of the body to `sink(piece, b"")` as it arrives
        (from the event loop's read callback), the last as `sink(piece, tail)` so that
        an end marker goes out in the same write; return at the end of the answer
        (`tail` was sent then, and only then)."""
        self._sink, self._tail = sink, tail
        self._flush()
        try:
            await self._wait(3)
        finally:
            self._sink = None

    def abort(self) -> None:
        """Close the connection now (the engine sees a disconnect and aborts its work)."""
        if self.error is None and not self.complete:
            self._fail(UpstreamBroken("call aborted by the gateway"))
        if self.transport is not None:
            self.transport.abort()

    close = abort  # what the runtime calls to drop a call (aiohttp's name)

    def release(self) -> None:
        """The call is over: keep the connection for the next call if it is clean."""
        self.pool.active.discard(self)
        if (self.complete and self._keep and self.error is None
                and self.transport is not None and not self.transport.is_closing()):
            self._sink = None
            self.resume_reading()
            self.idle_since = _mono()
            self.target.idle.append(self)
        else:
            self.abort()


class Pool:
    """Kept-alive connections per engine; a call takes one, `release()` gives it back."""

    def __init__(self, connect_timeout_s: float, read_timeout_s: float,
                 keepalive_s: float) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.keepalive_s = keepalive_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self._targets: dict[str, _Target] = {}
        self._heads: dict[tuple[str, str], bytes] = {}
        # Calls waiting on their engine. One sweep a second (a quarter of the read
        # timeout when that is short) fails those quiet for longer than the read
        # timeout: a timer per call cost more than the rest of the call's bookkeeping.
        self.active: set[Conn] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_s = min(1.0, read_timeout_s / 4)

    def _sweep(self) -> None:
        now = _mono()
        limit = self.read_timeout_s
        for c in [c for c in self.active if now - c.last_read >= limit]:
            c._fail(TimeoutError(f"no answer for {limit:g} s"))
            c.abort()
        assert self.loop is not None
        self._sweeper = self.loop.call_later(self._sweep_s, self._sweep)

    def _target(self, base_url: str) -> _Target:
        t = self._targets.get(base_url)
        if t is None:
            t = self._targets[base_url] = _Target(base_url)
        return t

    def _head(self, base_url: str, path: str) -> bytes:
        key = (base_url, path)
        h = self._heads.get(key)
        if h is None:
            t = self._target(base_url)
            host = t.host if t.port in (80, 443) else f"{t.host}:{t.port}"
            h = self._heads[key] = (b"POST " + t.prefix + path.encode() + b" HTTP/1.1\r\nHost: "
                                    + host.encode() + b"\r\nContent-Type: application/json"
                                    b"\r\nContent-Length: ")
        return h

    async def _connect(self, t: _Target) -> Conn:
        loop = self.loop or asyncio.get_running_loop()
        self.loop = loop
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(
                    lambda: Conn(self, t), t.host, t.port, ssl=t.ssl,
                    server_hostname=t.host if t.ssl else None)
        except TimeoutError:  # a swamped engine, not a dead one: not taken out for it
            raise TimeoutError(f"connect to {t.host}:{t.port} timed out after "
                               f"{self.connect_timeout_s:g} s") from None
        except OSError as exc:
            raise UpstreamUnavailable(f"{type(exc).__name__}: {exc}") from None
        return conn

    async def post(self, base_url: str, path: str, body: bytes) -> Conn:
        """Send `body` as POST base_url+path; return the call once sent (then `head()`).

        Raise UpstreamUnavailable when the engine cannot be reached (refused, reset),
        TimeoutError when it does not accept within the connect timeout.
        """
        return await self._call(base_url, self._head(base_url, path) + b"%d\r\n\r\n"
                                % len(body) + body)

    async def probe(self, base_url: str, path: str, timeout_s: float) -> bool:
        """True when GET base_url+path answers 200 within `timeout_s` (health probes:
        ten a second per gateway, so not through aiohttp either)."""
        t = self._target(base_url)
        host = t.host if t.port in (80, 443) else f"{t.host}:{t.port}"
        conn = None
        try:
            async with asyncio.timeout(timeout_s):
                conn = await self._call(base_url, b"GET " + t.prefix + path.encode()
                                        + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n")
                await conn.read()
                return conn.status == 200
        except (TimeoutError, UpstreamUnavailable, UpstreamBroken):
            return False
        finally:
            if conn is not None:
                conn.release()

    async def _call(self, base_url: str, data: bytes) -> Conn:
        t = self._target(base_url)
        conn = None
        idle, now = t.idle, _mono()
        while idle:
            c = idle.pop()
            if now - c.idle_since < self.keepalive_s and c.transport is not None:
                conn = c
                break
            c.abort()
        if conn is None:
            conn = await self._connect(t)
        if self._sweeper is None:
            assert self.loop is not None
            self._sweeper = self.loop.call_later(self._sweep_s, self._sweep)
        conn._send(data)
        return conn

    def close(self) -> None:
        """Close every kept connection (calls in progress are closed by their owners)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for t in self._targets.values():
            for c in t.idle:
                if c.transport is not None:
                    c.transport.close()
            t.idle.clear()
