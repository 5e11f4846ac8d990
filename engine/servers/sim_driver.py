"""Drive a step-based simulated engine (engine.sim) in real time on an asyncio loop.

Why separate from the HTTP server: the simulator knows nothing of clocks; this
maps its virtual time onto the loop's monotonic clock (virtual t = loop.time() -
t0) with one timer for the engine's next step end, and hands token/done events
to per-request `SimStream`s. One timer per engine, not per request, keeps it
lean at thousands of requests per second.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any


class SimStream:
    """What one request has produced so far; the HTTP handler awaits `wait()`."""

    __slots__ = ("rid", "total", "pending", "sent", "done", "_waiter", "_interval")

    def __init__(self, rid: int, total: int, interval: int):
        self.rid, self.total, self._interval = rid, total, interval
        self.pending = 0  # tokens produced, not yet taken by the handler
        self.sent = 0  # tokens already taken
        self.done = False
        self._waiter: asyncio.Future | None = None

    def _add(self, n: int) -> None:
        self.pending += n
        if self.sent == 0 or self.pending >= self._interval:
            self._wake()

    def _finish(self) -> None:
        self.done = True
        self.pending = self.total - self.sent  # whatever the last step produced
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def take(self) -> int:
        """Wait for new tokens (or the end) and return how many arrived since the last call."""
        if not self.pending and not self.done:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        n, self.pending = self.pending, 0
        self.sent += n
        return n


class SimDriver:
    """Owns one SimLLMEngine or SimEmbeddingEngine and its real-time timer."""

    def __init__(self, engine: Any, *, stream_interval: int = 1):
        if stream_interval < 1:
            raise ValueError(f"stream_interval: must be >= 1, got {stream_interval}")
        self.engine = engine
        self.stream_interval = stream_interval
        self.streams: dict[int, SimStream] = {}
        self._ids = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._handle_at: float | None = None

    def now(self) -> float:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._t0 = self._loop.time()
        return self._loop.time() - self._t0

    def submit_llm(self, prompt_tokens: int, output_tokens: int, priority: int = 2) -> SimStream:
        """Queue a generation; raises ValueError (a client mistake) if it cannot fit."""
        rid = next(self._ids)
        self.engine.submit(rid, prompt_tokens, output_tokens, priority, self.now())
        s = self.streams[rid] = SimStream(rid, output_tokens, self.stream_interval)
        self._arm()
        return s

    def submit_embedding(self, n_texts: int, tokens: int) -> SimStream:
        rid = next(self._ids)
        self.engine.submit(rid, n_texts, tokens, self.now())
        s = self.streams[rid] = SimStream(rid, n_texts, 1)
        self._arm()
        return s

    def abort(self, stream: SimStream) -> None:
        """The client went away: free its capacity in the engine."""
        if self.streams.pop(stream.rid, None) is not None and not stream.done:
            self.engine.abort(stream.rid, self.now())
            self._arm()

    def _arm(self) -> None:
        t = self.engine.next_event_time()
        if t == self._handle_at and self._handle is not None:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._handle_at = t
        if t is not None:
            assert self._loop is not None  # set by now(), which every submit calls first
            self._handle = self._loop.call_at(self._t0 + t, self._fire)

    def _fire(self) -> None:
        # The timer was set for _handle_at: treat the loop as having reached it.
        assert self._loop is not None  # only _arm sets the timer, after now()
        now = max(self._loop.time() - self._t0, self._handle_at or 0.0)
        self._handle = None
        self._handle_at = None
        eng, streams = self.engine, self.streams
        while (t := eng.next_event_time()) is not None and t <= now:
            for ev in eng.advance(now):
                kind = ev.kind
                if kind == "tokens":
                    for rid in ev.req_ids:
                        s = streams.get(rid)
                        if s is not None:
                            s._add(1)
                elif kind == "first_token":
                    s = streams.get(ev.req_id)
                    if s is not None:
                        s._add(1)
                elif kind == "done":
                    s = streams.pop(ev.req_id, None)
                    if s is not None:
                        s._finish()
        self._arm()
