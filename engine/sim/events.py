"""What a simulated engine reports back to its runtime."""

from __future__ import annotations

from typing import Any, NamedTuple


class SimEvent(NamedTuple):
    """One engine event at virtual time `t` (seconds).

    kind:
      first_token — req_id produced its first output token (tokens = 1)
      tokens      — one aggregated event per step (only with token_events=True):
                    every request in req_ids produced one more token (after its
                    first) at t; req_id is None
      done        — req_id finished; tokens = output tokens (LLM) or texts (embedding)
      preempted   — req_id was preempted (recompute); tokens = computed tokens discarded
    """

    kind: str
    req_id: Any
    tokens: int
    t: float
    req_ids: tuple = ()
