"""slo: least slack first, with admission control.

Rule: order by slack — the latest moment a request can still start and meet
every SLO it carries: its first-token deadline less its predicted prefill, and
its end-to-end deadline less its predicted prefill and decode (the smaller of
the two). Requests without an SLO come after all that carry one, in arrival
order. With per-request SLO tiers this is what earliest-deadline-first cannot
be with one SLO per class: a tight request goes ahead of a loose one that
arrived earlier.

Admission (on by default, `control_plane.admission`): an arrival whose SLO
the work ahead leaves no time for is rejected (`slo_infeasible`); a queued
request whose deadline became unreachable is shed (`slo_shed`) when it comes
up, so it takes no engine time (scheduler.admission).

Routing is the configured router's (default `least-work`: the backend with the
earliest predicted first token), never the busier of two equal engines.
"""

from __future__ import annotations

import heapq

from scheduler.policies.base import HeapPolicy
from vocab import SCHEDULED_CLASSES, Request

INF = float("inf")
NO_SLO = 1e12  # order key offset of requests without an SLO: after every deadline


class SLOPolicy(HeapPolicy):
    name = "slo"

    def __init__(self, cp) -> None:
        super().__init__(cp)
        self._nominal = nominal_backends(cp)

    def key(self, req: Request) -> float:
        return slack_key(req, self._nominal[req.cls])

    order_key = key  # a flat key is its own order key (admission asks on every arrival)

    def push(self, req: Request, now: float) -> None:
        heapq.heappush(self.heaps[req.cls], (slack_key(req, self._nominal[req.cls]),
                                             next(self._seq), req))


def slack_key(req: Request, b) -> float:
    """Latest start time that meets every SLO the request carries, with the service
    time predicted on backend `b`'s prior (a static key keeps the queue a heap)."""
    a = req.arrival
    if req.cls == "embedding":
        if req.slo_e2e_ms is None:
            return NO_SLO + a
        svc = 0.0 if b is None else b.emb_est.predict(req.text_tokens or req.n_texts)
        return a + req.slo_e2e_ms / 1000.0 - svc
    pre = 0.0 if b is None else b.model.beta1 * req.prompt_tokens
    key = INF
    if req.slo_ttft_ms is not None:
        key = a + req.slo_ttft_ms / 1000.0 - pre
    if req.slo_e2e_ms is not None:
        tpot = 0.0 if b is None else b.model.beta0
        key = min(key, a + req.slo_e2e_ms / 1000.0 - pre
                  - max(req.output_tokens - 1, 0) * tpot)
    return NO_SLO + a if key == INF else key


def nominal_backends(cp) -> dict:
    """Per class, the capable backend whose prior serves a request soonest: the
    service time in a request's slack is computed on it."""
    return {c: _fastest(cp.capable[c], c) for c in SCHEDULED_CLASSES}


def _fastest(backends, cls: str):
    if not backends:
        return None
    if cls == "embedding":
        return min(backends, key=lambda b: b.emb_est.predict(64))
    return min(backends, key=lambda b: b.model.beta0 + 512 * b.model.beta1)
