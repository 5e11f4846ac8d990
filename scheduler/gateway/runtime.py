"""The live (asyncio) driver of the sans-I/O control-plane core.

Why: the same core that runs in virtual time serves real traffic here. This
module turns HTTP arrivals, engine progress, completions, health changes,
/metrics scrapes and timers into core events with `now = time.monotonic()`,
and carries out the core's actions: a Dispatch hands the request(s) to the
handler (LLM) or to a batch task (embeddings, several client requests in one
upstream call); a Reject or Fail answers the client; a SetTimer arms
`loop.call_later`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from engine.http import KEEPALIVE_S, HTTPEngine, connector
from engine.spec import BackendSpec
from scheduler.actions import Dispatch, Fail, Reject, SetTimer
from scheduler.core import ControlPlane
from scheduler.gateway.config import GatewayOptions
from scheduler.gateway.metrics import GatewayMetrics
from scheduler.gateway.upstream import Conn, Pool
from vocab import Request

_perf = time.perf_counter
_mono = time.monotonic


class Refused(Exception):
    """The core rejected (before dispatch) or failed (after) this request."""

    def __init__(self, reason: str, rejected: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rejected = rejected


@dataclass(slots=True)
class Ticket:
    """An LLM request's assignment: which backend, under which dispatch."""

    dispatch_id: int
    backend: str
    url: str
    priority: bool = False  # the engine runs vLLM's priority scheduler: send `priority`


@dataclass(slots=True, eq=False)
class Slot:
    """One client request while the gateway holds it."""

    req: Request
    fut: asyncio.Future
    received: float  # monotonic
    client_rid: str | None = None  # the client's X-Request-Id, echoed back
    overhead_us: float = 0.0  # core decision time attributed to this request
    fail_reason: str = ""  # set when the core failed it after dispatch
    dispatched: float | None = None
    backend: str = ""
    dispatch_id: int | None = None
    started: bool = False  # first token seen: not retryable any more
    gone: bool = False  # client disconnected
    closed: bool = False  # the core has accounted for it (completed/failed/rejected)
    upstream: Conn | None = None  # the engine call in progress (closed to abort it)

    def next_future(self) -> asyncio.Future:
        if self.fut.done():
            self.fut = self.fut.get_loop().create_future()
        return self.fut


@dataclass(slots=True, eq=False)
class DispatchState:
    dispatch_id: int
    backend: str
    slots: list[Slot]
    remaining: int
    any_ok: bool = False  # a batch counts as served when any of its requests was
    reason: str = ""
    closed: bool = False  # the core was told (completion), or dropped it (backend down)


