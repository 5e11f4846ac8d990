"""What every policy implements, and the heap-ordered queue most of them share.

A policy owns the central queues' order; the core owns admission, slots,
counters and conservation. `select(now)` is asked repeatedly until it returns
None: each answer is one dispatch `(requests, backend)` or one `Reject`.
A policy never drops a request: when no backend is free, it keeps it queued.
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING

from scheduler.actions import Reject
from scheduler.admission import SHED_REASON
from scheduler.backends import BackendState, group_of
from vocab import SCHEDULED_CLASSES, Request

if TYPE_CHECKING:
    from scheduler.core import ControlPlane

INF = float("inf")
Selection = tuple[list[Request] | tuple[Request, ...], BackendState] | Reject | None


def tokens_of(req: Request) -> float:
    """Size that drives the latency estimate: input tokens (texts if unknown)."""
    if req.cls == "embedding":
        return req.text_tokens or req.n_texts
    return req.prompt_tokens


def router_pick(cp: ControlPlane, req: Request, cands: list[BackendState],
                now: float) -> BackendState:
    """The configured router's choice; the sizes and deadline are computed only for
    routers that read them, and a lone candidate skips a stateless router."""
    router = cp.router
    if len(cands) == 1 and not router.stateful:
        return cands[0]
    if router.uses_estimates:
        cls = req.cls
        return router.pick(cls, cands, group_of(cls), tokens_of(req),
                           req.deadline if router.uses_deadline else INF, now)
    return router.pick(req.cls, cands, "", 0, INF, now)


class Policy:
    """Interface: push / requeue / select / route / next_timer / drain."""

    name = ""
    # Classes an arrival may be routed straight away when every queue is empty
    # and a slot is free (the order cannot matter then); hybrid holds embeddings.
    direct_classes: frozenset[str] = frozenset()
    # True where select() answers None only when no queued class has a free capable
    # backend (and no timers): then the queues are settled after every pump, and an
    # arrival whose class has no free backend cannot make anything dispatchable.
    settled_after_pump = False

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        # route() of a lone candidate is that candidate: a policy that may reject or
        # a router that must see every pick (round-robin's turn) says otherwise.
        self.lone_is_choice = not cp.router.stateful

    def push(self, req: Request, now: float) -> None:
        raise NotImplementedError

    def order_key(self, req: Request) -> float:
        """Where the request goes in this policy's order (smaller first), as one
        number; admission control ranks arrivals by it."""
        return req.arrival

    def requeue(self, req: Request, now: float) -> None:
        """Put back a request whose backend went down before it started."""
        self.push(req, now)

    def select(self, now: float) -> Selection:
        raise NotImplementedError

    def route(self, req: Request, cands: list[BackendState], now: float) -> BackendState | Reject:
        """Where a request chosen to go now goes (a Reject where the policy rejects)."""
        return router_pick(self.cp, req, cands, now)

    def place(self, req: Request, cands: list[BackendState], now: float) -> Selection:
        """The request routed among `cands`, or its Reject: the policy's own, or a shed
        where admission control predicts it would still miss an SLO there."""
        choice = cands[0] if len(cands) == 1 and self.lone_is_choice else self.route(req, cands, now)
        if type(choice) is Reject:
            return choice
        adm = self.cp.admission
        if adm is not None and adm.shed_now(req, choice, now):
            return Reject(req, SHED_REASON)
        return (req,), choice

    def next_timer(self, now: float) -> float | None:
        """Earliest future time at which select() could answer differently."""
        return None

    def drain(self) -> list[Request]:
        """Remove and return every queued request (shutdown)."""
        raise NotImplementedError


class HeapPolicy(Policy):
    """Per-class heaps on a static key; the globally smallest head whose class
    has a free capable backend goes next, routed by the configured router.

    Keys must not depend on `now` (aging is folded into a static key), so a
    heap stays valid and a decision costs O(log n) at any queue depth. Heap
    entries are tuples whose last item is the request (`(key, seq, req)` here;
    a subclass may flatten a tuple key into the entry, which orders the same).
    """

    direct_classes = frozenset(SCHEDULED_CLASSES)
    settled_after_pump = True

    def __init__(self, cp: ControlPlane) -> None:
        super().__init__(cp)
        self.heaps: dict[str, list] = {c: [] for c in SCHEDULED_CLASSES}
        self._seq = itertools.count()
        # (heap, free list) per class in class order, for select(); a class no backend
        # can serve never queues (the core rejects it), so it is left out.
        self._lanes = [(self.heaps[c], cp.free[c]) for c in SCHEDULED_CLASSES if cp.capable[c]]

    def key(self, req: Request):
        raise NotImplementedError

    def order_key(self, req: Request) -> float:
        k = self.key(req)
        return k[0] if type(k) is tuple else k

    def push(self, req: Request, now: float) -> None:
        heapq.heappush(self.heaps[req.cls], (self.key(req), next(self._seq), req))

    def select(self, now: float) -> Selection:
        best = best_heap = best_cands = None
        fitting = self.cp.fitting
        for heap, cands in self._lanes:  # free lists kept current by the core
            if heap and cands and (best is None or heap[0] < best):
                if heap[0][-1].cls != "embedding":
                    cands = fitting(heap[0][-1], cands)  # KV room for the head
                    if not cands:
                        continue
                best, best_heap, best_cands = heap[0], heap, cands
        if best is None:
            return None
        assert best_heap is not None and best_cands is not None  # set with best
        selection = self.place(best[-1], best_cands, now)
        heapq.heappop(best_heap)
        return selection

    def drain(self) -> list[Request]:
        out = [e[-1] for heap in self.heaps.values() for e in heap]
        for heap in self.heaps.values():
            heap.clear()
        return out
