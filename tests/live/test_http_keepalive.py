"""Engine connections are dropped before the server's keep-alive would close them.

Why: a request sent on a pooled connection the server is closing fails with
"Server disconnected" (uvicorn closes idle ones after 5 s; aiohttp's client kept
them 15 s). `engine.http.KEEPALIVE_S` keeps the pool's idle time under that.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

import engine.http as http
from engine.http import HTTPEngine


async def test_an_idle_connection_is_replaced_not_reused(monkeypatch, serve_app):
    monkeypatch.setattr(http, "KEEPALIVE_S", 0.2)
    peers: list = []

    async def health(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/health", health)
    async with HTTPEngine(await serve_app(app)) as eng:
        assert await eng.health() and await eng.health()
        await asyncio.sleep(0.6)  # idle past the client's keep-alive
        assert await eng.health()
    assert peers[0] == peers[1]  # back to back: the same connection
    assert peers[2] != peers[1]  # after the idle time: a new one
