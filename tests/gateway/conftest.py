"""Fixtures: real upstream servers and a gateway in front of them, on loopback."""

from __future__ import annotations

import asyncio

import pytest
from gw_upstream import Upstream  # tests/gateway is on sys.path (no __init__.py)

from scheduler.gateway import GatewayOptions, parse_gateway_config, start_gateway
from scheduler.gateway.app import RUNTIME


class Gateway:
    """A started gateway: base `url`, its aiohttp app, and `close()`."""

    def __init__(self, runner, url: str) -> None:
        self.runner = runner
        self.url = url
        self.app = runner.app

    async def close(self) -> None:
        await self.runner.cleanup()


@pytest.fixture
async def make_gateway():
    """make_gateway(backends, control_plane={}, **options) -> Gateway; torn down after."""
    started: list[Gateway] = []

    async def make(backends: list[dict], control_plane: dict | None = None,
                   **options) -> Gateway:
        cfg = parse_gateway_config({"control_plane": control_plane or {},
                                    "backends": backends})
        runner, url = await start_gateway(cfg, GatewayOptions(**options))
        gw = Gateway(runner, url)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        rt = gw.app[RUNTIME]
        for _ in range(100):  # let late completions land
            if not rt.slots:
                break
            await asyncio.sleep(0.02)
        leftover = dict(rt.slots)
        await gw.close()
        # every request that entered the core left it exactly once
        assert not leftover, f"requests never finished: {list(leftover)}"
        rt.cp.assert_conserved(final=True)


@pytest.fixture
async def upstreams():
    """upstreams(name, **kw) -> started Upstream; all stopped after the test."""
    made: list[Upstream] = []

    async def make(name: str, **kw) -> Upstream:
        u = await Upstream(name, **kw).start()
        made.append(u)
        return u

    yield make
    for u in made:
        await u.stop()
