"""The comparison baselines, as configurations of the same core.

`control_plane.baseline` switches them (the policy setting applies to `sage`
only). Every baseline but `sage` has no central queue: a request goes to an
engine on arrival, ignoring concurrency limits, and the engine's own queue
decides — what a team without a control plane runs.

* `sage` — central per-class queues, the configured policy and router, and
  per-backend concurrency limits so the policy's order decides.
* `vllm-only` — round-robin to a backend that can serve the class (chat to
  generate instances, embeddings to pooling instances).
* `separate` — a static partition: backends that serve chat/completion form
  the LLM pool, embedding-only backends the embedding service pool; each pool
  round-robin.
* `colocated` — every GPU backend hosts both the LLM and the embedding model;
  a client-side least-request balancer (an nginx/Envoy `least_request`
  upstream) sends each request to the capable backend with the fewest
  outstanding requests.
* `split` — `separate`'s partition on GPUs (embedding-only backends serve
  embeddings, the rest chat), least-request within each pool.
* `vllm-priority` — `vllm-only`'s dispatch to engines that run vLLM's own
  priority scheduling (`--scheduling-policy priority`): the request's
  `priority` orders each engine's queue.

A request waits in the core only when every backend of its pool is down, so
nothing is dropped.
"""

from __future__ import annotations

from collections import deque

from engine.spec import BackendSpec
from scheduler.backends import BackendState
from scheduler.policies.base import Policy, Selection, tokens_of
from scheduler.routers import RoundRobin, Router
from vocab import SCHEDULED_CLASSES, Request

# Baselines whose embedding pool is the embedding-only backends (a static partition).
_PARTITIONED = ("separate", "split")
# Baselines balanced by fewest outstanding requests; the others rotate.
_LEAST_REQUEST = ("colocated", "split")
_LLM_CAPS = ("chat", "completion")


def pools_for(baseline: str, backends: list[BackendState]) -> dict[str, list[BackendState]]:
    """Which backends may serve each class under a baseline."""
    pools = {c: [b for b in backends if c in b.caps] for c in SCHEDULED_CLASSES}
    if baseline in _PARTITIONED:
        llm_pool = {b.name for b in backends if "llm" in b.groups}
        pools["embedding"] = [b for b in pools["embedding"] if b.name not in llm_pool]
    return pools


def _serves_llm(spec: BackendSpec) -> bool:
    return any(c in spec.capabilities for c in _LLM_CAPS)


def _refuse(baseline: str, what: str, names: list[str], fix: str) -> None:
    listed = ", ".join(map(repr, names))
    raise ValueError(f"baseline: {baseline!r} refuses backends {listed}: {what}; {fix}")


def check_baseline(baseline: str, backends: list[BackendSpec]) -> None:
    """Refuse backends that would make a baseline silently another one: `vllm-priority`
    on engines without vLLM's priority scheduler is plain `vllm-only`, `colocated` with
    single-model GPUs is a partition, `split` with shared GPUs is colocation."""
    if baseline == "vllm-priority":
        bad = [b.name for b in backends if _serves_llm(b) and not b.priority_scheduling]
        if bad:
            _refuse(baseline, "they serve chat without vLLM's priority scheduling (that is "
                    "plain vllm-only)", bad,
                    'give them extra_args = ["--scheduling-policy", "priority"]')
    elif baseline == "colocated":
        bad = [b.name for b in backends if b.device == "gpu"
               and not _machine_hosts_both(b, backends)]
        if bad:
            _refuse(baseline, "these GPUs do not host both the LLM and the embedding model",
                    bad, 'give every GPU backend capabilities = ["chat", "completion", '
                    '"embedding"], or an LLM and an embedding backend the same `host`, '
                    'or use baseline "split"')
    elif baseline == "split":
        bad = [b.name for b in backends if _serves_llm(b) and "embedding" in b.capabilities]
        if bad:
            _refuse(baseline, "they serve both chat and embeddings", bad,
                    "give each GPU one model (embedding-only backends serve embeddings, "
                    'the rest chat), or use baseline "colocated"')


def _machine_hosts_both(b: BackendSpec, backends: list[BackendSpec]) -> bool:
    """The backend, or the machine it shares (`host`) with others, serves chat and
    embeddings: one engine with both, or an LLM and an embedding model side by side."""
    group = [x for x in backends if x.host == b.host] if b.host else [b]
    return any(_serves_llm(x) for x in group) and any("embedding" in x.capabilities
                                                      for x in group)


class LeastRequest(Router):
    """Fewest outstanding requests; ties to config order. The client-side balancer a
    team without a control plane runs (Envoy/nginx `least_request`): it sees only
    its own in-flight counts, not the engines' queues or the requests' sizes."""

    name = "least-request"

    def pick(self, cls, cands, group, tokens, deadline, now):
        best = cands[0]
        for b in cands:
            if b.outstanding < best.outstanding:
                best = b
        return best


class ImmediatePolicy(Policy):
    """Dispatch on arrival within the class's pool, no slot limit: round-robin, or
    least-request for the baselines that model a least-request balancer."""

    def __init__(self, cp, baseline: str) -> None:
        super().__init__(cp)
        check_baseline(baseline, [b.spec for b in cp.backend_list])
        self.name = baseline
        self.pools = pools_for(baseline, cp.backend_list)
        self.balancer = LeastRequest() if baseline in _LEAST_REQUEST else RoundRobin()
        self.waiting: dict[str, deque[Request]] = {c: deque() for c in SCHEDULED_CLASSES}

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
                    return [req], self.balancer.pick(cls, ups, "", tokens_of(req), req.deadline, now)
        return None

    def drain(self) -> list[Request]:
        out = [r for dq in self.waiting.values() for r in dq]
        for dq in self.waiting.values():
            dq.clear()
        return out
