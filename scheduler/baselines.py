"""The comparison baselines, as configurations of the same core.

`control_plane.baseline` switches them (the policy setting applies to `sage`
only):

* `sage` — central per-class queues, the configured policy and router, and
  per-backend concurrency limits so the policy's order decides.
* `vllm-only` — no central queue: each request goes at once, round-robin, to
  a backend that can serve its class (chat to generate instances, embeddings
  to pooling instances), ignoring concurrency limits; the engine's own FCFS
  queue decides.
* `separate` — a static partition: backends that serve chat/completion form
  the LLM pool, embedding-only backends the embedding service pool; each pool
  round-robin, dispatched at once like `vllm-only`.

A request waits in the core only when every backend of its pool is down, so
nothing is dropped.
"""

from __future__ import annotations

from collections import deque

from scheduler.backends import BackendState
from scheduler.policies.base import Policy, Selection, tokens_of
from scheduler.request import REQUEST_CLASSES, Request
from scheduler.routers import RoundRobin


def pools_for(baseline: str, backends: list[BackendState]) -> dict[str, list[BackendState]]:
    """Which backends may serve each class under a baseline."""
    pools = {c: [b for b in backends if c in b.caps] for c in REQUEST_CLASSES}
    if baseline == "separate":
        llm_pool = {b.name for b in backends if "llm" in b.groups}
        pools["embedding"] = [b for b in pools["embedding"] if b.name not in llm_pool]
    return pools


class ImmediatePolicy(Policy):
    """Dispatch on arrival, round-robin within the class's pool, no slot limit."""

    def __init__(self, cp, baseline: str) -> None:
        super().__init__(cp)
        self.name = baseline
        self.pools = pools_for(baseline, cp.backend_list)
        self.rr = RoundRobin()
        self.waiting: dict[str, deque[Request]] = {c: deque() for c in REQUEST_CLASSES}

    def push(self, req: Request, now: float) -> None:
        self.waiting[req.cls].append(req)

    def requeue(self, req: Request, now: float) -> None:
        self.waiting[req.cls].appendleft(req)

    def select(self, now: float) -> Selection:
        for cls, dq in self.waiting.items():
            if dq:
                ups = [b for b in self.pools[cls] if b.up]
                if ups:
                    req = dq.popleft()
                    return [req], self.rr.pick(cls, ups, "", tokens_of(req), req.deadline, now)
        return None

    def drain(self) -> list[Request]:
        out = [r for dq in self.waiting.values() for r in dq]
        for dq in self.waiting.values():
            dq.clear()
        return out
