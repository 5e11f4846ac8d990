"""The run config's faults (kill, pause) fired at their run-relative times."""

from __future__ import annotations

import threading
import time

from engine.faults import kill, pause, resume
from engine.launcher import LaunchedEngine

from ...config import RunConfig


class FaultScheduler:
    """Fires the config's faults at their run-relative times and records them as events.

    The run's clock is learnt from the load generator's first per-second
    sample (it arrives at t0 + 1 s), so faults before t = 1 s fire at ~1 s.
    """

    def __init__(self, cfg: RunConfig, engines: dict[str, LaunchedEngine]):
        self.faults = list(cfg.faults)
        self.engines = engines
        self.t0: float | None = None
        self.events: list[dict] = []  # appended by timer threads, stored by the run's thread
        self._timers: list[threading.Timer] = []

    def clock_from_sample(self, t_s: float) -> None:
        if self.t0 is not None or not self.faults:
            return
        self.t0 = time.monotonic() - (t_s + 1.0)
        for f in self.faults:
            self._at(f.at_s, self._fire, f.action, f.backend)
            if f.action == "pause":
                self._at(f.at_s + f.duration_s, self._fire, "resume", f.backend)

    def _at(self, t_s: float, fn, *args) -> None:
        timer = threading.Timer(max(0.0, self.t0 + t_s - time.monotonic()), fn, args)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _fire(self, action: str, backend: str) -> None:
        engine = self.engines[backend]
        t = time.monotonic() - self.t0
        try:
            ev = {"kill": kill, "pause": pause, "resume": resume}[action](engine)
            self.events.append({"t_s": t, "kind": "fault", "subject": ev.subject,
                                "message": ev.message, "data": {"action": action, **ev.data}})
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            self.events.append({"t_s": t, "kind": "warning", "subject": backend,
                                "message": f"fault {action} failed: {exc}"})

    def drain(self) -> list[dict]:
        out, self.events = self.events, []
        return out

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
