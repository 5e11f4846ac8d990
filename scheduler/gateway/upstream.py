"""Raw request relay from the gateway to one engine.

Why not engine.http.HTTPEngine for this part: the gateway passes the engine's
bytes through unparsed (streams are relayed chunk by chunk, never re-encoded),
so it needs the aiohttp response itself. Health probes and /metrics scrapes
do use HTTPEngine.
"""

from __future__ import annotations

import aiohttp

JSON_HEADERS = {"Content-Type": "application/json"}


class UpstreamUnavailable(Exception):
    """The engine could not be reached: nothing was started there."""


async def open_post(session: aiohttp.ClientSession, url: str, body: bytes,
                    timeout: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
    """Send one request and return the response with its body unread.

    Raise UpstreamUnavailable when the engine is unreachable (refused, reset
    before any answer), so the caller may retry on another backend; a read
    timeout stays a TimeoutError (the engine may be working on it).
    """
    try:
        return await session.post(url, data=body, headers=JSON_HEADERS, timeout=timeout)
    except TimeoutError:  # the engine took the request and went quiet: not retryable
        raise
    except aiohttp.ClientConnectionError as exc:
        raise UpstreamUnavailable(f"{type(exc).__name__}: {exc}") from None
