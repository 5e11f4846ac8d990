"""`[control_plane]`: which baseline, policy and router, and their parameters.

Validated before a run starts: unknown names list the allowed values, and
parameters that cannot work (batch size 0, shares that do not sum to 1) name
the field. Every parameter here is read by the code it configures (an upstream
defect was parameters declared and never used); docs/policies.md says why each
default is what it is.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

BASELINES = ("sage", "vllm-only", "separate")
POLICIES = ("fifo", "priority", "slo", "hybrid")
ROUTERS = ("round-robin", "least-outstanding", "p2c", "cost-aware")
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
    aging_s: float = Field(default=5.0, gt=0)


class SLOParams(_Strict):
    """`[control_plane.slo]`."""

    # Reject at dispatch time a request whose deadline the best free backend
    # cannot meet by its latency estimate (reason `deadline_unmeetable`).
    early_reject: bool = False


class HybridParams(_Strict):
    """`[control_plane.hybrid]`."""

    batch_max_texts: int = Field(default=32, ge=1)
    batch_max_wait_ms: float = Field(default=10.0, ge=0)
    # Guaranteed share of each mixed backend's slots when both classes wait.
    shares: dict[str, float] = Field(default_factory=lambda: {"llm": 0.7, "embedding": 0.3})
    aging_s: float = Field(default=5.0, gt=0)
    # Deadline used to order requests that carry no SLO.
    default_slo_ms: float = Field(default=2000.0, gt=0)

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


class QueueCapacity(_Strict):
    """`[control_plane.queue_capacity]`: per-class bound of the central queue."""

    chat: int = Field(default=10_000, ge=1)
    completion: int = Field(default=10_000, ge=1)
    embedding: int = Field(default=10_000, ge=1)


class ControlPlaneConfig(_Strict):
    """The whole `[control_plane]` section."""

    baseline: str = "sage"
    policy: str = "hybrid"
    router: str = "least-outstanding"
    seed: int = Field(default=0, ge=0)  # p2c's RNG
    # Weight of a new observation in the per-backend latency estimates (EWMA).
    estimate_alpha: float = Field(default=0.2, gt=0, le=1)
    queue_capacity: QueueCapacity = Field(default_factory=QueueCapacity)
    priority: PriorityParams = Field(default_factory=PriorityParams)
    slo: SLOParams = Field(default_factory=SLOParams)
    hybrid: HybridParams = Field(default_factory=HybridParams)

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, v: str) -> str:
        return _one_of(v, BASELINES, "baseline")

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        return _one_of(v, POLICIES, "policy")

    @field_validator("router")
    @classmethod
    def _router(cls, v: str) -> str:
        return _one_of(v, ROUTERS, "router")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ControlPlaneConfig:
        return cls.model_validate(data)
