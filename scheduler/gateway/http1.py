"""The gateway's HTTP/1.1 server: asyncio protocol + httptools, one task per request.

Why not aiohttp's web server: per request it builds a request object with
multidicts, runs the router and middleware chain and a payload writer, which
with aiohttp's client cost more CPU than a bare proxy's whole hop; the
gateway serves six fixed routes and relays bytes. httptools (the parser
uvicorn uses) does the HTTP parsing; this module keeps connections alive,
caps bodies (413 from Content-Length or while reading a chunked body, the
rest of it read and dropped so the answer reaches the client), answers 100
Continue, cancels a request's task when its client disconnects (that aborts
the upstream call) and writes answers in one `write` each, streams as
chunked transfer encoding.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import httptools

log = logging.getLogger("sagetui.gateway")

_REASON = {s.value: s.phrase.encode() for s in HTTPStatus}
MAX_HEAD_BYTES = 64 * 1024  # request line and headers (aiohttp's limits are of this order)
MAX_HEADERS = 128
END_CHUNKED = b"0\r\n\r\n"  # the end of a chunked answer


class Headers(dict):
    """Request headers under lower-case names (the last value of a repeated header
    wins): a plain dict, so a lookup is one C call; look up lower-case names."""


_NAMES: dict[bytes, str] = {}  # header name as sent -> lower-case str, for common names


def _name(raw: bytes) -> str:
    name = raw.decode("latin-1").lower()
    if len(_NAMES) < 512:  # bounded: clients choose the names
        _NAMES[raw] = name
    return name


class HTTPRequest:
    """One parsed request; `too_large` when its body passed the cap (body dropped)."""

    __slots__ = ("body", "conn", "headers", "keep_alive", "method", "path", "too_large")

    def __init__(self, conn: Connection, method: str, path: str, headers: Headers,
                 body: bytes, too_large: bool, keep_alive: bool) -> None:
        self.conn = conn
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.too_large = too_large
        self.keep_alive = keep_alive

    @property
    def remote(self) -> str:
        return self.conn.peer


Handler = Callable[[HTTPRequest], Awaitable[None]]


Headers_ = dict[str, str] | bytes | None  # extra header lines: a dict, or rendered lines


def _head(status: int, content_type: str, headers: Headers_, keep_alive: bool,
          framing: bytes) -> list[bytes]:
    parts = [b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s" % (
        status, _REASON.get(status, b"Unknown"), content_type.encode("latin-1"), framing)]
    if isinstance(headers, bytes):
        parts.append(headers)
    elif headers:
        parts.append("".join([f"{k}: {v}\r\n" for k, v in headers.items()]).encode("latin-1"))
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    return parts


class Connection(asyncio.Protocol):
    """One client connection: parses requests and runs them one at a time, in order."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = ""
        self._url = b""
        self._headers = Headers()
        self._body: list[bytes] = []
        self._size = 0
        self._too_large = False
        self._head_bytes = 0
        self._task: asyncio.Task | None = None
        self._pending: deque[HTTPRequest] = deque()
        self._keep_alive = True  # of the request being answered
        self._head_only = False  # the request being answered is a HEAD: no body goes out
        self.answered = False  # of the request being answered
        # while a stream is relayed: who to tell when the client reads too slowly
        self.on_pause: Callable[[], None] | None = None
        self.on_resume: Callable[[], None] | None = None
        self.paused = False
        self.idle_since = 0.0  # monotonic time the last answer ended (0: busy or new)

    # -- asyncio protocol -------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.idle_since = time.monotonic()
        self.server.conns.add(self)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else ""

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.server.conns.discard(self)
        self._pending.clear()
        if self._task is not None:
            self._task.cancel()  # the client left: its handler stops and frees what it held

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._bad(b"protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._bad(str(exc).encode("utf-8", "replace")[:200])

    def pause_writing(self) -> None:
        self.paused = True
        if self.on_pause is not None:
            self.on_pause()

    def resume_writing(self) -> None:
        self.paused = False
        if self.on_resume is not None:
            self.on_resume()

    def _bad(self, why: bytes) -> None:
        """Malformed HTTP: answer 400 and close (the byte stream cannot be trusted)."""
        if self.transport is None:
            return
        if self._task is None:
            body = (b'{"error":{"message":"Malformed HTTP request: %s","type":'
                    b'"invalid_request_error","param":null,"code":"invalid_http"}}'
                    % why.replace(b'"', b"'").replace(b"\\", b"/"))
            self.transport.write(b"".join(_head(400, "application/json", None, False,
                                                b"Content-Length: %d\r\n" % len(body)))
                                 + body)
        self.transport.close()

    # -- httptools callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        self.idle_since = 0.0
        self._url = b""
        self._head_bytes = 0
        self._headers = Headers()
        self._body = []
        self._size = 0
        self._too_large = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_HEAD_BYTES:
            raise ValueError("request line too long")  # feed_data raises: a 400, closed

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD_BYTES or len(self._headers) >= MAX_HEADERS:
            raise ValueError("headers too large")  # feed_data raises: a 400, closed
        self._headers[_NAMES.get(name) or _name(name)] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        cl = self._headers.get("content-length")
        if cl is not None and cl.isdigit() and int(cl) > self.server.max_body:
            self._too_large = True
        elif (self._headers.get("expect", "").lower() == "100-continue"
              and self.transport is not None):
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._too_large:
            return  # read and dropped, so the 413 reaches a client still sending
        self._size += len(body)
        if self._size > self.server.max_body:
            self._too_large = True
            self._body = []
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        b = self._body
        url = self._url
        q = url.find(b"?")
        req = HTTPRequest(self, self.parser.get_method().decode("latin-1"),
                          (url if q < 0 else url[:q]).decode("latin-1"), self._headers,
                          b[0] if len(b) == 1 else b"".join(b), self._too_large,
                          self.parser.should_keep_alive())
        if self._task is None:
            self._start(req)
        else:
            self._pending.append(req)  # pipelined: answered in order

    # -- running requests ---------------------------------------------------------------

    def _start(self, req: HTTPRequest) -> None:
        self._keep_alive = req.keep_alive
        self._head_only = req.method == "HEAD"
        self.answered = False
        loop = self.server.loop
        assert loop is not None
        self._task = loop.create_task(self._run(req))

    async def _run(self, req: HTTPRequest) -> None:
        try:
            await self.server.handler(req)
        except asyncio.CancelledError:
            return  # the client disconnected
        except Exception:  # a gateway bug: logged, a 500 if nothing was sent yet
            log.exception("gateway bug while serving %s %s", req.method, req.path)
            if not self.answered:
                self.respond(500, b'{"error":{"message":"Internal gateway error.","type":'
                                  b'"internal_error","param":null,"code":"internal_error"}}')
        self._task = None
        self.on_pause = self.on_resume = None
        if self.transport is None:
            return
        if not self._keep_alive:
            self.transport.close()
        elif self._pending:
            self._start(self._pending.popleft())
        else:
            self.idle_since = time.monotonic()

    # -- answers --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.transport is None

    def respond(self, status: int, body: bytes, headers: Headers_ = None,
                content_type: str = "application/json") -> None:
        """A whole answer in one write."""
        self.answered = True
        if self.transport is None:
            return
        parts = _head(status, content_type, headers, self._keep_alive,
                      b"Content-Length: %d\r\n" % len(body))
        if not self._head_only:
            parts.append(body)
        self.transport.write(b"".join(parts))

    def start_chunked(self, status: int, headers: Headers_,
                      content_type: str, first: bytes = b"") -> None:
        """Start a streamed answer (chunked transfer encoding), with its first piece."""
        self.answered = True
        if self.transport is None:
            return
        parts = _head(status, content_type, headers, self._keep_alive,
                      b"Transfer-Encoding: chunked\r\n")
        if first:
            parts.append(b"%x\r\n%s\r\n" % (len(first), first))
        self.transport.write(b"".join(parts))

    def write_chunk(self, data: bytes, tail: bytes = b"") -> None:
        """One piece of a streamed answer, and `tail` (END_CHUNKED) in the same write."""
        if self.transport is not None:
            if data:
                self.transport.write(b"%x\r\n%s\r\n%s" % (len(data), data, tail))
            elif tail:
                self.transport.write(tail)

    def end_chunked(self) -> None:
        if self.transport is not None:
            self.transport.write(END_CHUNKED)


class Server:
    """Serve `handler` on host:port; `close()` stops listening and drops connections.
    A connection idle for `keepalive_s` between requests is closed (a sweep every
    few seconds), so clients that never close cannot pile up."""

    def __init__(self, handler: Handler, max_body: int, keepalive_s: float = 75.0) -> None:
        self.handler = handler
        self.max_body = max_body
        self.keepalive_s = keepalive_s
        self.conns: set[Connection] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self, host: str, port: int, backlog: int = 4096) -> int:
        """Listen; return the bound port."""
        self.loop = asyncio.get_running_loop()
        self._server = await self.loop.create_server(lambda: Connection(self), host, port,
                                                     backlog=backlog, reuse_address=True)
        self._sweep()
        return self._server.sockets[0].getsockname()[1]

    def _sweep(self) -> None:
        cutoff = time.monotonic() - self.keepalive_s
        for c in [c for c in self.conns if 0.0 < c.idle_since < cutoff]:
            if c.transport is not None:
                c.transport.close()
        assert self.loop is not None
        self._sweeper = self.loop.call_later(min(5.0, self.keepalive_s / 2), self._sweep)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._server is not None:
            self._server.close()
        for c in list(self.conns):
            if c.transport is not None:
                c.transport.close()
        tasks = [c._task for c in self.conns if c._task is not None]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
