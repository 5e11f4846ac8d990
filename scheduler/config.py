"""`[control_plane]`: which baseline, policy and router, and their parameters.

Validated before a run starts: unknown names list the allowed values, and
parameters that cannot work (batch size 0, shares that do not sum to 1) name
the field. Every parameter here is read by the code it configures (an upstream
defect was parameters declared and never used); docs/policies.md says why each
default is what it is.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

BASELINES = ("sage", "vllm-only", "separate", "colocated", "split", "vllm-priority")
POLICIES = ("fifo", "priority", "slo", "hybrid", "pipeline-slack", "pipeline-las",
            "pipeline-fcfs", "pipeline-hybrid", "staggered")
ROUTERS = ("least-work", "round-robin", "least-outstanding", "p2c", "cost-aware")
ADMISSION = ("auto", "on", "off")
# Policies whose admission control is on under `admission = "auto"`: they order by
# deadline, so they can tell which requests the work ahead leaves time for.
SLO_AWARE = ("slo", "hybrid", "pipeline-slack", "pipeline-fcfs", "pipeline-hybrid")
SHARE_CLASSES = ("llm", "embedding")


def _one_of(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise ValueError(f"{field}: {value!r} is not one of {', '.join(allowed)}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PriorityParams(_Strict):
    """`[control_plane.priority]`."""

    # Seconds of waiting that lift a request by one priority level, so a p4
    # request beats fresh p0 arrivals after 4 * aging_s: nothing starves.
    aging_s: float = Field(default=15.0, gt=0)


class HybridParams(_Strict):
    """`[control_plane.hybrid]`."""

    batch_max_texts: int = Field(default=32, ge=1)
    # 0: no batch window — embeddings batch only while they queue for a busy backend.
    batch_max_wait_ms: float = Field(default=0.0, ge=0)
    # A batch goes to the cheapest backend whose predicted completion is within this
    # fraction of the earliest one's (0.25: up to 25 % slower to save cost).
    cost_tolerance: float = Field(default=0.25, ge=0)
    # "fastest": earliest completion (within cost_tolerance); "cheapest-in-slo": the
    # cheapest backend whose predicted completion meets the batch's deadline.
    embedding_placement: Literal["fastest", "cheapest-in-slo"] = "fastest"
    # Guaranteed share of each mixed backend's slots when both classes wait.
    shares: dict[str, float] = Field(default_factory=lambda: {"llm": 0.7, "embedding": 0.3})
    # Seconds of slack worth one priority level in the LLM order.
    aging_s: float = Field(default=1.0, gt=0)

    @field_validator("shares")
    @classmethod
    def _shares(cls, v: dict[str, float]) -> dict[str, float]:
        if set(v) != set(SHARE_CLASSES):
            raise ValueError(
                f"shares: keys must be exactly {', '.join(SHARE_CLASSES)}, got {sorted(v)}"
            )
        for k, x in v.items():
            if not 0 < x <= 1:
                raise ValueError(f"shares.{k}: must be in (0, 1], got {x}")
        total = sum(v.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"shares: must sum to 1, got {total:g}")
        return v


class PipelineParams(_Strict):
    """`[control_plane.pipeline]`: the pipeline-aware policies (docs/pipelines.md)."""

    # pipeline-las: seconds of later arrival one second of attained service is worth
    # (static keys cannot age; a finite weight bounds how long a long job is overtaken).
    las_weight: float = Field(default=10.0, gt=0)
    # staggered: ms between two jobs' admissions; 0 = 0.9 x the mean gap between the
    # jobs seen so far (a pace just above the offered one, smoothing bursts).
    stagger_ms: float = Field(default=0.0, ge=0)


class QueueCapacity(_Strict):
    """`[control_plane.queue_capacity]`: per-class bound of the central queue."""

    chat: int = Field(default=10_000, ge=1)
    completion: int = Field(default=10_000, ge=1)
    embedding: int = Field(default=10_000, ge=1)


class ControlPlaneConfig(_Strict):
    """The whole `[control_plane]` section."""

    baseline: str = "sage"
    policy: str = "hybrid"
    router: str = "least-work"
    # Simulation only: the live gateway's CPU per request, modelled as one FIFO server
    # (one gateway process on one core) in front of the core; its time counts as
    # control-plane overhead. 0: the core alone (the gateway costs nothing). A live run
    # ignores it: its gateway costs what it costs.
    gateway_us_per_request: float = Field(default=0.0, ge=0)
    # SLO admission control (scheduler.admission): "auto" = on for slo and hybrid,
    # off for fifo and priority; "on" / "off" force it for every policy.
    admission: str = "auto"
    seed: int = Field(default=0, ge=0)  # p2c's RNG
    # Weight of a new observation in the per-backend latency estimates (EWMA).
    estimate_alpha: float = Field(default=0.2, gt=0, le=1)
    queue_capacity: QueueCapacity = Field(default_factory=QueueCapacity)
    priority: PriorityParams = Field(default_factory=PriorityParams)
    hybrid: HybridParams = Field(default_factory=HybridParams)
    pipeline: PipelineParams = Field(default_factory=PipelineParams)

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, v: str) -> str:
        return _one_of(v, BASELINES, "baseline")

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        return _one_of(v, POLICIES, "policy")

    @field_validator("admission")
    @classmethod
    def _admission(cls, v: str) -> str:
        return _one_of(v, ADMISSION, "admission")

    @field_validator("router")
    @classmethod
    def _router(cls, v: str) -> str:
        return _one_of(v, ROUTERS, "router")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ControlPlaneConfig:
        return cls.model_validate(data)


def admission_on(config: ControlPlaneConfig) -> bool:
    """Whether the control plane rejects and sheds requests it cannot serve on time."""
    if config.baseline != "sage" or config.admission == "off":
        return False
    return config.admission == "on" or config.policy in SLO_AWARE
