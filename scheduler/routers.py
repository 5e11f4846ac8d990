"""Routers: which free backend gets a dispatch the policy has chosen.

Each takes the non-empty list of free, up, capable backends (in config order)
and returns one. Policies with their own routing rule (slo, hybrid's
embeddings) reuse `cheapest_meeting_deadline`.
"""

from __future__ import annotations

import random
from operator import attrgetter

from scheduler.backends import BackendState
from scheduler.config import ROUTERS, ControlPlaneConfig


class Router:
    name = ""
    uses_estimates = False  # reads group/tokens (else the caller may skip them)
    uses_deadline = False  # reads the deadline too (else the caller passes infinity)
    stateful = False  # must see every pick, even when there is one candidate

    def pick(self, cls: str, cands: list[BackendState], group: str, tokens: float,
             deadline: float, now: float) -> BackendState:
        raise NotImplementedError


class LeastWork(Router):
    """Earliest predicted first token (LLM) or batch completion (embeddings) from the
    work already dispatched to each backend (scheduler.predict); ties to the cheaper
    backend, then config order. Between two equal engines it picks the one with less
    prefill ahead and the smaller decode batch, so work spreads evenly."""

    name = "least-work"
    uses_estimates = True

    def pick(self, cls, cands, group, tokens, deadline, now):
        best, best_t = cands[0], float("inf")
        clearly = best_t  # what a time must be below to win outright: best_t·(1 − 1e-9)
        batch = group == "embedding"
        for b in cands:
            t = b.estimate(group, tokens)
            if batch and b.flying:  # backlog() is 0 without batches in flight
                t += b.backlog(now)
            if t < clearly or (t <= best_t and b.cost_rank < best.cost_rank):
                best, best_t = b, t
                clearly = t * (1 - 1e-9)
        return best


class RoundRobin(Router):
    """Rotate over backends in config order, skipping busy ones."""

    name = "round-robin"
    stateful = True

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def pick(self, cls, cands, group, tokens, deadline, now):
        start = self._next.get(cls, 0)
        chosen = cands[0]
        for b in cands:
            if b.idx >= start:
                chosen = b
                break
        self._next[cls] = chosen.idx + 1
        return chosen


class LeastOutstanding(Router):
    """Fewest outstanding requests per concurrency slot; ties to config order."""

    name = "least-outstanding"

    def pick(self, cls, cands, group, tokens, deadline, now):
        best = cands[0]
        best_load = best.outstanding / best.max_conc
        for b in cands:
            load = b.outstanding / b.max_conc
            if load < best_load:
                best, best_load = b, load
        return best


class PowerOfTwo(Router):
    """Two random candidates (seeded), keep the less loaded: near-LOR at O(1)."""

    name = "p2c"

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def pick(self, cls, cands, group, tokens, deadline, now):
        n = len(cands)
        if n == 1:
            return cands[0]
        i = int(self._rng.random() * n)
        j = int(self._rng.random() * (n - 1))
        if j >= i:
            j += 1
        a, b = cands[i], cands[j]
        return a if a.outstanding / a.max_conc <= b.outstanding / b.max_conc else b


def cost_order(b: BackendState) -> tuple:
    """Dedicated before shared, CPU before GPU, cheaper before dearer, then config order."""
    return (not b.dedicated_embedding, b.device != "cpu", b.price, b.idx)


_by_cost_rank = attrgetter("cost_rank")


def cheapest_meeting_deadline(cands: list[BackendState], group: str, tokens: float,
                              deadline: float, now: float) -> BackendState:
    """First backend in cost order (`cost_order`, precomputed as `cost_rank`) whose
    estimated completion meets the deadline; when none does, the one with the
    earliest estimated completion (spill)."""
    ranked = sorted(cands, key=_by_cost_rank) if len(cands) > 1 else cands
    best, best_t = ranked[0], float("inf")
    for b in ranked:
        done = now + b.estimate(group, tokens)
        if done <= deadline:
            return b
        if done < best_t:
            best, best_t = b, done
    return best


class CostAware(Router):
    """Heterogeneous CPU+GPU pools: the cheapest backend whose latency estimate
    meets the request's deadline, else the fastest. Requests without an SLO go
    to the cheapest free backend."""

    name = "cost-aware"
    uses_estimates = True
    uses_deadline = True

    def pick(self, cls, cands, group, tokens, deadline, now):
        return cheapest_meeting_deadline(cands, group, tokens, deadline, now)


def make_router(config: ControlPlaneConfig) -> Router:
    name = config.router
    if name == "least-work":
        return LeastWork()
    if name == "round-robin":
        return RoundRobin()
    if name == "least-outstanding":
        return LeastOutstanding()
    if name == "p2c":
        return PowerOfTwo(config.seed)
    if name == "cost-aware":
        return CostAware()
    raise ValueError(f"router: {name!r} is not one of {', '.join(ROUTERS)}")
