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
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from engine.spec import BackendSpec
from scheduler.actions import Dispatch, Fail, Reject, SetTimer
from scheduler.config import ControlPlaneConfig
from scheduler.core import ControlPlane
from vocab import Request

_ARRIVAL, _ENGINE, _TIMER, _FAULT, _GATED = 0, 1, 2, 3, 4


@dataclass(slots=True)
class Fault:
    """Backend `backend` goes down (up=False) or comes back (up=True) at `t`."""

    t: float
    backend: str
    up: bool = False


@dataclass
class SimResult:
    outcomes: list[Request]
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


def prefix_cache(engines) -> dict:
    """Prefix-cache hits over the LLM engines' admissions (engine.sim.prefix): tokens
    asked for, tokens found cached, and their ratio (None without any admission)."""
    queries = hits = 0
    for e in engines:
        st = e.prefix_stats() if hasattr(e, "prefix_stats") else {}
        queries += st.get("queries", 0)
        hits += st.get("hits", 0)
    return {"queries": queries, "hits": hits, "hit_rate": hits / queries if queries else None}


def _sample_backend(eng) -> dict:
    st = eng.stats()
    return {"running": st.running, "waiting": st.waiting, "kv_use": st.kv_use,
            "in_flight": st.in_flight if st.in_flight is not None else st.running + st.waiting}


def simulate(
    config: ControlPlaneConfig,
    backends: list[BackendSpec],
    requests: Iterable[Request],
    *,
    on_done: Callable[[Request, float], list[Request]] | None = None,
    faults: Iterable[Fault] = (),
    engine_factory: Callable[[BackendSpec], Any] | None = None,
    horizon_s: float | None = None,
    token_events: bool = False,
    sample_every_s: float = 1.0,
    seed: int = 0,
) -> SimResult:
    """Run `requests` (arrival = virtual time) to completion, or to `horizon_s`
    after which everything still queued or running fails with `run_ended`. `seed`
    seeds the engines' noise draws (each backend its own stream). `on_done` is told
    of each finished request and may answer with new ones (a pipeline's next stage).
    Each request is its own record: its outcome fields are filled in place, and
    `SimResult.outcomes` lists the requests in the order they reached the core."""
    if engine_factory is None:
        # The simulator's modules load once per process (numpy comes with them); that
        # is set-up, not simulation, so it stays out of wall_s.
        import engine.sim.factory  # noqa: F401
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of short-lived objects, no cycles: collection is pure cost
    try:
        rt = SimRuntime(config, backends, on_done=on_done, engine_factory=engine_factory,
                        token_events=token_events, seed=seed)
        return rt.run(requests, faults, horizon_s, sample_every_s)
    finally:
        if gc_was_enabled:
            gc.enable()


