"""slo: earliest deadline first, least-slack routing, optional early rejection.

Rule: order by deadline = arrival + SLO (TTFT for chat/completion, end-to-end
for embeddings; requests without an SLO come after all that carry one, in
arrival order). Route to the free backend whose estimated completion leaves
the least non-negative slack, keeping faster backends for tighter requests;
if none meets the deadline, take the fastest — or, with
`[control_plane.slo] early_reject = true`, reject with `deadline_unmeetable`.
Latency estimates are per-backend EWMAs of observed dispatch→first token
(LLM) and a fitted a + b·tokens (embeddings).
"""

from __future__ import annotations

import heapq

from scheduler.actions import Reject
from scheduler.policies.base import HeapPolicy, tokens_of
from scheduler.request import Request

INF = float("inf")


class SLOPolicy(HeapPolicy):
    name = "slo"

    def __init__(self, cp) -> None:
        super().__init__(cp)
        self.early_reject = cp.config.slo.early_reject
        # A lone free backend is the answer whatever the estimates say (fit or fastest),
        # unless the policy may reject it.
        self.lone_is_choice = self.lone_is_choice and not self.early_reject

    def key(self, req: Request) -> tuple[float, float]:
        return (req.deadline, req.arrival)

    def push(self, req: Request, now: float) -> None:
        # The key flattened into the entry: (deadline, arrival, seq, req) orders exactly
        # as ((deadline, arrival), seq, req), and compares faster.
        heapq.heappush(self.heaps[req.cls], (req.deadline, req.arrival, next(self._seq), req))

    def route(self, req, cands, now):
        if len(cands) == 1 and self.lone_is_choice:
            return cands[0]  # the direct path from the core asks too
        deadline = req.deadline
        if deadline == INF:
            return super().route(req, cands, now)
        group = self.cp.group_of(req.cls)
        tokens = tokens_of(req)
        fit, fit_slack = None, INF
        fast, fast_slack = None, -INF
        for b in cands:
            slack = deadline - now - b.estimate(group, tokens)
            if 0 <= slack < fit_slack:
                fit, fit_slack = b, slack
            if slack > fast_slack:
                fast, fast_slack = b, slack
        if fit is not None:
            return fit
        if self.early_reject:
            return Reject(req, "deadline_unmeetable")
        return fast
