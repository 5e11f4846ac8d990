"""RequestRecord: the outcome of one request, from either clock.

Why plain dataclasses: loadgen imports nothing of ours; the orchestrator
hands `to_store_dict()` to the store's `request` table unchanged.
All stamps are seconds since the run's start; None where not reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STATUSES = ("completed", "failed", "rejected")


@dataclass(slots=True)
class RequestRecord:
    id: str
    cls: str
    client_id: str = ""
    priority: int = 2
    status: str = "completed"
    reason: str = ""
    backend: str = ""
    t_intended: float = 0.0
    t_sent: float | None = None
    t_received: float | None = None  # by the gateway / control plane
    t_dispatched: float | None = None
    t_first_token: float | None = None
    chunk_times: list[float] = field(default_factory=list)  # each streamed content chunk
    t_done: float | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    n_texts: int = 0
    slo_ttft_ms: float | None = None
    slo_e2e_ms: float | None = None
    overhead_us: float | None = None
    parent_id: str | None = None
    # Live mode: the gateway reports queue wait in a header (x-sage-queue-ms)
    # without its own received/dispatched stamps; used when those are None.
    queue_wait_ms: float | None = None
    slo_tpot_ms: float | None = None  # time per output token after the first (LLM classes)
    slo_tier: str = ""  # the workload's SLO tier ("" when its class has no tiers)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status: {self.status!r} is not one of {', '.join(STATUSES)}")

    @property
    def ttft_s(self) -> float | None:
        """First token − intended send (no coordinated omission)."""
        return None if self.t_first_token is None else self.t_first_token - self.t_intended

    @property
    def e2e_s(self) -> float | None:
        return None if self.t_done is None else self.t_done - self.t_intended

    @property
    def tpot_s(self) -> float | None:
        """(E2E − TTFT) / (output tokens − 1), vLLM's definition; None for a
        request that did not complete, has no first token or one output token."""
        if self.status != "completed" or self.t_done is None or self.t_first_token is None:
            return None
        if self.output_tokens <= 1:
            return None
        return (self.t_done - self.t_first_token) / (self.output_tokens - 1)

    def slo_met(self) -> bool:
        """Completed and within every SLO it carries (measured from intended send)."""
        if self.status != "completed" or self.t_done is None:
            return False
        e2e, ttft = self.e2e_s, self.ttft_s
        if self.slo_e2e_ms is not None and e2e is not None and e2e * 1000 > self.slo_e2e_ms:
            return False
        if self.slo_ttft_ms is not None:
            if ttft is None or ttft * 1000 > self.slo_ttft_ms:
                return False
        return self._tpot_met()

    def _tpot_met(self) -> bool:
        """A TPOT bound holds trivially with one output token; without a first
        token stamp it cannot be shown to hold, so it is a miss."""
        if self.slo_tpot_ms is None or self.output_tokens <= 1:
            return True
        tpot = self.tpot_s
        return tpot is not None and tpot * 1000 <= self.slo_tpot_ms

    def to_store_dict(self) -> dict:
        """Columns of the store's `request` table (no id/run_id)."""
        return {
            "request_id": self.id,
            "request_class": self.cls,
            "client_id": self.client_id,
            "priority": self.priority,
            "status": self.status,
            "reason": self.reason,
            "backend": self.backend,
            "t_intended": self.t_intended,
            "t_sent": self.t_sent,
            "t_received": self.t_received,
            "t_dispatched": self.t_dispatched,
            "t_first_token": self.t_first_token,
            "t_done": self.t_done,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "n_texts": self.n_texts,
            "slo_ttft_ms": self.slo_ttft_ms,
            "slo_e2e_ms": self.slo_e2e_ms,
            "slo_met": self.slo_met(),
            "overhead_us": self.overhead_us,
            "parent_id": self.parent_id,
            "queue_wait_ms": self.queue_wait_ms,
            "slo_tpot_ms": self.slo_tpot_ms,
            "slo_tier": self.slo_tier,
        }

    @classmethod
    def from_scheduled(cls, req, **stamps) -> RequestRecord:
        """A record for a ScheduledRequest (or anything with its fields)."""
        return cls(
            id=req.id, cls=req.cls, client_id=req.client_id, priority=req.priority,
            t_intended=req.t, prompt_tokens=req.prompt_tokens,
            output_tokens=req.output_tokens, n_texts=req.n_texts,
            slo_ttft_ms=req.slo_ttft_ms, slo_e2e_ms=req.slo_e2e_ms,
            slo_tpot_ms=getattr(req, "slo_tpot_ms", None), slo_tier=getattr(req, "slo_tier", ""),
            parent_id=req.parent_id, **stamps,
        )
