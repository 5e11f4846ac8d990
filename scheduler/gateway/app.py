"""The gateway's application: OpenAI-compatible endpoints through the core.

Why: clients (the load generator, the `openai` package, curl) talk to one
OpenAI-compatible endpoint; the control plane decides when and where each
request runs. Every answer carries `x-sage-queue-ms`, `x-sage-overhead-us` and
`x-sage-backend` (docs/gateway.md). Client mistakes are 4xx with an OpenAI
error body, never a 5xx. HTTP in and out is the lean layer of `http1` and
`upstream` (why: docs/gateway.md, "Cost per request").
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scheduler.core import ControlPlane
from scheduler.gateway.config import GatewayConfig, GatewayOptions
from scheduler.gateway.embed_batch import BatchError, group_key, merged_body, split_answer
from scheduler.gateway.http1 import END_CHUNKED, Connection, HTTPRequest, Server
from scheduler.gateway.metrics import GatewayMetrics
from scheduler.gateway.runtime import DispatchState, Refused, Runtime, Slot, Ticket
from scheduler.gateway.upstream import Conn, UpstreamBroken, UpstreamUnavailable
from scheduler.gateway.validate import (
    ClientError,
    Parsed,
    effective_priority,
    error_body,
    parse_meta,
    parse_pipeline,
    parse_request,
)
from vocab import Request

log = logging.getLogger("sagetui.gateway")
_mono = time.monotonic

# Keys of the application's state (`app[RUNTIME]`).
RUNTIME = "runtime"
OPTIONS = "options"
MODELS = "models"
METRICS = "metrics"

PATHS = {"chat": "/v1/chat/completions", "completion": "/v1/completions",
         "embedding": "/v1/embeddings"}
# Reasons the core may give, and the HTTP status each becomes (default 503).
REASON_STATUS = {"queue_full": 429, "no_capable_backend": 400, "model_not_served": 404,
                 "slo_infeasible": 429, "slo_shed": 429, "deadline_unmeetable": 429}
# The OpenAI error `type` of a refusal (default: by status). SLO admission answers share
# one type, so a client tells "your objective cannot be met now" from a full queue.
REASON_TYPE = {"slo_infeasible": "slo_infeasible", "slo_shed": "slo_infeasible",
               "deadline_unmeetable": "slo_infeasible"}


@dataclass(slots=True)
class Payload:
    """What the relay needs of the client's request (Request.payload)."""

    raw: bytes  # the body to forward (client's bytes unless a field had to go)
    body: dict[str, Any]
    stream: bool
    src: bytes = b""  # the client's bytes (the base of a body that carries `priority`)
    with_priority: bytes | None = None  # built once, for engines with priority scheduling


def _spliced(src: bytes, priority: int) -> bytes | None:
    """`src` (a UTF-8 JSON object without `priority`) with `"priority":N` as its first
    member, without re-serializing a large body; None when the bytes are not plain
    UTF-8 that starts with `{` (json.loads also reads UTF-16/32 and a BOM)."""
    head = src.lstrip(b" \t\r\n")
    if not head.startswith(b"{") or b"\x00" in head[:4]:
        return None
    rest = head[1:].lstrip(b" \t\r\n")
    sep = b"" if rest.startswith(b"}") else b","
    return b'{"priority":%d%s%s' % (priority, sep, rest)


def upstream_body(payload: Payload, priority: int, forward_priority: bool) -> bytes:
    """The bytes to send to an engine. Only an engine started with `--scheduling-policy
    priority` uses `priority` (vLLM documents it as an error elsewhere): to such an
    engine the request's priority (0..4, lower first, as vLLM orders) goes in the body;
    to others the field is stripped.
    Built once per request; the client's bytes go as they are when they already say it."""
    if not forward_priority:
        return payload.raw
    if payload.with_priority is None:
        b, given = payload.body, payload.body.get("priority")
        out: bytes | None
        if given == priority and type(given) is int:
            out = payload.src or payload.raw
        elif "priority" not in b:
            out = _spliced(payload.src or payload.raw, priority)
        else:
            out = None
        if out is None:
            out = json.dumps({**b, "priority": priority}, separators=(",", ":")).encode()
        payload.with_priority = out
    return payload.with_priority


