"""SharedHost: simulated engines that run on one machine and slow each other down.

Why: pinned to their own cores, two engines on one machine still share what
pinning does not split: the cores the HTTP path (gateway, load generator, the
engines' API servers) lands on, memory bandwidth and the last-level cache.
Measured on this project's 2-core machine (docs/fidelity.md), a vLLM decode
step costs more per sequence while MiniLM is encoding. An LLM preset carries
that extra cost (`LLMCost.cohost_beta2`, calibrated from the profile's mixed
phases); the host tells the LLM engine whether any other engine on it is busy
when it starts a step. (The converse, MiniLM slower while vLLM steps, fitted
too but over-predicted the embedding p99 on every stored suite but one, so the
embedding model has no such term.) Backends share a host when their specs
name the same `host`; without one an engine is alone, as every engine of a
cluster preset is.
"""

from __future__ import annotations

from typing import Any


class SharedHost:
    """The engines of one machine, by backend name (a restarted engine replaces its
    predecessor, whose work is gone with it)."""

    __slots__ = ("_members",)

    def __init__(self) -> None:
        self._members: dict[str, Any] = {}

    def join(self, name: str, engine: Any) -> None:
        self._members[name] = engine

    def others_busy(self, me: Any, t: float) -> bool:
        """Whether an engine other than `me` is working at time `t`."""
        return any(e is not me and e.busy_at(t) for e in self._members.values())
