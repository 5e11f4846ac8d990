"""SharedHost: simulated engines that run on one machine and slow each other down.

Why: pinned to their own cores, two engines on one machine still share what
pinning does not split: the cores the HTTP path (gateway, load generator, the
engines' API servers) lands on, memory bandwidth and the last-level cache.
Measured on this project's 2-core machine (docs/fidelity.md), a vLLM decode
step costs more per sequence while MiniLM is encoding. An LLM preset carries
that extra cost (`LLMCost.cohost_beta2`, calibrated from the profile's mixed
phases); the host tells the LLM engine whether any other engine on it is busy
when it starts a step. The converse: an embedding preset may carry
`EmbedCost.cohost_per_seq`, and the host tells the embedding engine how many
sequences the LLM engines there are decoding when it starts a pass. (Whether
vLLM was busy at all, fitted instead, over-predicted the embedding p99; the
number of streaming sequences is what the shared cores' load follows.)
Backends share a host when their specs
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

    def others_decoding(self, me: Any) -> int:
        """The sequences decoding now on the LLM engines other than `me`."""
        return sum(e.decoding() for e in self._members.values()
                   if e is not me and hasattr(e, "decoding"))