@dataclass(slots=True)
class Answer:
    """A finished answer for a request (set on the slot's future by a batch task)."""

    status: int
    body: bytes


def _json(conn: Connection, status: int, obj: dict,
          headers: dict[str, str] | bytes | None = None) -> None:
    conn.respond(status, json.dumps(obj).encode(), headers)


def _sage_headers(rt: Runtime, slot: Slot) -> bytes:
    """The x-sage-* and x-request-id header lines of an answer, rendered."""
    q = 0.0 if slot.dispatched is None else (slot.dispatched - slot.received) * 1000.0
    return (f"x-sage-queue-ms: {q:.3f}\r\nx-sage-overhead-us: {rt.overhead_us(slot):.1f}\r\n"
            f"x-sage-backend: {slot.backend}\r\n"
            f"x-request-id: {slot.client_rid or slot.req.id}\r\n").encode("latin-1")


def _refused(conn: Connection, rt: Runtime, slot: Slot, exc: Refused,
             opt: GatewayOptions) -> None:
    """The core's reject or fail as an OpenAI error. A 429 (queue full, or an SLO the
    control plane cannot meet) says when to retry: the load is what refused it."""
    status = REASON_STATUS.get(exc.reason, 503)
    headers = _sage_headers(rt, slot)
    if status == 429:
        headers += b"Retry-After: %d\r\n" % opt.retry_after_s
    kind = "rejected" if exc.rejected else "failed"
    msg = f"Request {kind} by the control plane: {exc.reason}."
    typ = REASON_TYPE.get(exc.reason) or (
        "rate_limit_error" if status == 429 else "service_unavailable")
    _json(conn, status, error_body(msg, typ, None, exc.reason), headers)


def _denied(request: HTTPRequest, opt: GatewayOptions) -> bool:
    """Answer 401 and return True unless the request carries the API key (if one is set)."""
    if not opt.api_key:
        return False
    given = request.headers.get("authorization", "")
    expected = "Bearer " + opt.api_key
    if hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
        return False
    _json(request.conn, 401, error_body("Missing or wrong API key (Authorization: Bearer ...).",
                                        "invalid_request_error", None, "invalid_api_key"),
          {"WWW-Authenticate": "Bearer"})
    return True


def _body(request: HTTPRequest, opt: GatewayOptions) -> bytes:
    if request.too_large:
        cl = request.headers.get("content-length")
        size = f" of {cl} bytes" if cl is not None and cl.isdigit() else ""
        raise ClientError(413, f"Request body{size} exceeds the limit of "
                          f"{opt.max_body_bytes} bytes.", None, "body_too_large")
    return request.body


def _forward_body(raw: bytes, parsed: Parsed) -> bytes:
    """The body without `priority`: the control plane has used it, and an engine
    without priority scheduling must not get it (upstream_body adds it for one with)."""
    if parsed.priority is None and "priority" not in parsed.body:
        return raw
    body = {k: v for k, v in parsed.body.items() if k != "priority"}
    return json.dumps(body, separators=(",", ":")).encode()


def _admit(app: GatewayApp, request: HTTPRequest, cls: str, raw: bytes) -> Slot:
    rt, opt = app.rt, app.opt
    parsed = parse_request(cls, raw, app.models[cls], opt.default_max_tokens)
    meta = parse_meta(request.headers, request.remote, lower=True)
    now = _mono()
    req = Request(id=rt.new_id(), cls=cls, arrival=now, t_intended=now,
                  client_id=meta.client_id, priority=effective_priority(meta, parsed),
                  prompt_tokens=parsed.prompt_tokens, output_tokens=parsed.output_tokens,
                  n_texts=parsed.n_texts, text_tokens=parsed.text_tokens,
                  slo_ttft_ms=meta.slo_ttft_ms, slo_e2e_ms=meta.slo_e2e_ms,
                  slo_tpot_ms=meta.slo_tpot_ms, slo_tier=meta.slo_tier, model=parsed.model,
                  payload=Payload(_forward_body(raw, parsed), parsed.body, parsed.stream, raw),
                  **parse_pipeline(request.headers, now, lower=True))
    return rt.admit(req, meta.request_id)


