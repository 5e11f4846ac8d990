"""fifo: arrival order across classes.

Rule: the earliest-arrived request whose class has a free capable backend is
dispatched next. No parameters. The reference point every other policy is
compared with.
"""

from __future__ import annotations

from heapq import heappush

from scheduler.policies.base import HeapPolicy
from vocab import Request


class FifoPolicy(HeapPolicy):
    name = "fifo"

    def key(self, req: Request) -> float:
        return req.arrival

    def push(self, req: Request, now: float) -> None:
        # key() inlined: one call fewer on every queued arrival, the same entry.
        heappush(self.heaps[req.cls], (req.arrival, next(self._seq), req))
