"""Virtual-time runtime: drives the ControlPlane and simulated engines.

A discrete-event loop (heapq) over arrivals, engine step ends, core timers
and faults. Engines advance whole steps (no per-token events unless asked),
so a 60 s, 1000 req/s, 8-backend run takes about a second of wall time. The
decision times it reports are real (perf_counter_ns inside the core).

Engine request keys: an LLM request is submitted under its request id (str);
an embedding batch under its dispatch id (int) on an embedding engine, or
`("emb", dispatch_id)` on an LLM engine (vLLM pooling ≈ prefill + 1 token).
"""

from __future__ import annotations

import gc
import heapq
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any

from engine.spec import BackendSpec
from scheduler.actions import Dispatch, Reject, SetTimer
from scheduler.config import ControlPlaneConfig
from scheduler.core import ControlPlane
from scheduler.request import Request

_ARRIVAL, _ENGINE, _TIMER, _FAULT, _GATED = 0, 1, 2, 3, 4


@dataclass(slots=True)
class RequestOutcome:
    """One request's outcome (fields as loadgen.records.RequestRecord)."""

    id: str
    cls: str
    client_id: str = ""
    priority: int = 2
    status: str = ""  # completed | failed | rejected
    reason: str = ""
    backend: str = ""
    t_intended: float = 0.0
    t_sent: float | None = None
    t_received: float | None = None
    t_dispatched: float | None = None
    t_first_token: float | None = None
    chunk_times: list[float] = field(default_factory=list)
    t_done: float | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    n_texts: int = 0
    slo_ttft_ms: float | None = None
    slo_e2e_ms: float | None = None
    overhead_us: float | None = None
    parent_id: str | None = None
    slo_tpot_ms: float | None = None
    slo_tier: str = ""


@dataclass(slots=True)
class Fault:
    """Backend `backend` goes down (up=False) or comes back (up=True) at `t`."""

    t: float
    backend: str
    up: bool = False


@dataclass
class SimResult:
    outcomes: list[RequestOutcome]
    samples: list[dict]  # one per simulated second
    decision_times_us: list[float]
    events: list[dict]  # engine_down / engine_up, for the store's event table
    counters: dict[str, Any]
    sim_end_s: float
    wall_s: float


def make_sim_engine(spec: BackendSpec, token_events: bool = False, hosts: dict | None = None,
                    seed: int = 0):
    """A simulated engine for a `kind = "sim"` backend (engine.sim.factory: its
    preset plus the vLLM scheduler flags in `extra_args`; `hosts`, one per
    simulation, lets engines that name one `host` slow each other down; `seed`, the
    run's, seeds its noise draws)."""
    from engine.sim.factory import make_engine

    return make_engine(spec, token_events=token_events, hosts=hosts, seed=seed)


def _sample_backend(eng) -> dict:
    st = eng.stats()
    return {"running": st.running, "waiting": st.waiting, "kv_use": st.kv_use,
            "in_flight": st.in_flight if st.in_flight is not None else st.running + st.waiting}


def simulate(
    config: ControlPlaneConfig,
    backends: list[BackendSpec],
    requests: Iterable[Request],
    *,
    on_done: Callable[[RequestOutcome, float], list[Request]] | None = None,
    faults: Iterable[Fault] = (),
    engine_factory: Callable[[BackendSpec], Any] | None = None,
    horizon_s: float | None = None,
    token_events: bool = False,
    sample_every_s: float = 1.0,
    seed: int = 0,
) -> SimResult:
    """Run `requests` (arrival = virtual time) to completion, or to `horizon_s`
    after which everything still queued or running fails with `run_ended`. `seed`
    seeds the engines' noise draws (each backend its own stream)."""
    if engine_factory is None:
        # The simulator's modules load once per process (numpy comes with them); that
        # is set-up, not simulation, so it stays out of wall_s.
        import engine.sim.factory  # noqa: F401
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of short-lived objects, no cycles: collection is pure cost
    try:
        return _simulate(config, backends, requests, on_done, faults, engine_factory, horizon_s,
                         token_events, sample_every_s, seed)
    finally:
        if gc_was_enabled:
            gc.enable()