class Runtime:
    """Owns the core, the per-request slots and the background loops."""

    def __init__(self, cp: ControlPlane, backends: list[BackendSpec], policy: str,
                 options: GatewayOptions, metrics: GatewayMetrics) -> None:
        self.cp = cp
        self.policy = policy
        self.opt = options
        self.metrics = metrics
        self.backends = {b.name: b for b in backends}
        self.urls = {b.name: b.url.rstrip("/") for b in backends}
        # engines started with --scheduling-policy priority take the body's `priority`
        self.priority_scheduling = {b.name: b.priority_scheduling for b in backends}
        self.up = {b.name: True for b in backends}
        self.slots: dict[str, Slot] = {}
        self.dispatches: dict[int, DispatchState] = {}
        self.in_flight = dict.fromkeys(self.backends, 0)
        self.batch_runner: Callable[[DispatchState], Any] | None = None  # set by app
        self.session: aiohttp.ClientSession | None = None  # /metrics scrapes
        self.pool = Pool(options.connect_timeout_s, options.upstream_timeout_s, KEEPALIVE_S)
        self._engines: dict[str, HTTPEngine] = {}
        self._tasks: set[asyncio.Task] = set()
        self._timers: dict[float, asyncio.TimerHandle] = {}
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        # the per-request instruments, looked up once (a labels() call per update was
        # a tenth of the bookkeeping)
        classes = ("chat", "completion", "embedding")
        self.depth_of = {c: metrics.queue_depth.labels(c) for c in classes}
        self.queue_s_of = {c: metrics.queue_s.labels(c) for c in classes}
        self.e2e_s_of = {c: metrics.e2e_s.labels(c) for c in classes}
        self.ttft_s_of = {c: metrics.ttft_s.labels(c) for c in classes}
        self.completed_of = {c: metrics.requests.labels(c, "completed") for c in classes}
        self.inflight_of = {n: metrics.in_flight.labels(n) for n in self.backends}
        for name in self.backends:
            metrics.backend_up.labels(name).set(1)
            self.inflight_of[name].set(0)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = self.pool.loop = asyncio.get_running_loop()
        self.session = aiohttp.ClientSession(connector=connector(), auto_decompress=False)
        self._engines = {n: HTTPEngine(u, session=self.session) for n, u in self.urls.items()}
        if self.opt.probe_health:
            for name in self.backends:
                self.spawn(self._health_loop(name))
                self.spawn(self._scrape_loop(name))

    async def stop(self) -> None:
        for h in self._timers.values():
            h.cancel()
        self._timers.clear()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for slot in list(self.slots.values()):
            if not slot.fut.done():
                slot.fut.set_exception(Refused("gateway_stopping", rejected=False))
                slot.fut.exception()  # a client that already left never awaits it
        self.pool.close()
        if self.session is not None:
            await self.session.close()

    def spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- driving the core -----------------------------------------------------------------

    def _call(self, fn: Callable[..., list], *args: Any, **kw: Any) -> float:
        """Run one core event handler, time it, carry out its actions; return µs."""
        t0 = _perf()
        actions = fn(*args, **kw)
        us = (_perf() - t0) * 1e6
        self.metrics.decision(us)
        dt = self.cp.decision_times_us
        if len(dt) > 1_000_000:  # bounded for a long-lived gateway (~30 MB); a run's
            del dt[:500_000]     # decision_stats() covers the most recent million
        if actions:
            self._execute(actions, us)
        return us

    def new_id(self) -> str:
        """The core's request id: unique for the gateway's life (the core refuses a
        repeated id, and clients may reuse their X-Request-Id across runs)."""
        self._seq += 1
        return f"gw-{self._seq}"

    def admit(self, req: Request, client_rid: str | None = None) -> Slot:
        """Hand a new request to the core (arrival event)."""
        loop = self._loop or asyncio.get_running_loop()
        slot = Slot(req, loop.create_future(), req.arrival, client_rid)
        self.slots[req.id] = slot
        self.depth_of[req.cls].v += 1
        self._call(self.cp.on_arrival, req, _mono())
        return slot

    def overhead_us(self, slot: Slot) -> float:
        """Core decision time attributed to this request so far (the core shares each
        decision's time among the requests it touched); taken out of the core's
        table so a long-lived gateway does not grow it."""
        slot.overhead_us += self.cp.overhead_us.pop(slot.req.id, 0.0)
        return slot.overhead_us

    def _execute(self, actions: list, us: float) -> None:
        for a in actions:
            if isinstance(a, Dispatch):
                self._dispatch(a, us)
            elif isinstance(a, Reject):
                self._refuse(a.request, a.reason, rejected=True)
            elif isinstance(a, Fail):
                self._refuse(a.request, a.reason, rejected=False)
            elif isinstance(a, SetTimer):
                self._set_timer(a.t)
            else:  # a new action type the runtime does not know is a bug, not a client error
                raise TypeError(f"unknown control-plane action {a!r}")

    def _dispatch(self, d: Dispatch, us: float) -> None:
        now = _mono()
        slots = [self.slots[r.id] for r in d.requests if r.id in self.slots]
        st = DispatchState(d.dispatch_id, d.backend, slots, len(slots))
        self.dispatches[d.dispatch_id] = st
        self.in_flight[d.backend] += len(slots)
        self.inflight_of[d.backend].v = self.in_flight[d.backend]
        url = self.urls[d.backend]
        prio = self.priority_scheduling[d.backend]
        for slot in slots:
            if slot.dispatched is None:
                self.depth_of[slot.req.cls].v -= 1
                self.queue_s_of[slot.req.cls].observe(now - slot.received)
            else:
                self.metrics.retries.labels(slot.backend).inc()
            old = self.dispatches.get(slot.dispatch_id) if slot.dispatch_id is not None else None
            if old is not None and slot in old.slots:  # re-dispatched by the core after a failure
                old.closed = True
                self._leave(old, slot)
            slot.dispatched = now
            slot.backend = d.backend
            slot.dispatch_id = d.dispatch_id
        if not slots:
            return
        live = [s for s in slots if not s.gone]
        for s in slots:
            if s.gone:  # the client left while queued: free the capacity at once
                self.part_done(st, s, ok=False, reason="client_disconnected")
        if not live:
            return
        if slots[0].req.cls == "embedding":
            if len(live) == 1:  # a batch of one: its own handler makes the call (no task)
                live[0].next_future().set_result(st)
            else:
                assert self.batch_runner is not None
                self.spawn(self.batch_runner(st))
        else:
            for s in live:
                s.next_future().set_result(Ticket(d.dispatch_id, d.backend, url, prio))

    def _refuse(self, req: Request, reason: str, rejected: bool) -> None:
        slot = self.slots.pop(req.id, None)
        if slot is None:
            return
        slot.closed = True
        slot.fail_reason = reason
        self.overhead_us(slot)
        if slot.dispatched is None:
            self.depth_of[req.cls].v -= 1
        elif slot.dispatch_id is not None:  # set together with `dispatched`
            st = self.dispatches.get(slot.dispatch_id)
            if st is not None and slot in st.slots:
                self._leave(st, slot)
        if rejected:
            self.metrics.rejections.labels(reason).inc()
        if slot.upstream is not None:
            slot.upstream.close()  # aborts the engine's work on a failed request
        fut = slot.next_future() if slot.fut.done() else slot.fut
        if not fut.done():
            fut.set_exception(Refused(reason, rejected))
            fut.exception()  # marked retrieved: a gone client never awaits it

    def _leave(self, st: DispatchState, slot: Slot) -> None:
        st.slots.remove(slot)
        st.remaining -= 1
        self.in_flight[st.backend] -= 1
        self.inflight_of[st.backend].v = self.in_flight[st.backend]
        if st.remaining == 0:
            self.dispatches.pop(st.dispatch_id, None)

    def _set_timer(self, t: float) -> None:
        if t in self._timers:
            return
        loop = self._loop or asyncio.get_running_loop()
        self._timers[t] = loop.call_later(max(0.0, t - _mono()), self._fire, t)

    def _fire(self, t: float) -> None:
        self._timers.pop(t, None)
        self._call(self.cp.on_timer, _mono())

    # -- events from the relay ------------------------------------------------------------

    def first_token(self, slot: Slot) -> None:
        if slot.started or slot.closed:
            return
        slot.started = True
        self._call(self.cp.on_progress, slot.backend, slot.req.id, _mono(), first_token=True)

    def part_done(self, st: DispatchState, slot: Slot, ok: bool, reason: str = "") -> None:
        """One request of dispatch `st` has finished (or was abandoned)."""
        if slot.closed:
            return
        slot.closed = True
        self.slots.pop(slot.req.id, None)
        if ok:
            st.any_ok = True
        else:
            st.reason = st.reason or reason
        self._leave(st, slot)
        if st.remaining == 0 and not st.closed:
            st.closed = True
            self._call(self.cp.on_completion, st.backend, st.dispatch_id, _mono(),
                       ok=st.any_ok, reason="" if st.any_ok else st.reason)
        self.overhead_us(slot)

    def client_gone(self, slot: Slot, reason: str = "client_disconnected") -> None:
        """The client disconnected (or its handler broke): free its backend slot, or
        mark it so it is freed without an upstream call when the core dispatches it."""
        if slot.closed:
            return
        slot.gone = True
        if slot.upstream is not None:
            slot.upstream.close()
        if slot.dispatch_id is not None:
            st = self.dispatches.get(slot.dispatch_id)
            if st is not None and slot in st.slots:
                self.part_done(st, slot, ok=False, reason=reason)
        # still queued: the core has no cancel event yet; it is freed when dispatched

    def upstream_unavailable(self, st: DispatchState, error: str) -> None:
        """A call to st.backend failed before anything started: take the backend out.

        The core re-dispatches what had not started (retried elsewhere) and
        fails what had; slots it leaves with us are failed here with the reason.
        """
        self.mark_down(st.backend, error)
        if st.closed:
            return
        for slot in list(st.slots):
            if slot.dispatch_id == st.dispatch_id and not slot.closed:
                # not re-dispatched by the core: account for it ourselves
                self.part_done(st, slot, ok=False, reason="backend_unavailable")
                fut = slot.next_future() if slot.fut.done() else slot.fut
                if not fut.done():
                    fut.set_exception(Refused("backend_unavailable", rejected=False))
                    fut.exception()

    def mark_down(self, name: str, why: str = "") -> None:
        """Take a backend out. The core fails what had started there and re-queues
        the rest; re-queued requests lose their old upstream call."""
        if not self.up.get(name, False):
            return
        self.up[name] = False
        self.metrics.backend_up.labels(name).set(0)
        self.metrics.backend_down_events.labels(name).inc()
        there = [st for st in self.dispatches.values() if st.backend == name]
        self._call(self.cp.on_backend_down, name, _mono())
        for st in there:
            st.closed = True  # the core dropped this dispatch: no completion for it
            for slot in list(st.slots):
                if slot.closed or slot.dispatch_id != st.dispatch_id:
                    continue
                # re-queued by the core and not yet dispatched again
                self._leave(st, slot)
                slot.dispatched = None
                self.depth_of[slot.req.cls].v += 1
                if slot.upstream is not None:
                    slot.upstream.close()

    def mark_up(self, name: str) -> None:
        if self.up.get(name, True):
            return
        self.up[name] = True
        self.metrics.backend_up.labels(name).set(1)
        self._call(self.cp.on_backend_up, name, _mono())

    # -- background loops -----------------------------------------------------------------

    async def _health_loop(self, name: str) -> None:
        url = self.urls[name]
        fails = 0
        timeout = self.opt.health_timeout_s
        while True:
            t0 = _mono()
            ok = await self.pool.probe(url, "/health", timeout)
            if ok:
                fails = 0
                self.mark_up(name)
            else:
                fails += 1
                # A quick "no" (refused, 5xx) is a dead engine: out at once. A probe
                # that timed out may be a busy machine: out at the second in a row.
                if fails >= self.opt.health_failures or _mono() - t0 < 0.8 * timeout:
                    self.mark_down(name, "health probe failed")
            await asyncio.sleep(self.opt.health_interval_s)

    async def _scrape_loop(self, name: str) -> None:
        eng = self._engines[name]
        while True:
            await asyncio.sleep(self.opt.scrape_interval_s)
            if not self.up[name]:
                continue
            try:
                stats = await asyncio.wait_for(eng.stats(), self.opt.health_timeout_s * 2)
            except Exception:  # noqa: BLE001 - an engine without /metrics just gives no state
                continue
            stats.in_flight = self.in_flight[name]
            self._call(self.cp.on_engine_state, name, stats, _mono())