async def _handle(app: GatewayApp, request: HTTPRequest, cls: str) -> None:
    """Shared path of the three POST endpoints."""
    opt, conn = app.opt, request.conn
    if _denied(request, opt):
        return
    try:
        slot = _admit(app, request, cls, _body(request, opt))
    except ClientError as e:
        _json(conn, e.status, e.body())
        return
    rt = app.rt
    try:
        if cls == "embedding":
            await _embedding_answer(conn, rt, slot)
        else:
            await _llm_answer(conn, slot, rt, opt)
    except Refused as exc:
        _refused(conn, rt, slot, exc, opt)
    except asyncio.CancelledError:  # the client disconnected (its task is cancelled)
        if not slot.closed:
            rt.metrics.requests.labels(cls, "client_disconnected").inc()
        rt.client_gone(slot)
        raise
    except Exception:  # a gateway bug: free the capacity, then the server answers 500
        rt.client_gone(slot, reason="gateway_error")
        raise
    finally:
        rt.e2e_s_of[cls].observe(_mono() - slot.received)


async def _embedding_answer(conn: Connection, rt: Runtime, slot: Slot) -> None:
    """The answer a batch call delivers; a dispatch of this request alone comes here
    instead, and this handler makes the call itself (then loops for its answer, or
    for a new dispatch when the backend was unavailable)."""
    while True:
        got: Answer | DispatchState = await slot.fut
        if isinstance(got, Answer):
            conn.respond(got.status, got.body, _sage_headers(rt, slot))
            return
        slot.next_future()  # the answer, or a re-dispatch, comes on a fresh future
        await run_batch(rt, got)


MAX_ATTEMPTS = 3  # upstream calls per request that found their backend unreachable


async def _llm_answer(conn: Connection, slot: Slot, rt: Runtime, opt: GatewayOptions) -> None:
    failures = 0
    while True:
        ticket: Ticket = await slot.fut
        slot.next_future()  # a retry after a failed backend arrives on a fresh future
        st = rt.dispatches.get(ticket.dispatch_id)
        if st is None:  # already finished (client gone while queued)
            continue
        try:
            await _relay(conn, slot, st, ticket, rt)
            return
        except UpstreamUnavailable as exc:
            rt.upstream_unavailable(st, str(exc))  # the core may re-dispatch: loop
            failures += 1
            if failures >= MAX_ATTEMPTS and not slot.closed:
                rt.client_gone(slot, reason="upstream_unavailable")
                raise Refused("upstream_unavailable", rejected=False) from None
        except _Stale:
            pass  # re-queued by the core meanwhile: its next dispatch comes on slot.fut


class _Stale(Exception):
    """The answer came from a dispatch the core has dropped (its backend was taken
    out and the request re-queued); like the core, the gateway ignores it."""


def _check_current(slot: Slot, st: DispatchState) -> None:
    if slot.closed:
        raise Refused(slot.fail_reason or "backend_down", rejected=False)
    if slot.dispatch_id != st.dispatch_id or slot not in st.slots:
        raise _Stale


async def _relay(conn: Connection, slot: Slot, st: DispatchState, ticket: Ticket,
                 rt: Runtime) -> None:
    payload: Payload = slot.req.payload
    body = upstream_body(payload, slot.req.priority, ticket.priority)
    up = None
    try:
        up = await rt.pool.post(ticket.url, PATHS[slot.req.cls], body)
        slot.upstream = up
        await _head(up, slot, st)
        if up.status != 200 or not payload.stream:
            try:
                data = await up.read()
            except UpstreamBroken as exc:
                if slot.closed:
                    raise Refused(slot.fail_reason or "backend_down", rejected=False) from None
                raise UpstreamUnavailable(str(exc)) from None
            _check_current(slot, st)
            _finish_plain(conn, slot, st, rt, up.status, data, ticket)
            return
        await _stream(conn, slot, st, rt, up)
    except TimeoutError:
        _check_current(slot, st)
        rt.part_done(st, slot, ok=False, reason="upstream_timeout")
        rt.metrics.requests.labels(slot.req.cls, "failed").inc()
        _json(conn, 504, error_body(f"Backend {ticket.backend} timed out.", "timeout", None,
                                    "upstream_timeout"), _sage_headers(rt, slot))
    finally:
        slot.upstream = None
        if up is not None:
            up.release()


