"""Scheduling policies, chosen by `control_plane.policy` (docs/policies.md)."""

from __future__ import annotations

from scheduler.config import POLICIES
from scheduler.policies.base import Policy
from scheduler.policies.fifo import FifoPolicy
from scheduler.policies.hybrid import HybridPolicy
from scheduler.policies.pipeline import (
    PipelineFCFSPolicy,
    PipelineHybridPolicy,
    PipelineLASPolicy,
    PipelineSlackPolicy,
    StaggeredPolicy,
)
from scheduler.policies.priority import PriorityPolicy
from scheduler.policies.slo import SLOPolicy

_BY_NAME = {
    "fifo": FifoPolicy,
    "priority": PriorityPolicy,
    "slo": SLOPolicy,
    "hybrid": HybridPolicy,
    "pipeline-slack": PipelineSlackPolicy,
    "pipeline-las": PipelineLASPolicy,
    "pipeline-fcfs": PipelineFCFSPolicy,
    "pipeline-hybrid": PipelineHybridPolicy,
    "staggered": StaggeredPolicy,
}


def make_policy(name: str, cp) -> Policy:
    try:
        return _BY_NAME[name](cp)
    except KeyError:
        raise ValueError(f"policy: {name!r} is not one of {', '.join(POLICIES)}") from None


__all__ = ["Policy", "make_policy", "FifoPolicy", "PriorityPolicy", "SLOPolicy", "HybridPolicy",
           "PipelineSlackPolicy", "PipelineLASPolicy", "PipelineFCFSPolicy",
           "PipelineHybridPolicy", "StaggeredPolicy"]
