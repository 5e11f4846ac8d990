"""The control plane in this process (the gateway on its own event-loop thread),
or, for a baseline without one, the engines the load generator balances over."""

from __future__ import annotations

import asyncio
import threading

from engine.launcher import LaunchedEngine
from engine.spec import BackendSpec
from loadgen.client import ClientConfig
from scheduler.backends import BackendState
from scheduler.baselines import pools_for
from scheduler.gateway.config import GatewayConfig, GatewayOptions

from ...config import RunConfig, corpus_passages


class GatewayThread:
    """The live control plane in this process, on a dedicated asyncio loop."""

    def __init__(self, config: GatewayConfig, options: GatewayOptions | None = None):
        self.config, self.options = config, options or GatewayOptions()
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="sage-gateway", daemon=True)

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError("gateway did not start within 30 s")
        if self._error is not None:
            raise RuntimeError(f"gateway failed to start: {self._error}") from self._error

    def _main(self) -> None:
        from scheduler.gateway.app import start_gateway

        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._runner, self.url = loop.run_until_complete(
                start_gateway(self.config, self.options, "127.0.0.1", 0))
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def decision_summary(self) -> dict:
        """The core's decision-time figures (the control-plane overhead)."""
        try:
            from scheduler.gateway.app import RUNTIME

            rt = self._runner.app[RUNTIME]  # type: ignore[union-attr]
            return {"decision_us": rt.cp.decision_stats()}
        except (KeyError, AttributeError, TypeError):
            return {}

    def view(self, timeout_s: float = 0.5) -> dict | None:
        """What the gateway knows now, read on its own loop: each backend up or not
        (its health probe) with its engine's latest /metrics figures (its scrape), and
        the control plane's queue depth per class. None when it cannot answer."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return None
        try:
            return asyncio.run_coroutine_threadsafe(self._view(), loop).result(timeout_s)
        except Exception:  # noqa: BLE001 - a busy or stopping gateway gives no sample
            return None

    async def _view(self) -> dict:
        from scheduler.gateway.app import RUNTIME

        rt = self._runner.app[RUNTIME]  # type: ignore[union-attr]
        backends: dict[str, dict] = {}
        for name, b in rt.cp.backends.items():
            state: dict = {"up": rt.up[name]}
            if b.stats is not None:
                state.update(running=b.stats.running, waiting=b.stats.waiting,
                             kv_use=b.stats.kv_use)
            backends[name] = state
        return {"backends": backends, "queue_depth": dict(rt.cp.queued)}

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=15)


def client_config(cfg: RunConfig, targets: dict[str, list[str]]) -> ClientConfig:
    """How the load generator sends: to the gateway, or, for a baseline without a
    control plane, balancing over the engines as that baseline's clients would —
    least-request for `colocated` and `split`, round-robin otherwise — with vLLM's
    `priority` field for `vllm-priority`."""
    from engine.retrieval import VectorIndex  # pipeline retrieve stages search with faiss

    baseline = cfg.control_plane.baseline
    return ClientConfig(targets=targets, concurrency=concurrency(cfg),
                        balance=CLIENT_BALANCE.get(baseline, "round-robin"),
                        send_priority_field=baseline == "vllm-priority", make_index=VectorIndex,
                        corpus=corpus_passages(cfg.workload))


CLIENT_BALANCE = {"colocated": "least-request", "split": "least-request"}


def client_side_pools(baseline: str, backends: list[BackendSpec],
                      engines: dict[str, LaunchedEngine]) -> dict[str, list[str]]:
    """Client-side round-robin targets: the baseline's pools (scheduler.baselines,
    the same ones the simulator uses), as engine URLs."""
    states = [BackendState(b, i, 0.0) for i, b in enumerate(backends)]
    return {cls: [engines[b.name].url for b in pool]
            for cls, pool in pools_for(baseline, states).items() if pool}


def concurrency(cfg: RunConfig) -> int:
    """Client connections: enough that the client never becomes the bottleneck."""
    if cfg.workload.clients is not None:
        return max(8, cfg.workload.clients.n)
    return max(64, min(4096, int(cfg.workload.rate * 4)))
