"""SimEmbeddingEngine: embedding batches served FIFO by `parallelism` workers.

The control plane forms the batches; the engine serves them in passes. A pass
takes a + b·tokens (EmbedCost); one larger than the preset's max_batch_texts
runs as several back to back (one more `a` each), as sentence-transformers'
encode(batch_size=...) does. With the preset's dynamic_batch_texts set, batches
queued behind a busy worker are merged into its next pass up to that many
texts, as serve-embed's batcher (engine/st_engine.py) and TEI do: under load
they share one `a` instead of each paying it in turn. A calibrated preset also
carries the live pass times' spread around that line (EmbedCost.spread_quantiles),
drawn per pass, and may stretch a pass by the sequences the LLM engines of its
machine are decoding when it starts (EmbedCost.cohost_per_seq, engine.sim.host).
Same step-driven API as SimLLMEngine.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any

from engine.sim.cost import EmbedPreset
from engine.sim.events import SimEvent
from engine.sim.spread import Spread
from engine.spec import EngineStats


class SimEmbeddingEngine:
    """FIFO batch server in virtual time."""

    def __init__(self, preset: EmbedPreset, *, parallelism: int | None = None, seed: int = 0,
                 host=None):
        self.preset = preset
        self.cost = preset.cost
        if preset.cost.cohost_per_seq < 0:
            raise ValueError(f"cohost_per_seq: must be >= 0, got {preset.cost.cohost_per_seq}")
        # engine.sim.host.SharedHost, or None: alone on its machine. Asked, at each pass's
        # start, how many sequences its LLM engines decode, if the preset has that cost.
        self._crowd = host if preset.cost.cohost_per_seq > 0 else None
        # each pass's measured spread around a + b·tokens, drawn from its own stream
        self._spread = Spread("spread_quantiles", preset.cost.spread_quantiles, seed)
        self.parallelism = parallelism or preset.parallelism
        if self.parallelism < 1:
            raise ValueError(f"parallelism: must be >= 1, got {self.parallelism}")
        self.max_batch = preset.max_batch_texts
        if self.max_batch < 1:
            raise ValueError(f"max_batch_texts: must be >= 1, got {self.max_batch}")
        self.merge_to = preset.dynamic_batch_texts
        if self.merge_to < 0:
            raise ValueError(f"dynamic_batch_texts: must be >= 0, got {self.merge_to}")
        self._queue: deque[tuple[Any, int, int]] = deque()
        # (t_end, seq, ((batch_id, n_texts), ...)): a pass and the batches it carries
        self._busy: list[tuple[float, int, tuple[tuple[Any, int], ...]]] = []
        self._known: set[Any] = set()
        self._aborted: set[Any] = set()
        self._wake: float | None = None  # idle engine: start queued batches at this time
        self._seq = 0
        self.batches = 0

    def submit(self, batch_id: Any, n_texts: int, total_tokens: int, now: float = 0.0) -> None:
        """Queue a batch; it starts at `now` if a worker is free."""
        if batch_id in self._known:
            raise ValueError(f"batch_id: {batch_id!r} already submitted")
        if n_texts < 1:
            raise ValueError(f"n_texts: must be >= 1, got {n_texts}")
        if total_tokens < 0:
            raise ValueError(f"total_tokens: must be >= 0, got {total_tokens}")
        self._known.add(batch_id)
        self._queue.append((batch_id, n_texts, total_tokens))
        if len(self._busy) < self.parallelism and (self._wake is None or now < self._wake):
            self._wake = now

    def abort(self, batch_id: Any, now: float | None = None) -> None:
        """Drop a batch: a queued one never runs; a running one reports nothing."""
        if batch_id in self._known:
            self._aborted.add(batch_id)

    def next_event_time(self) -> float | None:
        t = self._busy[0][0] if self._busy else None
        if self._wake is not None and (t is None or self._wake < t):
            return self._wake
        return t

    def advance(self, now: float) -> list[SimEvent]:
        """Finish batches ending by `now`, then start queued ones on free workers."""
        events: list[SimEvent] = []
        busy = self._busy
        while busy and busy[0][0] <= now:
            t_end, _, members = heapq.heappop(busy)
            for bid, n in members:
                self._known.discard(bid)
                if bid in self._aborted:  # ran to its end; nobody hears of it
                    self._aborted.discard(bid)
                else:
                    events.append(SimEvent("done", bid, n, t_end))
            self._start(t_end)
        if self._wake is not None and self._wake <= now:
            self._start(self._wake)
            self._wake = None
        return events

    def _start(self, t: float) -> None:
        q = self._queue
        while q and len(self._busy) < self.parallelism:
            members: list[Any] = []  # batch ids
            n, tokens = 0, 0
            # the head batch, then (dynamic batching) whatever waits behind it, as the
            # server's batcher takes queued requests while it holds fewer than the cap
            while q and (not members or n < self.merge_to):
                bid, bn, btok = q.popleft()
                if bid in self._aborted:
                    self._aborted.discard(bid)
                    self._known.discard(bid)
                    continue
                members.append((bid, bn))
                n += bn
                tokens += btok
            if not members:
                return
            self._seq += 1
            self.batches += 1
            # more texts than the engine's batch size run as several batches back to back
            k = -(-n // self.max_batch)
            dt = self.cost.batch_time(tokens) + (k - 1) * self.cost.a
            if self._spread:
                dt *= self._spread.draw()
            if self._crowd is not None:
                dt *= 1.0 + self.cost.cohost_per_seq * self._crowd.others_decoding(self)
            heapq.heappush(self._busy, (t + dt, self._seq, tuple(members)))

    def busy_at(self, t: float) -> bool:
        """A pass is running at `t` (for engines sharing this one's machine)."""
        return any(end > t for end, _, _ in self._busy)

    def stats(self) -> EngineStats:
        run, wait = len(self._busy), len(self._queue)
        return EngineStats(running=run, waiting=wait, kv_use=0.0, in_flight=run + wait)