async def _head(up: Conn, slot: Slot, st: DispatchState) -> None:
    """The engine's status line; a connection that ends before it means nothing ran."""
    try:
        await up.head()
    except UpstreamBroken as exc:
        _check_current(slot, st)  # aborted by the core: failed or re-queued
        raise UpstreamUnavailable(str(exc)) from None


def _finish_plain(conn: Connection, slot: Slot, st: DispatchState, rt: Runtime, status: int,
                  data: bytes, ticket: Ticket) -> None:
    if status == 200:  # the core takes dispatch -> done as this request's TTFT sample
        rt.part_done(st, slot, ok=True)
        rt.completed_of[slot.req.cls].v += 1
        conn.respond(200, data, _sage_headers(rt, slot))
        return
    rt.part_done(st, slot, ok=False, reason=f"upstream_{status}")
    rt.metrics.requests.labels(slot.req.cls, "failed").inc()
    if 400 <= status < 500:  # the engine judged the request bad: the client's to fix
        conn.respond(status, data, _sage_headers(rt, slot))
        return
    _json(conn, 502, error_body(f"Backend {ticket.backend} answered {status}: "
                                f"{data[:300].decode('utf-8', 'replace')}", "upstream_error",
                                None, "upstream_error"), _sage_headers(rt, slot))


async def _stream(conn: Connection, slot: Slot, st: DispatchState, rt: Runtime,
                  up: Conn) -> None:
    """Relay the engine's SSE bytes as they come; the first piece is the first-token
    event. The rest goes from the engine's connection to the client's in the event
    loop's read callback (no task switch per chunk; a slow reader pauses the engine's
    connection). The client's headers go out with the first piece: until then the
    request may still move to another backend (and `x-sage-backend` would change)."""
    try:
        first = await up.first_body()
    except UpstreamBroken as exc:  # nothing reached the client yet
        _check_current(slot, st)
        raise UpstreamUnavailable(str(exc)) from None
    _check_current(slot, st)
    if first:
        rt.first_token(slot)
        rt.ttft_s_of[slot.req.cls].observe(_mono() - slot.received)
    headers = _sage_headers(rt, slot) + b"Cache-Control: no-cache\r\n"
    conn.start_chunked(200, headers, up.content_type or "text/event-stream", first)
    conn.on_pause, conn.on_resume = up.pause_reading, up.resume_reading
    if conn.paused:
        up.pause_reading()
    try:  # the engine's last piece goes out with the stream's end marker
        await up.pipe(conn.write_chunk, END_CHUNKED)
    except TimeoutError:
        if not slot.closed:
            slot.fail_reason = "upstream_timeout"
            rt.part_done(st, slot, ok=False, reason="upstream_timeout")
        _stream_error(conn, slot, rt)
        return
    except UpstreamBroken:
        if not slot.closed:
            rt.mark_down(slot.backend, "stream broken")  # started: the core fails it
        if not slot.closed:
            rt.part_done(st, slot, ok=False, reason="upstream_disconnected")
        _stream_error(conn, slot, rt)
        return
    finally:
        conn.on_pause = conn.on_resume = None
    if slot.closed:  # the core failed it meanwhile, after the engine had sent it all
        rt.metrics.requests.labels(slot.req.cls, "failed").inc()
        return
    rt.part_done(st, slot, ok=True)
    rt.completed_of[slot.req.cls].v += 1


def _stream_error(conn: Connection, slot: Slot, rt: Runtime) -> None:
    """Headers are gone already: end the stream with an SSE error event."""
    rt.metrics.requests.labels(slot.req.cls, "failed").inc()
    reason = slot.fail_reason or "upstream_disconnected"
    err = error_body(f"Backend {slot.backend} failed mid-stream: {reason}.", "upstream_error",
                     None, reason)
    conn.write_chunk(b"data: " + json.dumps(err).encode() + b"\n\n")
    conn.end_chunked()


