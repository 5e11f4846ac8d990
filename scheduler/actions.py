"""What the sans-I/O core asks its runtime to do.

The core never performs I/O; each event handler returns a list of these and
the runtime (virtual-time loop or live gateway) carries them out. Completion is
not an action: the runtime learns it from the engine and tells the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from vocab import Request


@dataclass(slots=True)
class Dispatch:
    """Send `requests` (one LLM request, or an embedding batch) to `backend`.

    `dispatch_id` is what the runtime passes back in `on_completion`.
    """

    dispatch_id: int
    backend: str
    requests: tuple[Request, ...]


@final  # no subclasses: the hot paths test `type(x) is Reject`, and mypy narrows on that
@dataclass(slots=True)
class Reject:
    """Refused before dispatch: `queue_full`, `no_capable_backend`, `slo_infeasible`, `slo_shed`."""

    request: Request
    reason: str


@dataclass(slots=True)
class Fail:
    """Accepted but could not be served: `backend_down`, an engine error, `run_ended`."""

    request: Request
    reason: str


@dataclass(slots=True)
class SetTimer:
    """Call `on_timer(now)` at (or just after) virtual/wall time `t`."""

    t: float


Action = Dispatch | Reject | Fail | SetTimer
