"""Run the gateway until SIGINT/SIGTERM (the `sagetui gateway` command's body).

Why apart from app.py: the CLI, the live orchestrator and benches all need
"serve this config until told to stop, then close every connection".
"""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Callable

from scheduler.gateway.app import start_gateway
from scheduler.gateway.config import GatewayConfig, GatewayOptions


async def serve_until_stopped(cfg: GatewayConfig, options: GatewayOptions, host: str,
                              port: int, on_ready: Callable[[str], None] | None = None,
                              stop: asyncio.Event | None = None) -> None:
    """Serve; return after a signal (or `stop` is set) once everything is closed."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    runner, url = await start_gateway(cfg, options, host, port)
    # Everything alive now (the imported packages: ~47,000 objects; a full collection
    # of them took 50-150 ms on the 2-core machine) lives as long as the process: out
    # of the collector's sight, a full collection no longer walks it mid-request.
    gc.collect()
    gc.freeze()
    try:
        if on_ready is not None:
            on_ready(url)
        await stop.wait()
    finally:
        await runner.cleanup()


def run_gateway(cfg: GatewayConfig, options: GatewayOptions, host: str, port: int,
                on_ready: Callable[[str], None] | None = None) -> None:
    """Blocking entry point; uses uvloop when installed (the gateway's hot path)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        asyncio.run(serve_until_stopped(cfg, options, host, port, on_ready))
        return
    uvloop.run(serve_until_stopped(cfg, options, host, port, on_ready))
