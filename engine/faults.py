"""Fault injection for robustness experiments: kill or pause a launched engine.

Why: the paper's robustness runs need an engine to die (SIGKILL, no goodbye)
or to hang (SIGSTOP for a while, then SIGCONT) at a chosen moment. Signals go
to the engine's whole process group so vLLM's worker processes share its fate.
Each helper returns a `FaultEvent` the orchestrator records with
`RunWriter.add_event(t_s, kind, subject, message, data)`.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field
from typing import Any

from engine.launcher import LaunchedEngine

FAULT_KINDS = ("kill", "pause")


class FaultError(RuntimeError):
    """The fault cannot be injected (engine given by URL, or already gone)."""


@dataclass(slots=True)
class FaultEvent:
    """What to store: kind is fault_kill | fault_pause | fault_resume; subject is the backend."""

    kind: str
    subject: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


def _pgid(engine: LaunchedEngine) -> int:
    if engine.proc is None:
        raise FaultError(f"backend {engine.name!r}: given by URL ({engine.url}); sagetui did not "
                         "launch it and cannot signal it")
    if engine.proc.poll() is not None:
        raise FaultError(f"backend {engine.name!r}: already exited with code "
                         f"{engine.proc.returncode}")
    return engine.proc.pid


def _signal(engine: LaunchedEngine, sig: int) -> int:
    """Signal the engine's process group, here or (a Ray engine) through its actor on
    its node; returns the group id."""
    remote = getattr(engine, "signal_remote", None)
    if remote is None:
        pgid = _pgid(engine)
        os.killpg(pgid, sig)
        return pgid
    try:
        return remote(sig)
    except Exception as exc:  # noqa: BLE001 - the actor's reason, as for a local engine
        raise FaultError(f"backend {engine.name!r}: {getattr(exc, 'cause', None) or exc}") from None


def kill(engine: LaunchedEngine) -> FaultEvent:
    """SIGKILL the engine's process group now."""
    pgid = _signal(engine, signal.SIGKILL)
    return FaultEvent("fault_kill", engine.name, f"SIGKILL to process group {pgid}",
                      {"pid": pgid, "signal": "SIGKILL"})


def pause(engine: LaunchedEngine) -> FaultEvent:
    """SIGSTOP the engine's process group (it stops answering, connections stay open)."""
    pgid = _signal(engine, signal.SIGSTOP)
    return FaultEvent("fault_pause", engine.name, f"SIGSTOP to process group {pgid}",
                      {"pid": pgid, "signal": "SIGSTOP"})


def resume(engine: LaunchedEngine) -> FaultEvent:
    """SIGCONT a paused engine's process group."""
    pgid = _signal(engine, signal.SIGCONT)
    return FaultEvent("fault_resume", engine.name, f"SIGCONT to process group {pgid}",
                      {"pid": pgid, "signal": "SIGCONT"})


async def inject_at(engine: LaunchedEngine, kind: str, at: float, *, clock, duration_s: float = 0.0,
                    on_event=None) -> list[FaultEvent]:
    """Wait until `clock()` reaches `at` (run-relative seconds), then kill or pause.

    `on_event(event, t)` is called as each event happens (t = clock()), so the
    orchestrator can store it with the right time.
    """
    if kind not in FAULT_KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(FAULT_KINDS)}")
    if kind == "pause" and duration_s <= 0:
        raise ValueError(f"duration_s: a pause needs a duration > 0, got {duration_s}")
    delay = at - clock()
    if delay > 0:
        await asyncio.sleep(delay)
    events: list[FaultEvent] = []

    def note(ev: FaultEvent) -> None:
        events.append(ev)
        if on_event is not None:
            on_event(ev, clock())

    if kind == "kill":
        note(kill(engine))
        return events
    note(pause(engine))
    try:
        await asyncio.sleep(duration_s)
    finally:
        note(resume(engine))
    return events