def _simulate(config, backends, requests, on_done, faults, engine_factory, horizon_s,
              token_events, sample_every_s, seed) -> SimResult:
    wall0 = time.perf_counter()
    hosts: dict = {}  # machines shared by engines, by the specs' `host`
    factory = engine_factory or (lambda s: make_sim_engine(s, token_events, hosts, seed))
    cp = ControlPlane(config, backends)
    engines = {s.name: factory(s) for s in backends}
    specs = {s.name: s for s in backends}
    emb_engine = {s.name: s.capabilities == ["embedding"] for s in backends}
    eng_t: dict[str, float | None] = dict.fromkeys(engines)
    arrivals = sorted(requests, key=attrgetter("arrival"))
    # Every outcome in arrival order, and the ones still in the system by request id.
    # Finished outcomes leave `live` (and their overhead leaves the core's table), so
    # the tables touched per event stay small and cache-resident: at 60,000 requests,
    # lookups in ever-growing tables were a tenth of the run.
    outcomes: list[RequestOutcome] = []
    live: dict[str, RequestOutcome] = {}
    overhead = cp.overhead_us
    batch_of: dict[Any, Dispatch] = {}  # engine key of an embedding batch -> dispatch
    llm_did: dict[str, int] = {}  # request id -> dispatch id
    heap: list = []  # (t, seq, kind, payload); seq keeps equal times in push order
    next_seq = itertools.count(1).__next__
    heappush = heapq.heappush
    samples: list[dict] = []
    events: list[dict] = []
    for f in faults:
        if f.backend not in engines:
            raise ValueError(f"faults.backend: unknown backend {f.backend!r}; "
                             f"known: {', '.join(engines)}")
        heappush(heap, (f.t, next_seq(), _FAULT, f))

    def finish(o: RequestOutcome, now: float) -> None:
        for r in on_done(o, now):
            heappush(heap, (max(r.arrival, now), next_seq(), _ARRIVAL, r))

    def outcome_of(r: Request) -> RequestOutcome:
        a = r.arrival
        t_int = a if r.t is None else r.t
        o = RequestOutcome(r.id, r.cls, r.client_id, r.priority, "", "", "", t_int, a, a,
                           None, None, [], None, r.prompt_tokens, r.output_tokens, r.n_texts,
                           r.slo_ttft_ms, r.slo_e2e_ms, None, r.parent_id, r.slo_tpot_ms,
                           r.slo_tier)
        outcomes.append(o)
        live[r.id] = o
        return o

    def settle(rid: str) -> RequestOutcome:
        """The outcome of a request that has left the core (its overhead is final)."""
        o = live.pop(rid)
        o.overhead_us = overhead.pop(rid, None)
        if gated:
            o.overhead_us = (o.overhead_us or 0.0) + gated.pop(rid, 0.0)
        return o

    # The gateway process in front of the core (control_plane.gateway_us_per_request):
    # one FIFO server, so past 1 / its cost per request requests queue before the core.
    gw_cost = config.gateway_us_per_request / 1e6
    gw_free = [0.0]
    gated: dict[str, float] = {}  # request id -> µs spent in the gateway

    def through_gateway(r: Request, t: float) -> None:
        t_core = max(t, gw_free[0]) + gw_cost
        gw_free[0] = t_core
        gated[r.id] = (t_core - t) * 1e6
        # a copy: the caller's request keeps its own arrival (the core's is later)
        heappush(heap, (t_core, next_seq(), _GATED, replace(r, arrival=t_core)))

    def resched(name: str, eng) -> None:
        t = eng.next_event_time()
        if t != eng_t[name]:
            eng_t[name] = t
            if t is not None:
                heappush(heap, (t, next_seq(), _ENGINE, name))

    def apply(actions: list, now: float) -> None:
        for a in actions:
            ta = type(a)
            if ta is Dispatch:
                name = a.backend
                eng = engines[name]
                reqs = a.requests
                r = reqs[0]
                if r.cls == "embedding":
                    texts = tokens = 0
                    for q in reqs:
                        o = live[q.id]
                        o.t_dispatched, o.backend = now, name
                        texts += q.n_texts
                        tokens += q.text_tokens or q.n_texts
                    if emb_engine[name]:
                        key = a.dispatch_id
                        eng.submit(key, texts, tokens, now)
                    else:
                        key = ("emb", a.dispatch_id)
                        eng.submit(key, max(tokens, 1), 1, 2, now)
                    batch_of[key] = a
                else:
                    o = live[r.id]
                    o.t_dispatched, o.backend = now, name
                    llm_did[r.id] = a.dispatch_id
                    eng.submit(r.id, r.prompt_tokens or 1, r.output_tokens or 1, r.priority, now)
                resched(name, eng)
            elif ta is SetTimer:
                heappush(heap, (a.t, next_seq(), _TIMER, None))
            else:  # Reject | Fail
                o = settle(a.request.id)
                o.status = "rejected" if ta is Reject else "failed"
                o.reason = a.reason
                if on_done is not None:
                    finish(o, now)

    def engine_step(name: str, now: float) -> None:
        eng = engines[name]  # a fault may replace it, but only between events
        for kind, key, ntok, t, rids in eng.advance(now):
            if kind == "done":
                if type(key) is str:
                    o = settle(key)
                    o.t_done, o.status, o.output_tokens = t, "completed", ntok
                    if o.t_first_token is None:
                        o.t_first_token = t
                    if on_done is not None:
                        finish(o, t)
                    acts = cp.on_completion(name, llm_did.pop(key), t)
                else:
                    d = batch_of.pop(key)
                    for r in d.requests:
                        o = settle(r.id)
                        o.t_done, o.status = t, "completed"
                        if on_done is not None:
                            finish(o, t)
                    acts = cp.on_completion(name, d.dispatch_id, t)
                if acts:
                    apply(acts, t)
            elif kind == "first_token":
                if type(key) is str:
                    live[key].t_first_token = t
                    cp.on_progress(name, key, t, True)
            elif kind == "tokens":
                for k in rids:
                    if type(k) is str:
                        live[k].chunk_times.append(t)
        resched(name, eng)

    def take_sample(t_s: float) -> None:
        samples.append({
            "t_s": t_s,
            "queue_depth": dict(cp.queued),
            "in_flight": cp.in_flight_requests,
            "backends": {n: (_sample_backend(e) if cp.backends[n].up else
                             {"running": 0, "waiting": 0, "kv_use": 0.0, "in_flight": 0})
                         for n, e in engines.items()},
            "done": cp.completed + cp.failed + cp.rejected,
        })

    i, n_arr = 0, len(arrivals)
    now = 0.0
    next_sample = sample_every_s
    inf = float("inf")
    horizon = inf if horizon_s is None else horizon_s
    on_arrival, heappop = cp.on_arrival, heapq.heappop
    while True:
        t_heap = heap[0][0] if heap else inf
        # Open-loop arrivals up to the next queued event, in a tight loop.
        while i < n_arr:
            r = arrivals[i]
            t = r.arrival
            if t > t_heap or t > horizon:
                break
            while next_sample <= t:
                take_sample(next_sample)
                next_sample += sample_every_s
            i += 1
            now = t
            if gw_cost:
                through_gateway(r, t)
                t_heap = heap[0][0]
                continue
            outcome_of(r)
            acts = on_arrival(r, t)
            if acts:
                apply(acts, t)
                if heap and heap[0][0] < t_heap:
                    t_heap = heap[0][0]
        if t_heap == inf or t_heap > horizon:
            if i < n_arr and arrivals[i].arrival <= horizon:
                continue  # only arrivals remain
            break
        while next_sample <= t_heap:
            take_sample(next_sample)
            next_sample += sample_every_s
        t, _, kind, payload = heappop(heap)
        now = t
        if kind == _ENGINE:
            if eng_t[payload] == t:
                eng_t[payload] = None
                engine_step(payload, t)
        elif kind == _ARRIVAL and gw_cost:
            through_gateway(payload, t)
        elif kind == _ARRIVAL or kind == _GATED:
            outcome_of(payload)
            apply(on_arrival(payload, t), t)
        elif kind == _TIMER:
            apply(cp.on_timer(t), t)
        else:
            _fault(payload, t, cp, engines, specs, eng_t, factory, batch_of, llm_did, events,
                   apply)
    if horizon_s is not None:
        now = max(now, horizon_s)
    for _, _, kind, payload in heap:  # still queued in the gateway at the horizon
        if kind == _GATED:
            o = outcome_of(payload)
            live.pop(payload.id)
            o.status, o.reason = "failed", "run_ended"
            o.overhead_us = gated.pop(payload.id, None)
    apply(cp.shutdown(now), now)
    cp.assert_conserved(final=True)
    return SimResult(
        outcomes=outcomes, samples=samples,
        decision_times_us=cp.decision_times_us, events=events,
        counters={"arrived": cp.arrived, "completed": cp.completed, "failed": cp.failed,
                  "rejected": cp.rejected, "requeued": cp.requeued,
                  "reasons": dict(cp.reasons), "decision": cp.decision_stats(),
                  "preemptions": sum(getattr(e, "preemptions", 0) for e in engines.values())},
        sim_end_s=now, wall_s=time.perf_counter() - wall0)


def _fault(f: Fault, t, cp, engines, specs, eng_t, factory, batch_of, llm_did, events, apply):
    """Kill a backend (its engine state is lost) or bring a fresh one up."""
    name = f.backend
    if f.up:
        if cp.backends[name].up:
            return
        engines[name] = factory(specs[name])
        eng_t[name] = None
        events.append({"t_s": t, "kind": "engine_up", "subject": name})
        apply(cp.on_backend_up(name, t), t)
        return
    if not cp.backends[name].up:
        return
    engines[name] = factory(specs[name])  # the old engine and its work are gone
    eng_t[name] = None
    for key in [k for k, d in batch_of.items() if d.backend == name]:
        del batch_of[key]
    for rid in [r for r, did in llm_did.items() if cp.in_flight.get(did) is not None
                and cp.in_flight[did].backend.name == name]:
        del llm_did[rid]
    events.append({"t_s": t, "kind": "engine_down", "subject": name})
    apply(cp.on_backend_down(name, t), t)