class SimRuntime:
    """The virtual-time driver of the core, one per simulation.

    Its event methods carry the live gateway runtime's names
    (scheduler/gateway/runtime.py: admit, _execute, _dispatch, _refuse,
    first_token, part_done, mark_down, mark_up), so the two drivers of the one
    core read side by side. What differs is where events come from: here a heap
    of virtual times (arrivals, engine step ends, timers, faults) and engines
    that advance whole steps.
    """

    def __init__(self, config: ControlPlaneConfig, backends: list[BackendSpec], *,
                 on_done: Callable[[Request, float], list[Request]] | None = None,
                 engine_factory: Callable[[BackendSpec], Any] | None = None,
                 token_events: bool = False, seed: int = 0) -> None:
        hosts: dict = {}  # machines shared by engines, by the specs' `host`
        self.factory = engine_factory or (
            lambda s: make_sim_engine(s, token_events, hosts, seed))
        self.cp = cp = ControlPlane(config, backends)
        self.engines = {s.name: self.factory(s) for s in backends}
        self.specs = {s.name: s for s in backends}
        self.emb_engine = {s.name: s.capabilities == ["embedding"] for s in backends}
        self.eng_t: dict[str, float | None] = dict.fromkeys(self.engines)
        self.on_done = on_done
        # Every outcome in arrival order, and the ones still in the system by request
        # id. Finished outcomes leave `live` (and their overhead leaves the core's
        # table), so the tables touched per event stay small and cache-resident: at
        # 60,000 requests, lookups in ever-growing tables were a tenth of the run.
        self.outcomes: list[Request] = []
        self.live: dict[str, Request] = {}
        self.overhead = cp.overhead_us
        self.batch_of: dict[Any, Dispatch] = {}  # engine key of an embedding batch -> dispatch
        self.llm_did: dict[str, int] = {}  # request id -> dispatch id
        self.heap: list = []  # (t, seq, kind, payload); seq keeps equal times in push order
        self.next_seq = itertools.count(1).__next__
        self.samples: list[dict] = []
        self.events: list[dict] = []
        # The gateway process in front of the core (control_plane.gateway_us_per_request):
        # one FIFO server, so past 1 / its cost per request requests queue before the core.
        self.gw_cost = config.gateway_us_per_request / 1e6
        self.gw_free = 0.0
        self.gated: dict[str, float] = {}  # request id -> µs spent in the gateway

    # -- arrivals ---------------------------------------------------------------------

    def gateway(self, r: Request, t: float) -> None:
        """Queue `r` at the gateway server; it reaches the core when served."""
        t_core = max(t, self.gw_free) + self.gw_cost
        self.gw_free = t_core
        self.gated[r.id] = (t_core - t) * 1e6
        r.arrival = t_core  # the core sees it when the gateway is done with it
        heapq.heappush(self.heap, (t_core, self.next_seq(), _GATED, r))

    def admit(self, r: Request, t: float) -> None:
        """A request reaches the core (arrival event)."""
        self._outcome_of(r)
        acts = self.cp.on_arrival(r, t)
        if acts:
            self._execute(acts, t)

    def _outcome_of(self, r: Request) -> Request:
        """The request becomes its own record: sent and received when it reaches the
        core (the simulated client and gateway add no time of their own)."""
        r.t_sent = r.t_received = r.arrival
        self.outcomes.append(r)
        self.live[r.id] = r
        return r

    def _settle(self, rid: str) -> Request:
        """The outcome of a request that has left the core (its overhead is final)."""
        o = self.live.pop(rid)
        o.overhead_us = self.overhead.pop(rid, None)
        if self.gated:
            o.overhead_us = (o.overhead_us or 0.0) + self.gated.pop(rid, 0.0)
        return o

    def _finished(self, o: Request, now: float) -> None:
        """Tell `on_done`; the requests it answers with arrive now (or when due)."""
        for r in self.on_done(o, now):  # type: ignore[misc]  # called only when on_done is set
            heapq.heappush(self.heap, (max(r.arrival, now), self.next_seq(), _ARRIVAL, r))

    # -- the core's actions ---------------------------------------------------------------

    def _execute(self, actions: list, now: float) -> None:
        for a in actions:
            ta = type(a)
            if ta is Dispatch:
                self._dispatch(a, now)
            elif ta is SetTimer:
                heapq.heappush(self.heap, (a.t, self.next_seq(), _TIMER, None))
            else:  # Reject | Fail
                self._refuse(a, now)

    def _dispatch(self, a: Dispatch, now: float) -> None:
        name = a.backend
        eng = self.engines[name]
        reqs = a.requests
        r = reqs[0]
        live = self.live
        if r.cls == "embedding":
            texts = tokens = 0
            for q in reqs:
                o = live[q.id]
                o.t_dispatched, o.backend = now, name
                texts += q.n_texts
                tokens += q.text_tokens or q.n_texts
            key: int | tuple[str, int]
            if self.emb_engine[name]:
                key = a.dispatch_id
                eng.submit(key, texts, tokens, now)
            else:  # vLLM pooling on an LLM engine: one prefill and one token
                key = ("emb", a.dispatch_id)
                eng.submit(key, max(tokens, 1), 1, 2, now)
            self.batch_of[key] = a
        else:
            o = live[r.id]
            o.t_dispatched, o.backend = now, name
            self.llm_did[r.id] = a.dispatch_id
            if r.prefix_tokens or r.prefix_extend:  # a shared prefix (engine.sim.prefix)
                eng.submit(r.id, r.prompt_tokens or 1, r.output_tokens or 1, r.priority, now,
                           prefix=(r.prefix_id, r.prefix_tokens, r.prefix_extend))
            else:
                eng.submit(r.id, r.prompt_tokens or 1, r.output_tokens or 1, r.priority, now)
        self._resched(name, eng)

    def _refuse(self, a: Reject | Fail, now: float) -> None:
        o = self._settle(a.request.id)
        o.status = "rejected" if type(a) is Reject else "failed"
        o.reason = a.reason
        if self.on_done is not None:
            self._finished(o, now)

    # -- engine events ----------------------------------------------------------------------

    def _resched(self, name: str, eng: Any) -> None:
        """Keep one heap entry per engine, at its next step end."""
        t = eng.next_event_time()
        eng_t = self.eng_t
        if t != eng_t[name]:
            eng_t[name] = t
            if t is not None:
                heapq.heappush(self.heap, (t, self.next_seq(), _ENGINE, name))

    def engine_step(self, name: str, now: float) -> None:
        """Advance engine `name` to `now` and pass on what happened in its steps."""
        eng = self.engines[name]  # a fault may replace it, but only between events
        live = self.live
        for kind, key, ntok, t, rids in eng.advance(now):
            if kind == "done":
                self.part_done(name, key, ntok, t)
            elif kind == "first_token":
                if type(key) is str:
                    self.first_token(name, key, t)
            elif kind == "tokens":
                for k in rids:
                    if type(k) is str:
                        live[k].chunk_times.append(t)
        self._resched(name, eng)

    def first_token(self, name: str, rid: str, t: float) -> None:
        self.live[rid].t_first_token = t
        self.cp.on_progress(name, rid, t, True)

    def part_done(self, name: str, key: Any, ntok: int, t: float) -> None:
        """An engine finished an LLM request (key: its id) or an embedding batch."""
        on_done = self.on_done
        if type(key) is str:
            o = self._settle(key)
            o.t_done, o.status, o.output_tokens = t, "completed", ntok
            if o.t_first_token is None:
                o.t_first_token = t
            if on_done is not None:
                self._finished(o, t)
            acts = self.cp.on_completion(name, self.llm_did.pop(key), t)
        else:
            d = self.batch_of.pop(key)
            for r in d.requests:
                o = self._settle(r.id)
                o.t_done, o.status = t, "completed"
                if on_done is not None:
                    self._finished(o, t)
            acts = self.cp.on_completion(name, d.dispatch_id, t)
        if acts:
            self._execute(acts, t)

    # -- faults ------------------------------------------------------------------------------

    def mark_up(self, name: str, t: float) -> None:
        """A fresh engine comes up in place of a failed one."""
        if self.cp.backends[name].up:
            return
        self.engines[name] = self.factory(self.specs[name])
        self.eng_t[name] = None
        self.events.append({"t_s": t, "kind": "engine_up", "subject": name})
        self._execute(self.cp.on_backend_up(name, t), t)

    def mark_down(self, name: str, t: float) -> None:
        """The backend dies: its engine state is lost, the core re-queues or fails."""
        cp = self.cp
        if not cp.backends[name].up:
            return
        self.engines[name] = self.factory(self.specs[name])  # the old work is gone
        self.eng_t[name] = None
        batch_of, llm_did = self.batch_of, self.llm_did
        for key in [k for k, d in batch_of.items() if d.backend == name]:
            del batch_of[key]
        for rid in [r for r, did in llm_did.items() if cp.in_flight.get(did) is not None
                    and cp.in_flight[did].backend.name == name]:
            del llm_did[rid]
        self.events.append({"t_s": t, "kind": "engine_down", "subject": name})
        self._execute(cp.on_backend_down(name, t), t)

    # -- samples ------------------------------------------------------------------------------

    def take_sample(self, t_s: float) -> None:
        cp = self.cp
        self.samples.append({
            "t_s": t_s,
            "queue_depth": dict(cp.queued),
            "in_flight": cp.in_flight_requests,
            "backends": {n: (_sample_backend(e) if cp.backends[n].up else
                             {"running": 0, "waiting": 0, "kv_use": 0.0, "in_flight": 0})
                         for n, e in self.engines.items()},
            "done": cp.completed + cp.failed + cp.rejected,
        })

    # -- the loop ------------------------------------------------------------------------------

    def run(self, requests: Iterable[Request], faults: Iterable[Fault] = (),
            horizon_s: float | None = None, sample_every_s: float = 1.0) -> SimResult:
        wall0 = time.perf_counter()
        heap, next_seq = self.heap, self.next_seq
        for f in faults:
            if f.backend not in self.engines:
                raise ValueError(f"faults.backend: unknown backend {f.backend!r}; "
                                 f"known: {', '.join(self.engines)}")
            heapq.heappush(heap, (f.t, next_seq(), _FAULT, f))
        arrivals = sorted(requests, key=attrgetter("arrival"))
        used = next((r.id for r in arrivals if r.t_sent is not None), None)
        if used is not None:
            raise ValueError(f"requests: {used!r} was simulated already (a simulation fills "
                             f"each request's outcome in place; pass fresh requests)")
        now = self._loop(arrivals, horizon_s, sample_every_s)
        if horizon_s is not None:
            now = max(now, horizon_s)
        for _, _, kind, payload in heap:  # still queued in the gateway at the horizon
            if kind == _GATED:
                o = self._outcome_of(payload)
                self.live.pop(payload.id)
                o.status, o.reason = "failed", "run_ended"
                o.overhead_us = self.gated.pop(payload.id, None)
        self._execute(self.cp.shutdown(now), now)
        return self._result(now, time.perf_counter() - wall0)

    def _loop(self, arrivals: list[Request], horizon_s: float | None,
              sample_every_s: float) -> float:
        """Events in time order until none is left before the horizon; returns the
        virtual time of the last one. Open-loop arrivals are read from their sorted
        list in a tight inner loop instead of going through the heap."""
        heap, heappop, eng_t = self.heap, heapq.heappop, self.eng_t
        admit, gateway, gw_cost = self.admit, self.gateway, self.gw_cost
        i, n_arr = 0, len(arrivals)
        now = 0.0
        next_sample = sample_every_s
        inf = float("inf")
        horizon = inf if horizon_s is None else horizon_s
        while True:
            t_heap = heap[0][0] if heap else inf
            while i < n_arr:
                r = arrivals[i]
                t = r.arrival
                if t > t_heap or t > horizon:
                    break
                while next_sample <= t:
                    self.take_sample(next_sample)
                    next_sample += sample_every_s
                i += 1
                now = t
                if gw_cost:
                    gateway(r, t)
                else:
                    admit(r, t)
                if heap and heap[0][0] < t_heap:
                    t_heap = heap[0][0]
            if t_heap == inf or t_heap > horizon:
                if i < n_arr and arrivals[i].arrival <= horizon:
                    continue  # only arrivals remain
                return now
            while next_sample <= t_heap:
                self.take_sample(next_sample)
                next_sample += sample_every_s
            t, _, kind, payload = heappop(heap)
            now = t
            if kind == _ENGINE:
                if eng_t[payload] == t:
                    eng_t[payload] = None
                    self.engine_step(payload, t)
            elif kind == _ARRIVAL and gw_cost:
                gateway(payload, t)
            elif kind == _ARRIVAL or kind == _GATED:
                admit(payload, t)
            elif kind == _TIMER:
                self._execute(self.cp.on_timer(t), t)
            elif payload.up:
                self.mark_up(payload.backend, t)
            else:
                self.mark_down(payload.backend, t)

    def _result(self, now: float, wall_s: float) -> SimResult:
        cp = self.cp
        cp.assert_conserved(final=True)
        return SimResult(
            outcomes=self.outcomes, samples=self.samples,
            decision_times_us=cp.decision_times_us, events=self.events,
            counters={"arrived": cp.arrived, "completed": cp.completed, "failed": cp.failed,
                      "rejected": cp.rejected, "requeued": cp.requeued,
                      "reasons": dict(cp.reasons), "decision": cp.decision_stats(),
                      "preemptions": sum(getattr(e, "preemptions", 0)
                                         for e in self.engines.values()),
                      "prefix_cache": prefix_cache(self.engines.values())},
            sim_end_s=now, wall_s=wall_s)
