"""A fixed per-request latency in front of a simulated engine that never blocks it.

Why: a live request crosses HTTP hops and the server's front end (vLLM's API
server parses, tokenizes, detokenizes and streams in its own process) before
and after the engine works on it. That time lengthens the request's TTFT and
E2E but does not lengthen anyone's engine step. Charging it as α inside the
step (as vLLM-faithful step models do for work that does block the engine)
made the calibrated simulator slow every decode down by the front end's
~15 ms per new request on the tiny CPU model. Shifting the whole round trip
to the front is exact for TTFT and E2E (the return path is a constant too)
and leaves ITL untouched.

`Frontend` wraps any engine with the SimLLMEngine interface (submit, abort,
next_event_time, advance, stats) and passes everything else through.

With completion quantiles it also holds each request's `done` back by a drawn
lateness, on the same reasoning: a live decode slowed on its own streaming
path makes that request late; the step model, fitted to mean step times, has
no such tail. The calibrated quantiles are the small ones of the profile's
decode-time residuals above their upper quartile (engine.sim.calibrate.fit_requests);
the large ones hold the whole engine and are drawn there (SimLLMEngine,
`step_stall_rate`).

With `per_seq` a request's delay grows with the sequences its engine is
decoding when it comes: the API server, the gateway and the client relay every
streamed token, and on a small shared machine that work delays a new request's
way in. Measured on this project's 2-core machine through MiniLM's passes
(`EmbedCost.cohost_per_seq`, the same cause on the same cores): 5–7 % per
streaming sequence; the lone requests the front end is fitted on never have
any beside them, so the calibration carries MiniLM's figure over
(docs/fidelity.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from heapq import heappop, heappush
from typing import Any

from engine.sim.spread import Spread


class Frontend:
    """Hands each submission to `engine` `delay` seconds after it was made.

    With `quantiles` (the delay's measured quantiles at evenly spaced
    probabilities 0 … 1) each request draws its own delay by inverse CDF from a
    generator seeded with `seed`, so the run stays reproducible.
    """

    def __init__(self, engine: Any, delay: float, quantiles: Sequence[float] = (),
                 seed: int = 0, *, completion_quantiles: Sequence[float] = (),
                 per_seq: float = 0.0):
        if delay < 0:
            raise ValueError(f"frontend: must be >= 0 s, got {delay}")
        if per_seq < 0:
            raise ValueError(f"frontend_per_seq: must be >= 0, got {per_seq}")
        self.engine = engine
        self.delay = delay
        self.per_seq = per_seq  # stretch per sequence the engine is decoding at submission
        self._front = Spread("frontend_quantiles", quantiles, seed)
        # its own stream: adding a lateness leaves the front end's draws where they were
        self._lateness = Spread("completion_quantiles", completion_quantiles, seed + 1)
        self._due: list[tuple[float, int, tuple]] = []  # (release time, seq, submit args)
        self._late: list[tuple[float, int, Any]] = []  # (release time, seq, done event)
        self._seq = 0
        self._aborted: set = set()

    def __getattr__(self, name: str) -> Any:  # preset, steps, preemptions, step_log, ...
        return getattr(self.engine, name)

    def submit(self, req_id: Any, prompt_tokens: int, output_tokens: int, priority: int = 2,
               now: float = 0.0, prefix: tuple | None = None) -> None:
        self._seq += 1
        delay = self._front.draw() if self._front else self.delay
        if self.per_seq:
            delay *= 1.0 + self.per_seq * self.engine.decoding()
        args = (req_id, prompt_tokens, output_tokens, priority)
        heappush(self._due, (now + delay, self._seq, args if prefix is None else (*args, prefix)))

    def abort(self, req_id: Any, now: float | None = None) -> None:
        if any(args[0] == req_id for _, _, args in self._due) or \
                any(e.req_id == req_id for _, _, e in self._late):
            self._aborted.add(req_id)
        else:
            self.engine.abort(req_id, now)

    def next_event_time(self) -> float | None:
        t = self.engine.next_event_time()
        if self._due and (t is None or self._due[0][0] < t):
            t = self._due[0][0]
        if self._late and (t is None or self._late[0][0] < t):
            t = self._late[0][0]
        return t

    def advance(self, now: float) -> list:
        """Finish the engine's step ending at `now`, then hand over what is due by `now`."""
        events = self.engine.advance(now)
        if self._lateness:
            events = self._hold_completions(events, now)
        while self._due and self._due[0][0] <= now:
            t, _, args = heappop(self._due)
            if args[0] in self._aborted:
                self._aborted.discard(args[0])
                continue
            if len(args) > 4:
                self.engine.submit(*args[:4], now=t, prefix=args[4])
            else:
                self.engine.submit(*args, now=t)
        return events

    def _hold_completions(self, events: list, now: float) -> list:
        """Hold each `done` back by its drawn lateness; release those due by `now`."""
        out = []
        for e in events:
            if e.kind == "done":
                self._seq += 1
                t = e.t + self._lateness.draw()
                heappush(self._late, (t, self._seq, e._replace(t=t)))
            else:
                out.append(e)
        released = False
        while self._late and self._late[0][0] <= now:
            e = heappop(self._late)[2]
            if e.req_id in self._aborted:
                self._aborted.discard(e.req_id)
                continue
            out.append(e)
            released = True
        if released:
            out.sort(key=lambda e: e.t)  # stable: the engine's own order within a time
        return out

    def stats(self):
        """The engine's stats, with requests still in the front end counted as waiting
        and finished ones held back by their lateness as running."""
        st = self.engine.stats()
        if self._due:
            st.waiting += len(self._due)
            if st.in_flight is not None:
                st.in_flight += len(self._due)
        if self._late:
            st.running += len(self._late)
            if st.in_flight is not None:
                st.in_flight += len(self._late)
        return st
