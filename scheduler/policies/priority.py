"""priority: 0 (critical) before 4 (background), with aging.

Rule: order by `priority·aging_s + arrival`. Equivalently, each `aging_s`
seconds of waiting lifts a request one priority level, so a p4 request waits
at most 4·aging_s behind fresh p0 arrivals: nothing starves. The key does not
depend on `now`, which keeps it a heap. Parameter: `[control_plane.priority]
aging_s` (default 5 s).
"""

from __future__ import annotations

from heapq import heappush

from scheduler.policies.base import HeapPolicy
from vocab import Request


class PriorityPolicy(HeapPolicy):
    name = "priority"

    def __init__(self, cp) -> None:
        super().__init__(cp)
        self.aging_s = cp.config.priority.aging_s

    def key(self, req: Request) -> float:
        return req.priority * self.aging_s + req.arrival

    def push(self, req: Request, now: float) -> None:
        # key() inlined: one call fewer on every queued arrival, the same entry.
        heappush(self.heaps[req.cls],
                 (req.priority * self.aging_s + req.arrival, next(self._seq), req))
