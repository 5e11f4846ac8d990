"""Request: one request from the schedule that plans it to the record that stores it.

Why one type: a request is planned by the workload (intended time, class,
sizes, priority, SLOs), scheduled by the control plane (when it arrived
there), served by an engine and measured (each stamp, its outcome). With one
record for all of it, a new field is added in one place, and no layer copies
fields into another's type. Plain slotted dataclass: the control plane touches
it on every event, so reading a field must be cheap.

Stamps are seconds (the run's clock: since its start in a run, monotonic in
the live gateway); None where not reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What a workload may plan; "pipeline" is a whole job, sent as its stages.
REQUEST_CLASSES = ("chat", "completion", "embedding", "pipeline")
# What the control plane schedules: a pipeline's stages are of these classes.
SCHEDULED_CLASSES = ("chat", "completion", "embedding")
LLM_CLASSES = ("chat", "completion")
PRIORITIES = range(0, 5)  # 0 critical .. 4 background (vLLM's order: lower first)
STATUSES = ("completed", "failed", "rejected")
_SIZES = ("prompt_tokens", "output_tokens", "n_texts", "text_tokens")
# The planned part of a request: what `derive` carries over to a new one.
_PLAN = ("id", "cls", "t_intended", "client_id", "priority", *_SIZES, "slo_ttft_ms",
         "slo_e2e_ms", "slo_tpot_ms", "slo_tier", "model", "parent_id", "prefix_id",
         "prefix_tokens", "prefix_extend", "pipeline", "stage")


@dataclass(slots=True, eq=False)
class Request:
    """A request: what is planned (first block), the control plane's view (second)
    and what happened to it (the rest)."""

    id: str
    cls: str
    t_intended: float = None  # type: ignore[assignment]  # when the schedule meant to send it
    client_id: str = ""
    priority: int = 2
    prompt_tokens: int = 0  # input tokens (an embedding request: all its texts)
    output_tokens: int = 0
    n_texts: int = 0  # embedding: texts in the request
    text_tokens: int = 0  # embedding: tokens of all its texts together
    slo_ttft_ms: float | None = None
    slo_e2e_ms: float | None = None
    slo_tpot_ms: float | None = None  # time per output token after the first (LLM)
    slo_tier: str = ""  # the workload's SLO tier ("" when its class has no tiers)
    model: str = ""
    parent_id: str | None = None  # the pipeline job a stage belongs to
    # The prompt's first prefix_tokens are the content named prefix_id, shared with every
    # request naming it (prefix caching); prefix_extend: a conversation's turn, whose whole
    # sequence the next turn's history repeats. "" / 0: no shared prefix.
    prefix_id: str = ""
    prefix_tokens: int = 0
    prefix_extend: bool = False
    pipeline: str = ""  # the pipeline kind (its declaration's name) of a job and its stages
    stage: str = ""  # a stage's name in its job ("" for the job itself and plain requests)
    # -- what a pipeline-aware policy reads (docs/pipelines.md), set when a stage is released
    pipeline_start: float | None = None  # when the job started, this clock
    pipeline_deadline: float | None = None  # the job's end-to-end deadline, this clock
    # the work left after this call along the job's longest path: its LLM calls'
    # prompt and output tokens and its local stages' seconds (a policy prices them)
    rest_prompt_tokens: int = 0
    rest_output_tokens: int = 0
    rest_local_s: float = 0.0
    attained_s: float = 0.0  # service the job's finished calls received
    # -- the control plane's view
    arrival: float = None  # type: ignore[assignment]  # when the control plane first saw it
    payload: Any = None  # what a live runtime forwards (the HTTP body); never stored
    # -- what happened
    status: str = ""  # "" while pending, then one of STATUSES
    reason: str = ""  # why it failed or was rejected
    backend: str = ""
    t_sent: float | None = None
    t_received: float | None = None  # by the gateway / control plane
    t_dispatched: float | None = None
    t_first_token: float | None = None
    chunk_times: list[float] = field(default_factory=list)  # each streamed content chunk
    t_done: float | None = None
    overhead_us: float | None = None  # control-plane decision time spent on it
    # Live: the gateway reports queue wait in a header (x-sage-queue-ms) without
    # its own received/dispatched stamps; used when those are None.
    queue_wait_ms: float | None = None

    def __post_init__(self) -> None:
        if self.cls not in REQUEST_CLASSES:
            raise ValueError(f"cls: {self.cls!r} is not one of {', '.join(REQUEST_CLASSES)}")
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority: must be 0..4, got {self.priority}")
        for name in _SIZES:
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.cls == "embedding" and self.n_texts < 1:
            raise ValueError(f"n_texts: an embedding request needs >= 1 text, got {self.n_texts}")
        if self.status and self.status not in STATUSES:
            raise ValueError(f"status: {self.status!r} is not one of {', '.join(STATUSES)}")
        # Each of the two times defaults to the other: a schedule gives the intended
        # time, a gateway the arrival; they differ only once both are known.
        if self.t_intended is None:
            self.t_intended = 0.0 if self.arrival is None else self.arrival
        if self.arrival is None:
            self.arrival = self.t_intended

    def plan(self) -> tuple:
        """The planned fields, for comparing schedules (equality of the record itself
        is identity: the control plane keys requests by object)."""
        return tuple(getattr(self, name) for name in _PLAN)

    def derive(self, **changes: Any) -> Request:
        """A new request planned from this one (a pipeline's stage, say): the planned
        fields copied, `changes` applied, nothing of this one's outcome carried over."""
        plan = {name: getattr(self, name) for name in _PLAN}
        plan.update(changes)
        return Request(**plan)

    # -- the control plane's reading -------------------------------------------------

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

    # -- the metric definitions' reading (docs/loadgen.md) --------------------------

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
        e2e, ttft = self.t_done - self.t_intended, self.ttft_s
        if self.slo_e2e_ms is not None and e2e * 1000 > self.slo_e2e_ms:
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

    def tokens_per_text(self) -> int:
        """Tokens of each of an embedding request's texts (a client writes them)."""
        return self.text_tokens // max(self.n_texts, 1)
