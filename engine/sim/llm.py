"""SimLLMEngine: a step-driven model of the vLLM V1 scheduler in virtual time.

Each step: running decodes first (one token each), then running chunked
prefills, then waiting requests while `max_num_seqs`, the token budget
`max_num_batched_tokens` and free 16-token KV blocks allow. When blocks run
out the newest running request (or, with priority scheduling, the lowest
priority, newest one) is preempted: its blocks are freed and it is recomputed
later. Step duration comes from the preset's `LLMCost`.

Priority scheduling follows vLLM V1's `Scheduler.schedule`
(vllm/v1/core/sched/scheduler.py): only a running request that cannot get its
new KV blocks causes a preemption; a waiting request, however urgent, never
preempts a running one (it waits for a free sequence slot and free blocks, and
then goes first). docs/simulator.md has the rule.

Speed: decoding requests are not touched per step. Each keeps an invariant
`c` so that its computed tokens are `c + D` (D = steps done), its output count
follows from D, finishing times sit in a heap and block boundaries are counted
per residue class. Runs of identical decode-only steps are fast-forwarded as
one "macro step" and cut short at the step boundary after a new submission.
With `token_events=True` or `record_steps=True` every step is simulated.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from functools import partial
from typing import Any

from engine.sim.cost import LLMPreset
from engine.sim.events import SimEvent
from engine.sim.prefix import Holder, PrefixCache
from engine.sim.spread import Spread
from engine.spec import EngineStats

_WAIT, _PREFILL, _DEC, _DONE, _ABORTED = range(5)
# SimEvent(*fields) without NamedTuple's Python-level __new__: one per event, and
# events are most of what a step allocates.
_event = partial(tuple.__new__, SimEvent)


class _Req:
    __slots__ = (
        "id", "prompt", "out_total", "priority", "seq", "n_out", "computed",
        "c", "state", "gen", "started", "pfx",
    )

    def __init__(self, req_id: Any, prompt: int, out_total: int, priority: int, seq: int):
        self.id = req_id
        self.prompt = prompt
        self.out_total = out_total
        self.priority = priority
        self.seq = seq
        self.n_out = 0  # output tokens produced (valid unless decoding)
        self.computed = 0  # tokens with KV computed (valid unless decoding)
        self.c = 0  # decoding: computed = c + D, n_out = c + D - prompt + 1
        self.state = _WAIT
        self.gen = 0  # invalidates stale finish-heap entries
        self.started = False  # ever scheduled (per-request overhead charged once)
        self.pfx: Holder | None = None  # its prefix-cache state (engine.sim.prefix)


class SimLLMEngine:
    """vLLM V1-like engine driven by submit / next_event_time / advance."""

    # __init__ runs past a screen: it only names the engine's state, one field a line.
    def __init__(
        self,
        preset: LLMPreset,
        *,
        priority_scheduling: bool = False,
        token_events: bool = False,
        record_steps: bool = False,
        max_num_seqs: int | None = None,
        max_num_batched_tokens: int | None = None,
        host=None,
        seed: int = 0,
        prefix_caching: bool = True,
        log_hit_rate: bool = False,
    ):
        self.preset = preset
        # engine.sim.host.SharedHost, or None: alone on its machine. A co-host cost turns
        # off fast-forwarding (each step's cost depends on the others' state when it
        # starts); without one the host is never asked, so nothing is slowed down.
        self.host = host
        self.cost = preset.cost
        self._crowd = host if (preset.cost.cohost_beta2 > 0
                               or preset.cost.cohost_slowdown > 0) else None
        if preset.cost.cohost_slowdown < 0:
            raise ValueError(f"cohost_slowdown: must be >= 0, got "
                             f"{preset.cost.cohost_slowdown}")
        # engine stalls (seeded: a run stays reproducible); they turn off fast-forwarding
        c = preset.cost
        if not 0.0 <= c.step_stall_rate < 1.0:
            raise ValueError(f"step_stall_rate: must be in [0, 1), got {c.step_stall_rate}")
        self._stall = Spread("step_stall_quantiles", c.step_stall_quantiles, seed + 4) \
            if c.step_stall_rate > 0 else None
        if self._stall is not None and not self._stall:
            raise ValueError("step_stall_quantiles: needed when step_stall_rate > 0")
        self._stall_rng = random.Random(seed + 5)
        self.bs = preset.block_size
        self.num_blocks = preset.num_blocks
        self.max_seqs = max_num_seqs or preset.max_num_seqs
        self.max_tokens = max_num_batched_tokens or preset.max_num_batched_tokens
        if self.max_seqs < 1:
            raise ValueError(f"max_num_seqs: must be >= 1, got {self.max_seqs}")
        if self.max_tokens < self.max_seqs:
            raise ValueError(
                f"max_num_batched_tokens: {self.max_tokens} must be >= max_num_seqs {self.max_seqs}"
            )
        if self.num_blocks < 1:
            raise ValueError(f"preset {preset.name!r}: kv_capacity_tokens below one block")
        self.priority_scheduling = priority_scheduling
        self.token_events = token_events
        # per-step records (calibration input, tests); disables fast-forwarding
        self.step_log: list[dict] | None = [] if record_steps else None

        self._reqs: dict[Any, _Req] = {}
        self._running: dict[Any, _Req] = {}  # admission order; last = newest
        self._prefill: dict[Any, _Req] = {}  # running, still (re)computing their prompt
        self._waiting_fifo: deque[_Req] = deque()
        self._waiting_heap: list[tuple[int, int, _Req]] = []
        self._n_waiting = 0
        self._seq = 0

        # decoders
        self.D = 0
        self._n_dec = 0
        self._dec_c_sum = 0
        self._res = [0] * self.bs  # decoders by c % bs
        self._finish: list[tuple[int, int, int, _Req]] = []  # (D_finish, seq, gen, req)

        self.used_blocks = 0  # per request: a block shared by m requests counts m times
        # vLLM's automatic prefix caching (on by default in V1, as there); None: off
        self._pc = PrefixCache() if prefix_caching else None
        # keep the hit rate as vLLM 0.11 logs it (a window of look-ups, retries included):
        # for comparing with a vLLM log (engine.sim.replay); a step's look-ups cost time
        self._log_hits = log_hit_rate and self._pc is not None
        self.preemptions = 0
        self.steps = 0

        # step in flight
        self._t_start = 0.0
        self._t_end: float | None = None
        self._plan: list[tuple[_Req, int]] = []  # prefill chunks of this step
        self._real = False  # a step (not just an idle wake-up) is in flight
        self._inflight = 0  # decode steps in flight (k for a fast-forward)
        self._macro_k = 0  # >0: fast-forwarded decode-only steps in flight
        self._macro_c = 0.0  # duration of the first macro step
        self._macro_g = 0.0  # duration increase per macro step (β3 · decoders)
        # (tokens, hits) of the waiting head every macro step looks up and refuses
        self._macro_look: tuple[int, int] | None = None

    # ---------------------------------------------------------------- API

    def submit(self, req_id: Any, prompt_tokens: int, output_tokens: int, priority: int = 2,
               now: float = 0.0, prefix: tuple | None = None) -> None:
        """Queue a request; a step starts at `now` if the engine is idle.

        Virtual-time runtimes advance to every step end before submitting later
        work; a real-time driver whose timer fires late may submit past the step
        end, and the request then joins the step that starts there.

        `prefix` = (key, tokens) or (key, tokens, extend): the first `tokens` of the
        prompt are the content named `key`, shared with every request naming it
        (prefix caching reuses its KV blocks); with extend, the request's whole
        sequence continues that content (a conversation's next turn finds it).
        """
        if req_id in self._reqs:
            raise ValueError(f"req_id: {req_id!r} already submitted")
        if prompt_tokens < 1:
            raise ValueError(f"prompt_tokens: must be >= 1, got {prompt_tokens}")
        if output_tokens < 1:
            raise ValueError(f"output_tokens: must be >= 1, got {output_tokens}")
        need = -(-(prompt_tokens + output_tokens - 1) // self.bs)
        if need > self.num_blocks:
            raise ValueError(
                f"prompt_tokens + output_tokens = {prompt_tokens + output_tokens} exceeds the "
                f"KV capacity of preset {self.preset.name!r} "
                f"({self.num_blocks * self.bs} tokens)"
            )
        self._seq += 1
        r = _Req(req_id, prompt_tokens, output_tokens, priority, self._seq)
        if prefix is not None and self._pc is not None:
            self._declare(r, prefix)
        self._reqs[req_id] = r
        # _push_waiting(r, front=False) inlined (once per request; r starts in _WAIT)
        self._n_waiting += 1
        if self.priority_scheduling:
            heapq.heappush(self._waiting_heap, (r.priority, r.seq, r))
        else:
            self._waiting_fifo.append(r)
        if self._t_end is None:
            self._t_start = self._t_end = now  # idle wake-up: plan a step at `now`
            self._real = False
            self._plan = []
        elif self._macro_k:
            self._cut_macro(now)

    def _declare(self, r: _Req, prefix: tuple) -> None:
        key, tokens = prefix[0], prefix[1]
        extend = bool(prefix[2]) if len(prefix) > 2 else False
        if not isinstance(tokens, int) or tokens < 0 or tokens > r.prompt:
            raise ValueError(f"prefix: its tokens must be 0..prompt_tokens ({r.prompt}), "
                             f"got {tokens!r}")
        if tokens >= self.bs or extend:
            r.pfx = Holder(key, tokens // self.bs, extend)

    def prefix_stats(self) -> dict:
        """Prefix-cache hits of this engine's admissions (vLLM's hit rate counts every
        admission, a preempted request's readmission included; `hit_rate_new` leaves
        readmissions out)."""
        pc = self._pc
        if pc is None:
            return {"enabled": False}
        q_new = pc.queries - pc.queries_preempted
        h_new = pc.hits - pc.hits_preempted
        return {"enabled": True, "queries": pc.queries, "hits": pc.hits,
                "hit_rate": pc.hit_rate(), "queries_new": q_new, "hits_new": h_new,
                "hit_rate_new": h_new / q_new if q_new else None,
                "hit_rate_logged": pc.logged_hit_rate() if self._log_hits else None}

    def blocks_in_use(self) -> int:
        """KV blocks referenced by running requests, a shared block once."""
        return self.used_blocks + (self._pc.adj if self._pc is not None else 0)

    def abort(self, req_id: Any, now: float | None = None) -> None:
        """Drop a request; no further events for it. `now` cuts a fast-forward short."""
        r = self._reqs.pop(req_id, None)
        if r is None:
            return
        if self._macro_k and now is not None:
            self._cut_macro(now)
        if r.state == _WAIT:
            self._n_waiting -= 1  # lazily skipped in the queue
            if r.pfx is not None and r.pfx.own is not None and self._pc is not None:
                self._pc._drop_own(r.pfx, 0)  # its cached blocks: nobody's
        elif r.state == _PREFILL:
            self._running.pop(r.id, None)
            self._prefill.pop(r.id, None)
            planned = sum(n for q, n in self._plan if q is r)
            self._free(r, self._blocks(r.computed + planned), r.computed // self.bs, False)
            self._plan = [(q, n) for q, n in self._plan if q is not r]
        elif r.state == _DEC:
            self._drop_decoder(r)
            self._running.pop(r.id, None)
        r.state = _ABORTED

    def next_event_time(self) -> float | None:
        """End of the step (or fast-forwarded steps) in flight; None when idle."""
        return self._t_end

    def advance(self, now: float) -> list[SimEvent]:
        """Finish the step ending at `now` and start the next one."""
        if self._t_end is None or now < self._t_end:
            return []
        t = self._t_end
        events: list[SimEvent] = []
        self._finish_step(t, events)
        self._start_step(t, events)
        return events

    def busy_at(self, t: float) -> bool:
        """A step is running at `t` (for engines sharing this one's machine)."""
        return self._t_end is not None and self._t_end > t

    def decoding(self) -> int:
        """Sequences in the decode batch now (for engines sharing this one's machine);
        exact inside a fast-forward too, which ends at the first sequence to finish."""
        return self._n_dec

    def stats(self) -> EngineStats:
        run = len(self._running)
        return EngineStats(
            running=run,
            waiting=self._n_waiting,
            kv_use=self.blocks_in_use() / self.num_blocks,
            in_flight=run + self._n_waiting,
        )

    # ------------------------------------------------------------ helpers

    def _blocks(self, tokens: int) -> int:
        return -(-tokens // self.bs)

    def _push_waiting(self, r: _Req, front: bool) -> None:
        r.state = _WAIT
        self._n_waiting += 1
        if self.priority_scheduling:
            heapq.heappush(self._waiting_heap, (r.priority, r.seq, r))
        elif front:
            self._waiting_fifo.appendleft(r)
        else:
            self._waiting_fifo.append(r)

    def _peek_waiting(self) -> _Req | None:
        if self.priority_scheduling:
            h = self._waiting_heap
            while h and h[0][2].state != _WAIT:
                heapq.heappop(h)
            return h[0][2] if h else None
        q = self._waiting_fifo
        while q and q[0].state != _WAIT:
            q.popleft()
        return q[0] if q else None

    def _drop_decoder(self, r: _Req, preempted: bool = False) -> None:
        """Take a decoder out of the counters (its heap entry goes stale), free its blocks."""
        r.computed = r.c + self.D
        r.n_out = r.computed - r.prompt + 1
        self._n_dec -= 1
        self._dec_c_sum -= r.c
        self._res[r.c % self.bs] -= 1
        # slots of decode steps still in flight were allocated too
        held = -(-(r.computed + self._inflight) // self.bs)
        self.used_blocks -= held
        pc = self._pc
        if pc is not None and (r.pfx is not None or pc.live):
            pc.release(r.pfx or Holder(), held, r.computed // self.bs, preempted,
                       self.num_blocks - self.used_blocks - held - pc.adj)
        r.gen += 1

    def _free(self, r: _Req, held: int, full: int, preempted: bool) -> None:
        """A request that is not decoding leaves the running set with `held` blocks."""
        self.used_blocks -= held
        pc = self._pc
        if pc is not None and (r.pfx is not None or pc.live):
            pc.release(r.pfx or Holder(), held, full, preempted,
                       self.num_blocks - self.used_blocks - held - pc.adj)

    def _dec_blocks(self, i0: int, i1: int) -> int:
        """New blocks the decoders take in steps D+i0 .. D+i1-1."""
        full, part = divmod(i1 - i0, self.bs)
        bs, base, res = self.bs, self.D + i0 + full * self.bs, self._res
        return full * self._n_dec + sum(res[(-(base + i)) % bs] for i in range(part))

    def _preempt_victim(self) -> _Req:
        """vLLM's victim: the running request with the largest (priority, arrival) under
        priority scheduling, else the last one admitted (`self.running.pop()`)."""
        if self.priority_scheduling:
            return max(self._running.values(), key=lambda q: (q.priority, q.seq))
        return self._running[next(reversed(self._running))]

    def _preempt(self, r: _Req, t: float, events: list[SimEvent]) -> None:
        del self._running[r.id]
        if self._pc is not None and r.pfx is None:
            r.pfx = Holder()  # its own blocks stay cached for its recomputation
        if r.state == _DEC:
            self._drop_decoder(r, preempted=True)
        else:
            self._prefill.pop(r.id, None)
            self._free(r, self._blocks(r.computed), r.computed // self.bs, True)
        events.append(SimEvent("preempted", r.id, r.computed, t))
        r.computed = 0
        if r.pfx is not None:
            r.pfx.preempted = True
        self.preemptions += 1
        self._push_waiting(r, front=True)

    # --------------------------------------------------------------- steps

    def _finish_step(self, t: float, events: list[SimEvent]) -> None:
        # Long on purpose: the other half of the per-step hot loop (see _start_step).
        ids: list | None = None  # requests that produced a non-first token (token_events)
        if self._real:
            if self.token_events and self._n_dec:
                ids = [q.id for q in self._running.values() if q.state == _DEC]
            self.D += self._inflight
            self.steps += self._macro_k or 1
            if self._macro_look is not None:  # as many look-ups as steps it ran, cut or not
                tokens, hits = self._macro_look
                k = self._macro_k
                if self._pc is not None:
                    self._pc.logged(k, k * tokens, k * hits, same=True)
                self._macro_look = None
        self._real = False
        self._inflight = 0
        self._macro_k = 0
        running, reqs, append = self._running, self._reqs, events.append
        # decoders that reached their last token
        fin = self._finish
        D = self.D
        while fin and fin[0][0] <= D:
            _, _, gen, r = heapq.heappop(fin)
            if r.gen != gen or r.state != _DEC:
                continue
            self._drop_decoder(r)
            del running[r.id]
            del reqs[r.id]
            r.state = _DONE
            append(_event(("done", r.id, r.out_total, t, ())))
        # prefill chunks
        for r, n in self._plan:
            if r.state != _PREFILL:
                continue
            r.computed += n
            if r.pfx is not None and r.pfx.key is not None and self._pc is not None:
                self._pc.publish(r.pfx, r.computed // self.bs)
            if r.computed < r.prompt + r.n_out:
                continue
            r.n_out += 1
            if r.n_out == 1:
                append(_event(("first_token", r.id, 1, t, ())))
            elif self.token_events:
                if ids is None:
                    ids = []
                ids.append(r.id)
            del self._prefill[r.id]
            if r.n_out >= r.out_total:
                del running[r.id]
                del reqs[r.id]
                self._free(r, -(-r.computed // self.bs), r.computed // self.bs, False)
                r.state = _DONE
                append(_event(("done", r.id, r.out_total, t, ())))
            else:
                # It decodes from now on (inlined: once per request, on the hot path).
                # computed = prompt + n_out - 1 = c + D
                c = r.c = r.prompt + r.n_out - 1 - D
                r.state = _DEC
                r.gen += 1
                self._n_dec += 1
                self._dec_c_sum += c
                self._res[c % self.bs] += 1
                # n_out(D') = c + D' - prompt + 1 reaches out_total at D' = out_total + prompt - 1 - c
                heapq.heappush(fin, (r.out_total + r.prompt - 1 - c, r.seq, r.gen, r))
        self._plan = []
        if ids:  # before any done, so a request's tokens precede its completion
            events.insert(0, SimEvent("tokens", None, 1, t, tuple(ids)))

    def _start_step(self, t: float, events: list[SimEvent]) -> None:
        # Long on purpose: the simulator's hot loop (one call per engine step), with vLLM V1's
        # scheduling rules inlined, so a step pays for no extra calls.
        self._t_start = t
        if self._try_macro(t):
            return
        bs = self.bs  # blocks for x tokens: -(-x // bs), inlined in this hot loop
        running, prefilling = self._running, self._prefill
        budget = self.max_tokens
        pc = self._pc
        free = self.num_blocks - self.used_blocks - (pc.adj if pc is not None else 0)
        preempted = False
        # 1. running requests: one token per decoder, then chunks of running prefills;
        #    preempt the newest (lowest priority) until their new KV blocks fit.
        while True:
            n_dec = self._n_dec
            need = self._res[(-self.D) % bs] if n_dec else 0
            left = budget - n_dec
            plan: list[tuple[_Req, int]] = []
            r: _Req | None  # a prefill here, the waiting queue's head below
            for r in prefilling.values():
                if left <= 0:
                    break
                done = r.computed
                n = min(r.prompt + r.n_out - done, left)
                left -= n
                plan.append((r, n))
                need += -(-(done + n) // bs) - -(-done // bs)
            if need <= free or not running:
                break
            victim = self._preempt_victim()
            self._preempt(victim, t, events)
            preempted = True
            free = self.num_blocks - self.used_blocks - pc.adj if pc is not None else \
                self.num_blocks - self.used_blocks
        free -= need
        popped = need
        if pc is not None and pc.live:
            pc.take(need)  # running requests allocate before waiting ones look up hits
        # 2. waiting requests, in queue order, while sequences, budget and blocks allow
        #    (none in a step that had to preempt).
        new = 0
        looked = asked = found = 0  # this step's prefix-cache look-ups, as vLLM logs them
        log_hits = self._log_hits
        if not preempted:
            max_seqs, prio = self.max_seqs, self.priority_scheduling
            # _n_waiting first: an empty queue (most steps' last look) costs no call
            while left > 0 and self._n_waiting and len(running) < max_seqs:
                r = self._peek_waiting()
                if r is None:
                    break
                if r.pfx is not None and pc is not None:  # a prefix only with caching on
                    hk, ho, hfree = pc.lookup(r.pfx, (r.prompt + r.n_out - 1) // bs)
                else:
                    hk = ho = hfree = 0
                n = min(r.prompt + r.n_out - (hk + ho) * bs, left)
                b = -(-n // bs)
                if log_hits:
                    looked += 1
                    asked += r.prompt + r.n_out
                    found += (hk + ho) * bs
                if b + hfree > free:
                    break
                if prio:  # take the head peeked above
                    heapq.heappop(self._waiting_heap)
                else:
                    self._waiting_fifo.popleft()
                self._n_waiting -= 1
                free -= b + hfree
                left -= n
                need += b
                if pc is not None:
                    if r.pfx is not None:
                        self._admit_cached(r, hk, ho)
                    else:
                        pc.queries += r.prompt + r.n_out
                r.state = _PREFILL
                running[r.id] = r
                prefilling[r.id] = r
                plan.append((r, n))
                if not r.started:
                    r.started = True
                    new += 1
        if looked and pc is not None:
            pc.logged(looked, asked, found)
        n_dec = self._n_dec
        if not n_dec and not plan:
            self._t_end = None
            self._plan = []
            return
        self.used_blocks += need
        if pc is not None and pc.live and need > popped:
            pc.take(need - popped)
        self._real = True
        self._inflight = 1 if n_dec else 0
        prefill = 0
        kv = self._dec_c_sum + n_dec * self.D
        for r, n in plan:
            prefill += n
            kv += r.computed
        self._plan = plan
        dt = self.cost.step_time(prefill, n_dec, kv, new, len(plan))
        if self._crowd is not None and self._crowd.others_busy(self, t):
            dt = (dt + self.cost.cohost_beta2 * n_dec) * (1.0 + self.cost.cohost_slowdown)
        if self._stall is not None and self._stall_rng.random() < min(
                self.cost.step_stall_rate * (n_dec + len(plan)), 0.5):
            dt += self._stall.draw()
        self._t_end = t + dt
        if self.step_log is not None:
            self.step_log.append({
                "t": t, "seconds": dt, "prefill": prefill, "decode": n_dec, "kv_read": kv,
                "new": new, "running": len(running), "kv_blocks": self.used_blocks,
            })

    def _admit_cached(self, r: _Req, hk: int, ho: int) -> None:
        """An admitted request's prefix-cache hit: its computed tokens start at the hit,
        and the hit blocks count as its own in the engine's per-request books."""
        assert self._pc is not None  # hits come only from the prefix cache
        self._pc.admit(r.pfx, hk, ho, r.prompt + r.n_out, self.bs)
        r.computed = (hk + ho) * self.bs
        self.used_blocks += hk + ho

    def _admissible(self, r: _Req, left: int, free: int) -> bool:
        """Whether the waiting-queue pass would admit `r` now (its hit counted)."""
        if r.pfx is not None and self._pc is not None:  # a prefix only with caching on
            hk, ho, hfree = self._pc.lookup(r.pfx, (r.prompt + r.n_out - 1) // self.bs)
        else:
            hk = ho = hfree = 0
        return -(-min(r.prompt + r.n_out - (hk + ho) * self.bs, left) // self.bs) + hfree <= free

    def _blocked_look(self, head: _Req) -> tuple[int, int]:
        """(tokens, hits) of the waiting head that fast-forwarded steps cannot admit."""
        tokens = head.prompt + head.n_out
        hits = 0
        if head.pfx is not None and self._pc is not None:
            hk, ho, _ = self._pc.lookup(head.pfx, (tokens - 1) // self.bs)
            hits = (hk + ho) * self.bs
        return tokens, hits

    def _try_macro(self, t: float) -> bool:
        """Fast-forward identical decode-only steps; False when a normal step is needed."""
        # Long on purpose: every condition that makes a fast-forward exact, in one place.
        n = self._n_dec
        if (self.token_events or self.step_log is not None or n == 0 or self._prefill
                or self._crowd is not None or self._stall is not None):
            return False
        pc = self._pc
        free = self.num_blocks - self.used_blocks - (pc.adj if pc is not None else 0)
        head = None
        if self._n_waiting and len(self._running) < self.max_seqs:
            head = self._peek_waiting()
            if head is not None and (
                    -(-min(head.prompt + head.n_out, self.max_tokens - n) // self.bs) <= free
                    if head.pfx is None
                    else self._admissible(head, self.max_tokens - n, free)):
                return False  # it would be admitted now
        if pc is not None and pc.live:
            ahead = pc.anon_head()
            if ahead is not None:
                free = min(free, ahead)  # evict no cached block in a fast-forward
        fin = self._finish
        while fin and (fin[0][3].gen != fin[0][2] or fin[0][3].state != _DEC):
            heapq.heappop(fin)
        k = fin[0][0] - self.D if fin else 0
        if k < 2:
            return False  # a decoder finishes after the next step: nothing to skip
        # steps until the blocks run out: a decoder needs a block at D when (c + D) % bs == 0
        bs, D, res = self.bs, self.D, self._res
        cycles = free // n
        rem = free - cycles * n
        j = 0
        acc = 0
        while j < bs:
            acc += res[(-(D + cycles * bs + j)) % bs]
            if acc > rem:
                break
            j += 1
        k = min(k, cycles * bs + j)
        if k < 2:
            return False
        c = self.cost
        b3 = c.kv_cost(n)  # the same in every step: n sequences, one query token each
        if c.mem_s and c.beta1 * n > c.mem_s + b3 * (self._dec_c_sum + n * D):
            return False  # compute-bound decode steps do not grow by β3 per step
        taken = self._dec_blocks(0, k)
        self.used_blocks += taken
        if pc is not None and pc.live:
            pc.take(taken)
        self._real = True
        self._inflight = k
        first = c.beta0 + c.beta2 * n + b3 * (self._dec_c_sum + n * D)
        if c.mem_s:  # what the overlap leaves showing of the decode tokens' compute, and
            first += (c.unhidden * c.beta1 + c.beta5) * n  # their elementwise work
        g = b3 * n
        self._macro_k = k
        self._macro_c = first
        self._macro_g = g
        if head is not None and self._log_hits:  # looked up, and refused, at every step
            self._macro_look = self._blocked_look(head)
        self._t_end = t + k * first + g * k * (k - 1) / 2
        return True

    def _cut_macro(self, now: float) -> None:
        """End the fast-forward at the first step boundary at or after `now`."""
        k, c, g, t0 = self._macro_k, self._macro_c, self._macro_g, self._t_start
        lo, hi = 1, k  # smallest j with t0 + j*c + g*j*(j-1)/2 >= now
        while lo < hi:
            mid = (lo + hi) // 2
            if t0 + mid * c + g * mid * (mid - 1) / 2 >= now:
                hi = mid
            else:
                lo = mid + 1
        j = lo
        if j == k:
            return
        back = self._dec_blocks(j, k)  # give back steps j..k-1
        self.used_blocks -= back
        pc = self._pc
        if pc is not None and pc.live:
            pc.give_back(back)
        self._macro_k = j
        self._inflight = j
        self._t_end = t0 + j * c + g * j * (j - 1) / 2
