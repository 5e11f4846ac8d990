"""The per-second state of the engines and the control plane's queues, for the
run's samples, and engine down/up transitions as events."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable

import psutil

from engine.launcher import LaunchedEngine
from engine.metrics_scrape import parse_engine_stats


class StateSampler:
    """The engines' state (and the control plane's queue depth) once a second.

    With a gateway, its view is read (its runtime already scrapes every engine's
    /metrics and probes their health): each engine is scraped once per interval,
    not twice. Without one (a baseline's client-side pools), the sampler scrapes
    each engine itself. Engine down/up transitions become events. Runs on its
    own thread so a slow engine never delays the load generator.
    """

    def __init__(self, engines: list[LaunchedEngine],
                 gateway_view: Callable[[], dict | None] | None = None):
        self.engines, self.gateway_view = engines, gateway_view
        self.events: list[dict] = []
        self._latest: dict = {"backends": {}, "queue_depth": {}}
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._up = {e.name: True for e in engines}
        self._thread = threading.Thread(target=self._loop, name="state-sampler", daemon=True)

    def start(self) -> None:
        self._t0 = time.monotonic()
        psutil.cpu_percent(None)
        self._thread.start()

    def latest(self) -> dict:
        return self._latest

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            view = self.gateway_view() if self.gateway_view is not None else None
            if view is None:
                view = {"backends": {e.name: _scrape(e) for e in self.engines},
                        "queue_depth": {}}
            backends = view["backends"]
            for e in self.engines:
                self._note(e, backends.setdefault(e.name, {"up": False})["up"])
            backends["_host"] = {"cpu_percent": psutil.cpu_percent(None)}
            self._latest = view

    def _note(self, e: LaunchedEngine, up: bool) -> None:
        if up == self._up[e.name]:
            return
        self._up[e.name] = up
        how = "the gateway's health probe" if self.gateway_view else "the /metrics scrape"
        self.events.append({
            "t_s": time.monotonic() - self._t0,
            "kind": "engine_up" if up else "engine_down",
            "subject": e.name, "message": f"seen by {how}",
            "data": {} if up else down_info(e)})


def _scrape(e: LaunchedEngine) -> dict:
    """One engine's /metrics: running, waiting, KV use; down when it does not answer."""
    try:
        with urllib.request.urlopen(f"{e.url}/metrics", timeout=0.5) as resp:
            stats = parse_engine_stats(resp.read().decode(), f"{e.name}/metrics")
    except Exception:  # noqa: BLE001 - a dead or paused engine is a state, not an error
        return {"up": False}
    return {"up": True, "running": stats.running, "waiting": stats.waiting,
            "kv_use": stats.kv_use}


def down_info(engine: LaunchedEngine) -> dict:
    """Where a down engine ran, its exit code (None: still running, e.g. paused) and its
    log's last lines; never raises, since the sampler must go on."""
    try:
        return engine.down_info()
    except Exception as exc:  # noqa: BLE001 - recorded instead of the details
        return {"error": f"{type(exc).__name__}: {exc}"}
