"""The sans-I/O control plane: events in with an explicit `now`, actions out.

It never sleeps or opens a socket, so the virtual-time runtime (simrt) and
the live gateway drive the very same code. It owns admission (bounded
per-class queues), per-backend slots (BackendSpec.max_concurrency), the
in-flight table and the conservation law: every request that arrives leaves
exactly once — completed, failed (reason) or rejected (reason). Ordering and
routing are the policy's and router's. The real time spent in each event
handler is measured with perf_counter_ns: that is the control-plane overhead
the paper reports.
"""

from __future__ import annotations

from bisect import insort
from collections import Counter
from operator import attrgetter
from time import perf_counter_ns

from sortedcontainers import SortedList

from engine.spec import BackendSpec, EngineStats
from scheduler.actions import Action, Dispatch, Fail, Reject, SetTimer
from scheduler.admission import REJECT_REASON, Admission
from scheduler.backends import BackendState
from scheduler.baselines import ImmediatePolicy, pools_for
from scheduler.config import ControlPlaneConfig, admission_on
from scheduler.policies import Policy, make_policy
from scheduler.routers import cost_order, make_router
from vocab import SCHEDULED_CLASSES, Request

_QUEUED, _IN_FLIGHT = 0, 1  # ids leave the table when their request leaves the core


_by_idx = attrgetter("idx")


class _InFlight:
    __slots__ = ("id", "backend", "requests", "t", "group", "started", "tokens",
                 "pred_ttft", "pred_tpot", "t_first")

    def __init__(self, did, backend, requests, t, group, tokens) -> None:
        self.id = did
        self.backend = backend
        self.requests = requests
        self.t = t
        self.group = group
        self.started = False
        self.tokens = tokens
        self.pred_ttft = self.pred_tpot = 0.0  # what was predicted at dispatch (LLM)
        self.t_first = 0.0


