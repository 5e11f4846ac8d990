"""The gateway's aiohttp application: OpenAI-compatible endpoints through the core.

Why: clients (the load generator, the `openai` package, curl) talk to one
OpenAI-compatible endpoint; the control plane decides when and where each
request runs. Every answer carries `x-sage-queue-ms`, `x-sage-overhead-us` and
`x-sage-backend` (docs/gateway.md). Client mistakes are 4xx with an OpenAI
error body, never a 5xx.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scheduler.core import ControlPlane
from scheduler.gateway.config import GatewayConfig, GatewayOptions
from scheduler.gateway.embed_batch import BatchError, group_key, merged_body, split_answer
from scheduler.gateway.metrics import GatewayMetrics
from scheduler.gateway.runtime import DispatchState, Refused, Runtime, Slot, Ticket
from scheduler.gateway.upstream import UpstreamUnavailable, open_post
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

RUNTIME = web.AppKey("runtime", Runtime)
OPTIONS = web.AppKey("options", GatewayOptions)
MODELS = web.AppKey("models", dict)
METRICS = web.AppKey("metrics", GatewayMetrics)

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


def _json(status: int, obj: dict, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(obj).encode(),
                        content_type="application/json", headers=headers)


def _client_error(e: ClientError) -> web.Response:
    return _json(e.status, e.body())


def _sage_headers(rt: Runtime, slot: Slot) -> dict[str, str]:
    q = 0.0 if slot.dispatched is None else (slot.dispatched - slot.received) * 1000.0
    return {"x-sage-queue-ms": f"{q:.3f}", "x-sage-overhead-us": f"{rt.overhead_us(slot):.1f}",
            "x-sage-backend": slot.backend, "x-request-id": slot.client_rid or slot.req.id}


def _refused(rt: Runtime, slot: Slot, exc: Refused, opt: GatewayOptions) -> web.Response:
    """The core's reject or fail as an OpenAI error. A 429 (queue full, or an SLO the
    control plane cannot meet) says when to retry: the load is what refused it."""
    status = REASON_STATUS.get(exc.reason, 503)
    headers = _sage_headers(rt, slot)
    if status == 429:
        headers["Retry-After"] = str(opt.retry_after_s)
    kind = "rejected" if exc.rejected else "failed"
    msg = f"Request {kind} by the control plane: {exc.reason}."
    typ = REASON_TYPE.get(exc.reason) or (
        "rate_limit_error" if status == 429 else "service_unavailable")
    return _json(status, error_body(msg, typ, None, exc.reason), headers)


def _check_key(request: web.Request, opt: GatewayOptions) -> web.Response | None:
    if not opt.api_key:
        return None
    given = request.headers.get("Authorization", "")
    expected = "Bearer " + opt.api_key
    if hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
        return None
    return _json(401, error_body("Missing or wrong API key (Authorization: Bearer ...).",
                                 "invalid_request_error", None, "invalid_api_key"),
                 {"WWW-Authenticate": "Bearer"})


async def _read_body(request: web.Request, opt: GatewayOptions) -> bytes:
    if request.content_length is not None and request.content_length > opt.max_body_bytes:
        raise ClientError(413, f"Request body of {request.content_length} bytes exceeds the "
                          f"limit of {opt.max_body_bytes} bytes.", None, "body_too_large")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ClientError(413, f"Request body exceeds the limit of {opt.max_body_bytes} "
                          "bytes.", None, "body_too_large") from None


def _forward_body(raw: bytes, parsed: Parsed) -> bytes:
    """The body without `priority`: the control plane has used it, and an engine
    without priority scheduling must not get it (upstream_body adds it for one with)."""
    if parsed.priority is None and "priority" not in parsed.body:
        return raw
    body = {k: v for k, v in parsed.body.items() if k != "priority"}
    return json.dumps(body, separators=(",", ":")).encode()


def _admit(request: web.Request, cls: str, raw: bytes) -> Slot:
    app = request.app
    rt, opt = app[RUNTIME], app[OPTIONS]
    parsed = parse_request(cls, raw, app[MODELS][cls], opt.default_max_tokens)
    meta = parse_meta(request.headers, request.remote or "")
    now = _mono()
    req = Request(id=rt.new_id(), cls=cls, arrival=now, t_intended=now,
                  client_id=meta.client_id, priority=effective_priority(meta, parsed),
                  prompt_tokens=parsed.prompt_tokens, output_tokens=parsed.output_tokens,
                  n_texts=parsed.n_texts, text_tokens=parsed.text_tokens,
                  slo_ttft_ms=meta.slo_ttft_ms, slo_e2e_ms=meta.slo_e2e_ms,
                  slo_tpot_ms=meta.slo_tpot_ms, slo_tier=meta.slo_tier, model=parsed.model,
                  payload=Payload(_forward_body(raw, parsed), parsed.body, parsed.stream, raw),
                  **parse_pipeline(request.headers, now))
    return rt.admit(req, meta.request_id)


_TIMEOUTS: dict[tuple[float, float], aiohttp.ClientTimeout] = {}


def _upstream_timeout(opt: GatewayOptions) -> aiohttp.ClientTimeout:
    key = (opt.connect_timeout_s, opt.upstream_timeout_s)
    t = _TIMEOUTS.get(key)
    if t is None:
        t = _TIMEOUTS[key] = aiohttp.ClientTimeout(total=None, sock_connect=key[0],
                                                   sock_read=key[1])
    return t


async def _handle(request: web.Request, cls: str) -> web.StreamResponse:
    """Shared path of the three POST endpoints."""
    app = request.app
    opt = app[OPTIONS]
    denied = _check_key(request, opt)
    if denied is not None:
        return denied
    try:
        raw = await _read_body(request, opt)
        slot = _admit(request, cls, raw)
    except ClientError as e:
        return _client_error(e)
    rt = app[RUNTIME]
    try:
        if cls == "embedding":
            return await _embedding_answer(rt, slot)
        return await _llm_answer(request, slot, rt, opt)
    except Refused as exc:
        return _refused(rt, slot, exc, opt)
    except asyncio.CancelledError:  # the client disconnected (handler cancellation)
        rt.client_gone(slot)
        raise
    except Exception:  # a gateway bug: free the capacity, then the middleware answers 500
        rt.client_gone(slot, reason="gateway_error")
        raise
    finally:
        _observe(app[METRICS], slot)


def _observe(m: GatewayMetrics, slot: Slot) -> None:
    m.e2e_s.labels(slot.req.cls).observe(_mono() - slot.received)


async def _embedding_answer(rt: Runtime, slot: Slot) -> web.Response:
    ans: Answer = await slot.fut
    return web.Response(status=ans.status, body=ans.body, content_type="application/json",
                        headers=_sage_headers(rt, slot))


MAX_ATTEMPTS = 3  # upstream calls per request that found their backend unreachable


async def _llm_answer(request: web.Request, slot: Slot, rt: Runtime,
                      opt: GatewayOptions) -> web.StreamResponse:
    failures = 0
    while True:
        ticket: Ticket = await slot.fut
        slot.next_future()  # a retry after a failed backend arrives on a fresh future
        st = rt.dispatches.get(ticket.dispatch_id)
        if st is None:  # already finished (client gone while queued)
            continue
        try:
            return await _relay(request, slot, st, ticket, rt, opt)
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


async def _relay(request: web.Request, slot: Slot, st: DispatchState, ticket: Ticket,
                 rt: Runtime, opt: GatewayOptions) -> web.StreamResponse:
    payload: Payload = slot.req.payload
    url = ticket.url + PATHS[slot.req.cls]
    resp = None
    try:
        body = upstream_body(payload, slot.req.priority, ticket.priority)
        assert rt.session is not None  # opened at start-up, before requests are taken
        resp = await open_post(rt.session, url, body, _upstream_timeout(opt))
        slot.upstream = resp
        if resp.status != 200 or not payload.stream:
            try:
                data = await resp.read()
            except TimeoutError:  # aiohttp's read timeout is also a ClientConnectionError
                raise
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                if slot.closed:
                    raise Refused(slot.fail_reason or "backend_down", rejected=False) from None
                raise UpstreamUnavailable(str(exc)) from None
            _check_current(slot, st)
            return _finish_plain(slot, st, rt, resp.status, data, ticket)
        return await _stream(request, slot, st, rt, resp)
    except TimeoutError:
        _check_current(slot, st)
        rt.part_done(st, slot, ok=False, reason="upstream_timeout")
        rt.metrics.requests.labels(slot.req.cls, "failed").inc()
        return _json(504, error_body(f"Backend {ticket.backend} timed out.", "timeout", None,
                                     "upstream_timeout"), _sage_headers(rt, slot))
    finally:
        slot.upstream = None
        if resp is not None:
            resp.release()


def _finish_plain(slot: Slot, st: DispatchState, rt: Runtime, status: int, data: bytes,
                  ticket: Ticket) -> web.Response:
    if status == 200:  # the core takes dispatch -> done as this request's TTFT sample
        rt.part_done(st, slot, ok=True)
        rt.metrics.requests.labels(slot.req.cls, "completed").inc()
        return web.Response(status=200, body=data, content_type="application/json",
                            headers=_sage_headers(rt, slot))
    rt.part_done(st, slot, ok=False, reason=f"upstream_{status}")
    rt.metrics.requests.labels(slot.req.cls, "failed").inc()
    if 400 <= status < 500:  # the engine judged the request bad: the client's to fix
        return web.Response(status=status, body=data, content_type="application/json",
                            headers=_sage_headers(rt, slot))
    return _json(502, error_body(f"Backend {ticket.backend} answered {status}: "
                                 f"{data[:300].decode('utf-8', 'replace')}", "upstream_error",
                                 None, "upstream_error"), _sage_headers(rt, slot))


async def _stream(request: web.Request, slot: Slot, st: DispatchState, rt: Runtime,
                  resp: aiohttp.ClientResponse) -> web.StreamResponse:
    """Relay SSE bytes as they come; the first chunk is the first-token event.

    The client's headers go out with the first chunk: until then the request
    may still move to another backend (and `x-sage-backend` would change).
    """
    out = web.StreamResponse(status=200)
    first = True
    try:
        async for chunk in resp.content.iter_any():
            if first:
                _check_current(slot, st)
                first = False
                rt.first_token(slot)
                rt.metrics.ttft_s.labels(slot.req.cls).observe(_mono() - slot.received)
                out.headers.update(_sage_headers(rt, slot))
                out.headers["Content-Type"] = resp.headers.get("Content-Type",
                                                               "text/event-stream")
                out.headers["Cache-Control"] = "no-cache"
                await out.prepare(request)
            await out.write(chunk)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        rt.client_gone(slot)
        rt.metrics.requests.labels(slot.req.cls, "client_disconnected").inc()
        return out
    except TimeoutError:
        if first:
            raise  # nothing sent yet: a plain 504
        if not slot.closed:
            slot.fail_reason = "upstream_timeout"
            rt.part_done(st, slot, ok=False, reason="upstream_timeout")
        return await _stream_error(out, slot, rt)
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
        if first:  # nothing reached the client yet
            _check_current(slot, st)
            raise UpstreamUnavailable(str(exc)) from None
        if not slot.closed:
            rt.mark_down(slot.backend, "stream broken")  # started: the core fails it
        if not slot.closed:
            rt.part_done(st, slot, ok=False, reason="upstream_disconnected")
        return await _stream_error(out, slot, rt)
    if first:  # an empty stream: still an answer
        _check_current(slot, st)
        out.headers.update(_sage_headers(rt, slot))
        await out.prepare(request)
    if slot.fail_reason:  # the core failed it (backend down) and closed the stream
        return await _stream_error(out, slot, rt)
    rt.part_done(st, slot, ok=True)
    rt.metrics.requests.labels(slot.req.cls, "completed").inc()
    try:
        await out.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass  # served in full; the client left before the final empty chunk
    return out


async def _stream_error(out: web.StreamResponse, slot: Slot,
                        rt: Runtime) -> web.StreamResponse:
    """Headers are gone already: end the stream with an SSE error event."""
    rt.metrics.requests.labels(slot.req.cls, "failed").inc()
    reason = slot.fail_reason or "upstream_disconnected"
    err = error_body(f"Backend {slot.backend} failed mid-stream: {reason}.", "upstream_error",
                     None, reason)
    try:
        await out.write(b"data: " + json.dumps(err).encode() + b"\n\n")
        await out.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass  # the client is gone too
    return out


async def run_batch(app: web.Application, st: DispatchState) -> None:
    """Send one embedding dispatch as one engine call per option group; split back."""
    rt, opt = app[RUNTIME], app[OPTIONS]
    groups: dict[tuple, list[Slot]] = {}
    for s in list(st.slots):
        if not s.closed and not s.gone:
            groups.setdefault(group_key(s.req.payload.body), []).append(s)
    calls = [_batch_call(rt, opt, st, slots) for slots in groups.values()]
    if len(calls) == 1:
        await calls[0]
    else:
        await asyncio.gather(*calls)


async def _batch_call(rt: Runtime, opt: GatewayOptions, st: DispatchState,
                      slots: list[Slot]) -> None:
    url = rt.urls[st.backend] + PATHS["embedding"]
    rt.metrics.batch_size.labels("embedding").observe(len(slots))
    prio = rt.priority_scheduling[st.backend]
    if len(slots) == 1:
        raw, counts = upstream_body(slots[0].req.payload, slots[0].req.priority, prio), None
    else:
        body, counts = merged_body([s.req.payload.body for s in slots])
        if prio:  # one engine request for several: it runs as the most urgent of them
            body["priority"] = min(s.req.priority for s in slots)
        raw = json.dumps(body, separators=(",", ":")).encode()
    assert rt.session is not None  # opened at start-up, before requests are taken
    try:
        resp = await open_post(rt.session, url, raw, _upstream_timeout(opt))
        async with resp:
            data = await resp.read()
            status = resp.status
    except TimeoutError:  # before ClientConnectionError: aiohttp's timeouts are both
        _answer_all(rt, st, slots, 504, error_body(f"Backend {st.backend} timed out.",
                                                    "timeout", None, "upstream_timeout"))
        return
    except (UpstreamUnavailable, aiohttp.ClientPayloadError,
            aiohttp.ClientConnectionError) as exc:
        rt.upstream_unavailable(st, str(exc))
        return
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
    rt.metrics.requests.labels("embedding", "completed" if ok else "failed").inc()
    if not s.fut.done():
        s.fut.set_result(ans)


def _answer_all(rt: Runtime, st: DispatchState, slots: list[Slot], status: int,
                err: dict) -> None:
    body = json.dumps(err).encode()
    for s in slots:
        _deliver(rt, st, s, Answer(status, body), ok=False, why=err["error"]["code"])


async def _models(request: web.Request) -> web.Response:
    denied = _check_key(request, request.app[OPTIONS])
    if denied is not None:
        return denied
    rt = request.app[RUNTIME]
    by_model: dict[str, list[str]] = {}
    for b in rt.backends.values():
        by_model.setdefault(b.model, []).append(b.name)
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "sagetui",
             "backends": names} for m, names in sorted(by_model.items())]
    return _json(200, {"object": "list", "data": data})


async def _health(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    up = {n: rt.up[n] for n in rt.backends}
    ok = any(up.values())
    return _json(200 if ok else 503, {"status": "ok" if ok else "no_backend_up",
                                      "backends": up})


async def _metrics(request: web.Request) -> web.Response:
    denied = _check_key(request, request.app[OPTIONS])
    if denied is not None:
        return denied
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _not_found(request: web.Request) -> web.Response:
    return _json(404, error_body(f"No route {request.method} {request.path}.",
                                 "invalid_request_error", None, "not_found"))


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Unknown routes and wrong methods answer JSON too; our own bugs become a
    logged 500 (never a client's fault, never a dead server)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 500:
            raise
        return _json(exc.status, error_body(exc.reason or "error", "invalid_request_error",
                                            None, str(exc.status)))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("gateway bug while serving %s %s", request.method, request.path)
        return _json(500, error_body("Internal gateway error.", "internal_error", None,
                                     "internal_error"))


def build_app(cfg: GatewayConfig, options: GatewayOptions | None = None) -> web.Application:
    """The gateway application; its runtime starts and stops with the app."""
    opt = options or GatewayOptions()
    app = web.Application(client_max_size=opt.max_body_bytes, middlewares=[_errors])
    metrics = GatewayMetrics(cfg.control_plane.policy)
    cp = ControlPlane(cfg.control_plane, cfg.backends)
    rt = Runtime(cp, cfg.backends, cfg.control_plane.policy, opt, metrics)
    rt.batch_runner = lambda st: run_batch(app, st)
    app[RUNTIME], app[OPTIONS], app[METRICS] = rt, opt, metrics
    app[MODELS] = {cls: frozenset(b.model for b in cfg.backends if cls in b.capabilities)
                   for cls in PATHS}

    async def chat(request: web.Request) -> web.StreamResponse:
        return await _handle(request, "chat")

    async def completion(request: web.Request) -> web.StreamResponse:
        return await _handle(request, "completion")

    async def embedding(request: web.Request) -> web.StreamResponse:
        return await _handle(request, "embedding")

    app.router.add_post(PATHS["chat"], chat)
    app.router.add_post(PATHS["completion"], completion)
    app.router.add_post(PATHS["embedding"], embedding)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)

    async def _start(_: web.Application) -> None:
        await rt.start()

    async def _stop(_: web.Application) -> None:
        await rt.stop()

    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app


async def start_gateway(cfg: GatewayConfig, options: GatewayOptions | None = None,
                        host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve the gateway; returns the runner (call `cleanup()`) and its base URL.

    Handler cancellation is on: a client that disconnects cancels its handler,
    which aborts the upstream request and frees the backend slot.
    """
    app = build_app(cfg, options)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    # A deep accept queue: a burst of new client connections while the loop is busy
    # must wait, not be dropped (aiohttp's default of 128 overflowed at 500 req/s).
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    sock = site._server.sockets[0]  # type: ignore[union-attr]
    real_port = sock.getsockname()[1]
    return runner, f"http://{host}:{real_port}"