async def run_batch(rt: Runtime, st: DispatchState) -> None:
    """Send one embedding dispatch as one engine call per option group; split back."""
    groups: dict[tuple, list[Slot]] = {}
    for s in list(st.slots):
        if not s.closed and not s.gone:
            groups.setdefault(group_key(s.req.payload.body), []).append(s)
    calls = [_batch_call(rt, st, slots) for slots in groups.values()]
    if len(calls) == 1:
        await calls[0]
    else:
        await asyncio.gather(*calls)


async def _batch_call(rt: Runtime, st: DispatchState, slots: list[Slot]) -> None:
    rt.metrics.batch_size.labels("embedding").observe(len(slots))
    prio = rt.priority_scheduling[st.backend]
    if len(slots) == 1:
        raw, counts = upstream_body(slots[0].req.payload, slots[0].req.priority, prio), None
    else:
        body, counts = merged_body([s.req.payload.body for s in slots])
        if prio:  # one engine request for several: it runs as the most urgent of them
            body["priority"] = min(s.req.priority for s in slots)
        raw = json.dumps(body, separators=(",", ":")).encode()
    up = None
    try:
        up = await rt.pool.post(rt.urls[st.backend], PATHS["embedding"], raw)
        await up.head()
        data = await up.read()
        status = up.status
    except TimeoutError:
        _answer_all(rt, st, slots, 504, error_body(f"Backend {st.backend} timed out.",
                                                    "timeout", None, "upstream_timeout"))
        return
    except (UpstreamUnavailable, UpstreamBroken) as exc:
        rt.upstream_unavailable(st, str(exc))
        return
    finally:
        if up is not None:
            up.release()
    if status != 200:
        if 400 <= status < 500 and counts is None:
            _deliver(rt, st, slots[0], Answer(status, data), ok=False, why=f"upstream_{status}")
            return
        _answer_all(rt, st, slots, 502, error_body(
            f"Backend {st.backend} answered {status}: {data[:300].decode('utf-8', 'replace')}",
            "upstream_error", None, "upstream_error"))
        return
    if counts is None:
        if not _json_object(data):
            _answer_all(rt, st, slots, 502, error_body(
                f"Backend {st.backend} answered 200 with a body that is not a JSON object: "
                f"{data[:100].decode('utf-8', 'replace')}", "upstream_error", None,
                "upstream_error"))
            return
        _deliver(rt, st, slots[0], Answer(200, data), ok=True)
        return
    try:
        parts = split_answer(data, counts, [s.req.text_tokens for s in slots])
    except BatchError as exc:
        _answer_all(rt, st, slots, 502, error_body(f"Backend {st.backend}: {exc}",
                                                    "upstream_error", None, "upstream_error"))
        return
    for s, part in zip(slots, parts, strict=True):
        _deliver(rt, st, s, Answer(200, part), ok=True)


def _json_object(data: bytes) -> bool:
    """A lone request's answer goes to the client as the engine sent it (no parse on
    the fast path), but one that is plainly not a JSON object (an HTML error page, a
    cut body) is the engine's failure (502), as it is for a batch that does not split."""
    d = data.strip()
    return d.startswith(b"{") and d.endswith(b"}")


def _deliver(rt: Runtime, st: DispatchState, s: Slot, ans: Answer, ok: bool,
             why: str = "") -> None:
    if s.closed or s not in st.slots:  # finished, or re-queued by the core: stale answer
        return
    rt.part_done(st, s, ok=ok, reason=why)
    if ok:
        rt.completed_of["embedding"].v += 1
    else:
        rt.metrics.requests.labels("embedding", "failed").inc()
    if not s.fut.done():
        s.fut.set_result(ans)


def _answer_all(rt: Runtime, st: DispatchState, slots: list[Slot], status: int,
                err: dict) -> None:
    body = json.dumps(err).encode()
    for s in slots:
        _deliver(rt, st, s, Answer(status, body), ok=False, why=err["error"]["code"])


Route = Callable[[HTTPRequest], Awaitable[None]]