class ControlPlane:
    """One control plane over a fixed set of backends (docs/contracts.md)."""

    def __init__(self, config: ControlPlaneConfig, backends: list[BackendSpec]) -> None:
        if not backends:
            raise ValueError("backends: the control plane needs at least one backend")
        names = [b.name for b in backends]
        if len(set(names)) != len(names):
            raise ValueError(f"backends: duplicate names in {names}")
        self.config = config
        self.backend_list = [BackendState(s, i, config.estimate_alpha)
                             for i, s in enumerate(backends)]
        self.backends = {b.name: b for b in self.backend_list}
        self.capable = pools_for(config.baseline, self.backend_list)
        for b in self.backend_list:
            b.pool_classes = tuple(c for c in SCHEDULED_CLASSES if b in self.capable[c])
        for rank, b in enumerate(sorted(self.backend_list, key=cost_order)):
            b.cost_rank = rank
        # class -> up, capable backends with a free slot, in config order; updated in
        # place on every dispatch/release/up/down (policies keep a reference).
        self.free: dict[str, list[BackendState]] = {c: [] for c in SCHEDULED_CLASSES}
        self._recompute_free()
        for b in self.backend_list:  # the lists a dispatch/release updates, looked up once
            b.pool_free = tuple(self.free[c] for c in b.pool_classes)
        self.router = make_router(config)
        # SLO admission (scheduler.admission): on by default for the SLO-aware policies.
        # The queued LLM requests' order keys, sorted, give an arrival its rank.
        self.admission = Admission(self) if admission_on(config) else None
        self._ranks = SortedList()
        self._rank_key: dict[str, float] = {}
        # Under sage the slots bound dispatch; the baselines forward regardless.
        self._slot_limited = config.baseline == "sage"
        if self._slot_limited:
            self.policy = make_policy(config.policy, self)
        else:
            self.policy = ImmediatePolicy(self, config.baseline)
        # Only policies that hold work for a time (hybrid's batch window) set timers;
        # asking the others after every decision would be pure cost.
        self._timed = type(self.policy).next_timer is not Policy.next_timer
        self._settled = (self._slot_limited and self.policy.settled_after_pump
                         and not self._timed)
        cap = config.queue_capacity
        self.capacity = {"chat": cap.chat, "completion": cap.completion,
                         "embedding": cap.embedding}
        self.queued = dict.fromkeys(SCHEDULED_CLASSES, 0)
        self.in_flight: dict[int, _InFlight] = {}
        self._by_req: dict[str, _InFlight] = {}
        self._state: dict[str, int] = {}
        self._next_dispatch = 0
        self._timers: set[float] = set()
        # Counters for conservation and reports.
        self.arrived = 0
        self.completed = 0
        self.failed = 0
        self.rejected = 0
        self.requeued = 0
        self.stale_completions = 0
        self.reasons: Counter[str] = Counter()
        self.decision_times_us: list[float] = []
        self.overhead_us: dict[str, float] = {}
        self._touched: list[str] = []

    # -- helpers the policies use ---------------------------------------------
    def free_for(self, cls: str) -> list[BackendState]:
        """Up, capable backends with a free slot, in config order (kept up to date on
        every dispatch/release/up/down, so a decision does not rescan backends).
        Callers must not modify the list."""
        return self.free[cls]

    def fitting(self, req: Request, cands: list[BackendState]) -> list[BackendState]:
        """The free LLM backends that can run `req` at once (BackendState.fits); the
        list itself when all can (the common case allocates nothing)."""
        need = req.prompt_tokens + req.output_tokens
        for b in cands:
            if need > b.room:  # not b.fits(need), without a call per backend
                return [x for x in cands if x.fits(need)]
        return cands

    def _admitted_key(self, req: Request, now: float) -> float | None:
        """Admission at arrival: rank the request in the policy's order among the
        queued ones, and ask whether the work ahead leaves time for its SLOs. Its
        order key when admitted (ranked by `_rank` only if it queues: one routed
        straight to a free backend would leave the ranks again at once), None when
        refused."""
        key = self.policy.order_key(req)
        late = self.admission.reject_at_arrival(req, self._ranks.bisect_right(key),  # type: ignore[union-attr]  # called only with admission on
                                                 key - req.arrival, now)
        return None if late else key

    def _rank(self, req: Request, key: float) -> None:
        """A queued LLM request's order key joins the ranks admission counts."""
        if req.cls != "embedding":
            self._ranks.add(key)
            self._rank_key[req.id] = key

    def _unrank(self, rid: str) -> None:
        key = self._rank_key.pop(rid, None)
        if key is not None:
            self._ranks.remove(key)

    def _recompute_free(self) -> None:
        for c, lst in self.free.items():
            lst[:] = [b for b in self.capable[c] if b.up and b.in_flight < b.max_conc]

    @property
    def queue_depth(self) -> dict[str, int]:
        return dict(self.queued)

    @property
    def in_flight_requests(self) -> int:
        return sum(len(d.requests) for d in self.in_flight.values())

    # -- events ----------------------------------------------------------------
    def on_arrival(self, req: Request, now: float) -> list[Action]:
        t0 = perf_counter_ns()
        rid, cls, state, queued = req.id, req.cls, self._state, self.queued
        if rid in state:
            raise ValueError(f"request id {rid!r} arrived twice (it is still queued or "
                             f"in flight)")
        self.arrived += 1
        self._touched.append(rid)
        out: list[Action] = []
        pool = self.capable.get(cls)
        if pool is None:
            raise ValueError(f"request {rid!r}: class {cls!r} is not scheduled as such "
                             f"(a pipeline is sent as its stages)")
        key = None  # its order key, with admission on
        if not pool:
            self._reject(req, "no_capable_backend", out)
        elif queued[cls] >= self.capacity[cls]:
            self._reject(req, "queue_full", out)
        elif self.admission is not None and (key := self._admitted_key(req, now)) is None:
            self._reject(req, REJECT_REASON, out)
        else:
            idle = not (queued["chat"] or queued["embedding"] or queued["completion"])
            state[rid] = _QUEUED
            queued[cls] += 1
            cands = self.free[cls] if idle and self._slot_limited else None
            if cands and cls != "embedding":
                cands = self.fitting(req, cands)
            if cands and cls in self.policy.direct_classes:
                # Empty queues and a free slot: the policy's order is moot, only its
                # routing applies, so skip the queue round trip.
                choice = self.policy.route(req, cands, now)
                if isinstance(choice, Reject):
                    queued[cls] -= 1
                    self._reject(req, choice.reason, out)
                else:
                    out.append(self._dispatch((req,), choice, now))
            else:
                if key is not None:
                    self._rank(req, key)
                self.policy.push(req, now)
                if self.free[cls] or not self._settled:
                    self._pump(now, out)
                # else the queues were settled by the last pump and this arrival freed
                # no slot: nothing can move (under overload, most arrivals end here).
        self._account(t0)
        return out

    def on_progress(self, backend: str, req_id: str, now: float,
                    first_token: bool = True) -> list[Action]:
        d = self._by_req.get(req_id)
        if d is None or d.backend.name != backend:
            return []  # late news about a request already finished or moved
        if first_token and not d.started:
            d.started = True
            d.t_first = now
            b = d.backend
            b.llm_first_token(d.tokens)
            b.ttft_corr.observe(now - d.t, d.pred_ttft)
        return []

    def on_completion(self, backend: str, dispatch_id: int, now: float, ok: bool = True,
                      reason: str = "") -> list[Action]:
        t0 = perf_counter_ns()
        d = self.in_flight.get(dispatch_id)
        if d is None or d.backend.name != backend:
            # A backend marked down may still answer: its requests were already
            # failed or re-queued, so the answer is ignored (and counted).
            self.stale_completions += 1
            return []
        del self.in_flight[dispatch_id]
        self._release(d)
        out: list[Action] = []
        b = d.backend
        if ok:
            if d.group == "embedding":
                b.emb_est.observe(d.tokens, now - d.t)
            else:
                b.observe_e2e(now - d.t)
                if self.admission is not None:
                    self.admission.departed(now)
                out_tokens = d.requests[0].output_tokens
                if d.started and out_tokens > 1:
                    b.tpot_corr.observe((now - d.t_first) / (out_tokens - 1), d.pred_tpot)
            state = self._state
            for r in d.requests:
                del state[r.id]
            self.completed += len(d.requests)
        else:
            for r in d.requests:
                self._fail(r, reason or "engine_error", out)
        queued = self.queued
        if queued["chat"] or queued["embedding"] or queued["completion"]:
            self._pump(now, out)  # (with nothing queued it has nothing to do)
        self._account(t0)
        return out

    def on_engine_state(self, backend: str, stats: EngineStats, now: float) -> list[Action]:
        self._backend(backend).stats = stats
        return []

    def on_backend_down(self, backend: str, now: float) -> list[Action]:
        """Started requests fail (`backend_down`); not-yet-started ones are re-queued."""
        t0 = perf_counter_ns()
        b = self._backend(backend)
        b.up = False
        out: list[Action] = []
        for did in [i for i, d in self.in_flight.items() if d.backend is b]:
            d = self.in_flight.pop(did)
            self._release(d)
            for r in d.requests:
                if d.started:
                    self._fail(r, "backend_down", out)
                else:
                    self._state[r.id] = _QUEUED
                    self.queued[r.cls] += 1
                    self.requeued += 1
                    self.policy.requeue(r, now)
                    if self.admission is not None and r.cls != "embedding":
                        self._rank(r, self.policy.order_key(r))
        self._recompute_free()
        self._pump(now, out)
        self._account(t0)
        return out

    def on_backend_up(self, backend: str, now: float) -> list[Action]:
        t0 = perf_counter_ns()
        b = self._backend(backend)
        b.up = True
        self._recompute_free()
        out: list[Action] = []
        self._pump(now, out)
        self._account(t0)
        return out

    def on_timer(self, now: float) -> list[Action]:
        t0 = perf_counter_ns()
        # Forget every pending timer: a live runtime may fire a hair early
        # (asyncio runs handles within its clock resolution), and the pump below
        # re-arms whatever is still due, so nothing can be left without a timer.
        self._timers.clear()
        out: list[Action] = []
        self._pump(now, out)
        self._account(t0)
        return out

    def shutdown(self, now: float, reason: str = "run_ended") -> list[Action]:
        """Fail everything still queued or in flight, so the books balance at the end."""
        out: list[Action] = []
        for r in self.policy.drain():
            self.queued[r.cls] -= 1
            self._fail(r, reason, out)
        for d in list(self.in_flight.values()):
            del self.in_flight[d.id]
            self._release(d)
            for r in d.requests:
                self._fail(r, reason, out)
        return out

    # -- conservation ------------------------------------------------------------
    def assert_conserved(self, final: bool = False) -> None:
        """arrived == completed + failed + rejected + queued + in flight (+ nothing left if final)."""
        queued = sum(self.queued.values())
        flying = self.in_flight_requests
        left = self.completed + self.failed + self.rejected
        if self.arrived != left + queued + flying:
            raise AssertionError(
                f"conservation broken: arrived={self.arrived} completed={self.completed} "
                f"failed={self.failed} rejected={self.rejected} queued={queued} "
                f"in_flight={flying}")
        if min(self.queued.values()) < 0:
            raise AssertionError(f"negative queue depth: {self.queued}")
        if final and (queued or flying):
            raise AssertionError(f"not drained: queued={queued} in_flight={flying}")

    def decision_stats(self) -> dict[str, float]:
        """p50/p99/max of the real time per decision, microseconds (exact order
        statistics: a partial sort finds them ~3x faster than sorting a run's 10^5+)."""
        import numpy as np  # loaded with the simulator and the store already

        n = len(self.decision_times_us)
        if not n:
            return {"count": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}
        ks = (n // 2, min(n - 1, int(n * 0.99)), n - 1)
        xs = np.partition(np.fromiter(self.decision_times_us, float, n), ks)
        return {"count": n, "p50": float(xs[ks[0]]), "p99": float(xs[ks[1]]),
                "max": float(xs[ks[2]])}

    # -- internals -----------------------------------------------------------------
    def _backend(self, name: str) -> BackendState:
        try:
            return self.backends[name]
        except KeyError:
            raise ValueError(f"backend: unknown backend {name!r}; known: "
                             f"{', '.join(self.backends)}") from None

    def _pump(self, now: float, out: list[Action]) -> None:
        select = self.policy.select
        queued, free, limited = self.queued, self.free, self._slot_limited
        while True:
            qc, qe, qo = queued["chat"], queued["embedding"], queued["completion"]
            if not (qc or qe or qo):
                return  # nothing waits: no selection, and no batch window to time
            if limited and not ((qc and free["chat"]) or (qe and free["embedding"])
                                or (qo and free["completion"])):
                break  # work waits but no slot can take it: only the timer may change
            choice = select(now)
            if choice is None:
                break
            if isinstance(choice, Reject):
                r = choice.request
                self.queued[r.cls] -= 1
                self._touched.append(r.id)
                self._reject(r, choice.reason, out)
                continue
            reqs, b = choice
            out.append(self._dispatch(reqs, b, now))
        if self._timed:
            t = self.policy.next_timer(now)
            if t is not None and t not in self._timers:
                self._timers.add(t)
                out.append(SetTimer(t))

    def _dispatch(self, reqs: list[Request] | tuple[Request, ...], b: BackendState,
                  now: float) -> Dispatch:
        state, touched, queued = self._state, self._touched, self.queued
        rank_key = self._rank_key
        did = self._next_dispatch
        self._next_dispatch = did + 1
        reqs_t = reqs if type(reqs) is tuple else tuple(reqs)
        for r in reqs_t:
            rid = r.id
            if state.get(rid) != _QUEUED:
                raise AssertionError(f"request {rid!r} dispatched while not queued")
            state[rid] = _IN_FLIGHT
            queued[r.cls] -= 1
            if rank_key and rid in rank_key:
                self._unrank(rid)
            if not touched or touched[-1] != rid:
                touched.append(rid)
        r = reqs_t[0]
        if r.cls == "embedding":
            group = "embedding"
            tokens = (r.text_tokens or r.n_texts if len(reqs_t) == 1
                      else sum(q.text_tokens or q.n_texts for q in reqs_t))
            d = _InFlight(did, b, reqs_t, now, group, tokens)
            b.flying[did] = d  # backlog() estimates the work still ahead here
        else:
            group = "llm"
            d = _InFlight(did, b, reqs_t, now, group, r.prompt_tokens)
            d.pred_ttft = b.model_ttft(r.prompt_tokens)  # uncorrected: the correction
            d.pred_tpot = b.model_tpot()  # learns observed / model
            b.llm_dispatched(r.prompt_tokens, r.output_tokens)
            self._by_req[r.id] = d  # an LLM dispatch is one request
        self.in_flight[did] = d
        n = b.in_flight = b.in_flight + 1
        if n == b.max_conc:
            for free in b.pool_free:
                if b in free:
                    free.remove(b)
        b.outstanding += len(reqs_t)
        b.in_flight_group[group] += 1
        b.dispatched += 1
        return Dispatch(did, b.name, reqs_t)

    def _release(self, d: _InFlight) -> None:
        b = d.backend
        b.in_flight -= 1
        if b.in_flight == b.max_conc - 1 and b.up:
            for free in b.pool_free:
                if not free or free[-1].idx < b.idx:
                    free.append(b)  # the common case under load: the only free one
                elif b not in free:
                    insort(free, b, key=_by_idx)
        b.outstanding -= len(d.requests)
        b.in_flight_group[d.group] -= 1
        if d.group == "llm":
            r = d.requests[0]
            self._by_req.pop(r.id, None)
            b.llm_released(r.prompt_tokens, r.output_tokens, d.started)
        else:
            del b.flying[d.id]

    def _reject(self, r: Request, reason: str, out: list[Action]) -> None:
        self._state.pop(r.id, None)  # an arrival rejected at admission never entered it
        if self._rank_key:
            self._unrank(r.id)
        self.rejected += 1
        self.reasons["rejected:" + reason] += 1
        out.append(Reject(r, reason))

    def _fail(self, r: Request, reason: str, out: list[Action]) -> None:
        del self._state[r.id]
        self.failed += 1
        self.reasons["failed:" + reason] += 1
        out.append(Fail(r, reason))

    def _account(self, t0: int) -> None:
        """Record one decision's real duration and share it among the requests it touched."""
        us = (perf_counter_ns() - t0) / 1000.0
        self.decision_times_us.append(us)
        touched = self._touched
        n = len(touched)
        if n == 1:  # the common case: one arrival queued, or one completion
            rid = touched[0]
            ov = self.overhead_us
            ov[rid] = ov.get(rid, 0.0) + us
            touched.clear()
        elif n:
            ov = self.overhead_us
            share = us / n
            for rid in touched:
                ov[rid] = ov.get(rid, 0.0) + share
            touched.clear()
