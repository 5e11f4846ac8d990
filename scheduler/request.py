"""The request the control plane schedules.

Why its own type: the scheduler may not import loadgen, so the orchestrator
converts `loadgen.schedule.ScheduledRequest` into this (same fields plus
`arrival`, when the core first saw it, and an opaque `payload` the live gateway
uses for the HTTP body). Plain slotted dataclass: the core touches it on every
event, so it must be cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REQUEST_CLASSES = ("chat", "completion", "embedding")
LLM_CLASSES = ("chat", "completion")
PRIORITIES = range(0, 5)


@dataclass(slots=True, eq=False)
class Request:
    """One request: identity, class, sizes, SLOs and when it arrived (seconds)."""

    id: str
    cls: str
    arrival: float
    t: float | None = None  # intended send time from the schedule (None: = arrival)
    client_id: str = ""
    priority: int = 2
    prompt_tokens: int = 0
    output_tokens: int = 0
    n_texts: int = 0
    text_tokens: int = 0
    slo_ttft_ms: float | None = None
    slo_e2e_ms: float | None = None
    slo_tpot_ms: float | None = None  # time per output token after the first (LLM)
    slo_tier: str = ""  # the workload's SLO tier name ("" when the class has no tiers)
    model: str = ""
    parent_id: str | None = None
    payload: Any = None

    def __post_init__(self) -> None:
        if self.cls not in REQUEST_CLASSES:
            raise ValueError(
                f"cls: {self.cls!r} is not one of {', '.join(REQUEST_CLASSES)} "
                f"(pipeline requests are sent as their chat/embedding stages)"
            )
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority: must be 0..4, got {self.priority}")
        for name in ("prompt_tokens", "output_tokens", "n_texts", "text_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.cls == "embedding" and self.n_texts < 1:
            raise ValueError(f"n_texts: an embedding request needs >= 1 text, got {self.n_texts}")

    @property
    def slo_s(self) -> float | None:
        """The SLO that dispatch order controls: TTFT for LLM classes, else end-to-end."""
        ms = self.slo_e2e_ms if self.cls == "embedding" else (self.slo_ttft_ms or self.slo_e2e_ms)
        return None if ms is None else ms / 1000.0

    @property
    def deadline(self) -> float:
        """arrival + SLO; infinity when the request carries none."""
        s = self.slo_s
        return float("inf") if s is None else self.arrival + s