class GatewayApp:
    """The gateway: the runtime (core, slots, background loops) and the routes.
    `app[RUNTIME]`, `app[OPTIONS]`, `app[METRICS]`, `app[MODELS]` reach its parts."""

    def __init__(self, cfg: GatewayConfig, options: GatewayOptions | None = None) -> None:
        self.opt = opt = options or GatewayOptions()
        self.metrics = GatewayMetrics(cfg.control_plane.policy)
        cp = ControlPlane(cfg.control_plane, cfg.backends)
        self.rt = Runtime(cp, cfg.backends, cfg.control_plane.policy, opt, self.metrics)
        self.rt.batch_runner = lambda st: run_batch(self.rt, st)
        self.models = {cls: frozenset(b.model for b in cfg.backends if cls in b.capabilities)
                       for cls in PATHS}
        self._state: dict[str, Any] = {RUNTIME: self.rt, OPTIONS: opt,
                                       METRICS: self.metrics, MODELS: self.models}
        def post(cls: str) -> Route:
            return lambda r: _handle(self, r, cls)

        self.routes: dict[str, tuple[str, Route]] = {
            PATHS["chat"]: ("POST", post("chat")),
            PATHS["completion"]: ("POST", post("completion")),
            PATHS["embedding"]: ("POST", post("embedding")),
            "/v1/models": ("GET", self._models),
            "/health": ("GET", self._health),
            "/metrics": ("GET", self._metrics),
        }

    def __getitem__(self, key: str) -> Any:
        return self._state[key]

    async def handle(self, request: HTTPRequest) -> None:
        """Route one request; unknown routes and wrong methods answer JSON too."""
        route = self.routes.get(request.path)
        if route is None:
            _json(request.conn, 404, error_body(f"No route {request.method} {request.path}.",
                                                "invalid_request_error", None, "not_found"))
            return
        method, fn = route
        if request.method != method and not (request.method == "HEAD" and method == "GET"):
            _json(request.conn, 405, error_body("Method Not Allowed", "invalid_request_error",
                                                None, "405"), {"Allow": method})
            return
        await fn(request)

    async def _models(self, request: HTTPRequest) -> None:
        if _denied(request, self.opt):
            return
        by_model: dict[str, list[str]] = {}
        for b in self.rt.backends.values():
            by_model.setdefault(b.model, []).append(b.name)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "sagetui",
                 "backends": names} for m, names in sorted(by_model.items())]
        _json(request.conn, 200, {"object": "list", "data": data})

    async def _health(self, request: HTTPRequest) -> None:
        up = {n: self.rt.up[n] for n in self.rt.backends}
        ok = any(up.values())
        _json(request.conn, 200 if ok else 503,
              {"status": "ok" if ok else "no_backend_up", "backends": up})

    async def _metrics(self, request: HTTPRequest) -> None:
        if _denied(request, self.opt):
            return
        request.conn.respond(200, generate_latest(self.metrics.registry), None,
                             CONTENT_TYPE_LATEST)


def build_app(cfg: GatewayConfig, options: GatewayOptions | None = None) -> GatewayApp:
    """The gateway application; `start_gateway` serves it."""
    return GatewayApp(cfg, options)


class GatewayRunner:
    """A serving gateway: `app` (its parts), `url`, and `cleanup()` to stop it."""

    def __init__(self, app: GatewayApp) -> None:
        self.app = app
        self.server = Server(app.handle, app.opt.max_body_bytes)
        self.url = ""

    async def start(self, host: str, port: int) -> str:
        await self.app.rt.start()
        # A deep accept queue: a burst of new client connections while the loop is busy
        # must wait, not be dropped (a backlog of 128 overflowed at 500 req/s).
        real_port = await self.server.start(host, port, backlog=4096)
        self.url = f"http://{host}:{real_port}"
        return self.url

    async def cleanup(self) -> None:
        """Stop listening, end every request (a client still waiting is cut off), then
        stop the runtime (background loops, engine connections)."""
        await self.server.close()
        await self.app.rt.stop()


async def start_gateway(cfg: GatewayConfig, options: GatewayOptions | None = None,
                        host: str = "127.0.0.1", port: int = 0) -> tuple[GatewayRunner, str]:
    """Serve the gateway; returns the runner (call `cleanup()`) and its base URL.

    A client that disconnects cancels its request's task, which aborts the
    upstream request and frees the backend slot.
    """
    runner = GatewayRunner(build_app(cfg, options))
    url = await runner.start(host, port)
    return runner, url
