"""SLO admission control: reject at arrival what cannot be served on time, shed
from the queue what can no longer be.

Why: goodput, not queue length, is what a scheduler is judged by. Past
capacity a queue that takes everything makes *every* request late; one that
admits only what the work ahead leaves time for keeps the admitted ones on
time (DistServe's goodput, QLM and SLOs-Serve's admission).

Prediction of a new request's first token, from the work ahead of it:

* `ahead` — queued requests the policy will serve before it (its rank in the
  policy's order, from the policy);
* free slots now — per backend, what its slot count, vLLM's max_num_seqs and
  the KV capacity left still take;
* if `ahead` fits in the free slots the request waits for nothing; otherwise
  it waits for `ahead - free + 1` departures at the backends' departure rate
  μ (Little's law on each), less the rate of later arrivals that will be
  ordered before it (tighter tiers, higher priority) — they take slots first;
* plus its own prefill on the best backend (scheduler.predict).

A request with no SLO is never rejected or shed. The reasons are
`slo_infeasible` (at arrival) and `slo_shed` (from the queue).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from scheduler.backends import BackendState
from vocab import Request

if TYPE_CHECKING:
    from scheduler.core import ControlPlane

INF = float("inf")
REJECT_REASON = "slo_infeasible"
SHED_REASON = "slo_shed"
_RATE_TAU_S = 5.0  # time constant of the arrival-rate estimates


class _Rates:
    """Exponentially decayed event rates (events/s, time constant τ) per key.

    All keys decay by the same factor, so their values are kept scaled to one
    reference time and the sum over any subset costs one exp, not one per key.
    """

    __slots__ = ("t_ref", "scaled")

    def __init__(self) -> None:
        self.t_ref = 0.0
        self.scaled: dict[int, float] = {}

    def tick(self, key: int, now: float) -> None:
        x = (now - self.t_ref) / _RATE_TAU_S
        if x > 20.0 or not self.scaled:
            # rebase to `now` before the scale grows past what a float holds (a live
            # clock starts in the thousands of seconds): values decay to today's
            f = math.exp(-x) if x < 700.0 else 0.0
            self.scaled = {k: v * f for k, v in self.scaled.items()}
            self.t_ref, x = now, 0.0
        self.scaled[key] = self.scaled.get(key, 0.0) + math.exp(x) / _RATE_TAU_S

    def below(self, key: int, now: float) -> float:
        """Total rate of the keys smaller than `key` at `now`."""
        total = 0.0
        for k, v in self.scaled.items():
            if k < key:
                total += v
        return total * _decay(now - self.t_ref) if total else 0.0

    def total(self, now: float) -> float:
        total = sum(self.scaled.values())
        return total * _decay(now - self.t_ref) if total else 0.0


def _decay(dt: float) -> float:
    """exp(-dt/τ), 0 for a gap too long to matter (no overflow either way)."""
    x = -dt / _RATE_TAU_S
    return math.exp(x) if x > -700.0 else 0.0


class Admission:
    """Feasibility of a request's SLOs given the work ahead (see module doc)."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        # admitted LLM arrivals per order offset (policy key − arrival, 50 ms): the ones
        # with a smaller offset arriving later are served first
        self._rates = _Rates()
        self.mean_output = 128.0  # EWMA of LLM requests' output tokens
        self._departures = _Rates()  # LLM completions per second, measured (one key)

    def departed(self, now: float) -> None:
        """An LLM request finished: the measured departure rate goes up."""
        self._departures.tick(0, now)

    # -- at arrival -------------------------------------------------------------
    def reject_at_arrival(self, req: Request, ahead: int, offset_s: float, now: float) -> bool:
        """True when the request cannot meet an SLO it carries (it is then rejected)."""
        if req.cls == "embedding":
            return self._embedding_late(req, self.cp.capable["embedding"], now)
        self.mean_output += 0.05 * (req.output_tokens - self.mean_output)
        late = self._llm_late(req, ahead, offset_s, now)
        if not late:
            self._rates.tick(_bucket(offset_s), now)
        return late

    def _llm_late(self, req: Request, ahead: int, offset_s: float, now: float) -> bool:
        ttft_dl, e2e_dl = _deadlines(req)
        if ttft_dl == INF and e2e_dl == INF:
            return False
        prompt, out = req.prompt_tokens, req.output_tokens
        need = prompt + out
        decode = e2e_dl < INF and out > 1
        free = 0
        best_ttft, best = INF, None
        ups = []
        for b in self.cp.capable[req.cls]:
            if not b.up:
                continue
            ups.append(b)
            free += _free_slots(b, need)
            t = b.predict_ttft(prompt)
            if t < best_ttft:
                best_ttft, best = t, b
            # Feasible already: it waits for no slot (free only grows) and this
            # backend meets its deadlines. The common case below capacity stops here.
            if ahead < free and now + t <= ttft_dl and (
                    not decode or now + t + (out - 1) * b.predict_tpot() <= e2e_dl):
                return False
        if best is None:
            return False  # nothing up: it waits for a backend, as without admission
        wait = 0.0
        if ahead >= free:
            mu = 0.0
            for b in ups:
                mu += b.departure_rate(self.mean_output)
            # Busy backends finish requests at least as fast as measured lately.
            mu = max(mu, self._departures.total(now))
            over = self._overtake_rate(offset_s, now)
            wait = (ahead - free + 1) / max(mu - over, 0.25 * mu, 1e-9)
        first = now + wait + best_ttft
        if first > ttft_dl:
            return True
        return decode and first + (out - 1) * best.predict_tpot() > e2e_dl

    def _overtake_rate(self, offset_s: float, now: float) -> float:
        """Admitted arrivals per second that will be ordered before this request: a
        clearly smaller offset (a tighter tier, a higher priority level), not the
        few milliseconds a longer prompt's predicted prefill takes off."""
        return self._rates.below(_bucket(offset_s - 0.1 * abs(offset_s) - 0.01), now)

    def _embedding_late(self, req: Request, cands: list[BackendState], now: float) -> bool:
        dl = req.deadline
        if dl == INF:
            return False
        tokens = req.text_tokens or req.n_texts
        seen = False
        for b in cands:  # feasible as soon as one backend meets the deadline
            if b.up:
                seen = True
                if _batch_done(b, tokens, now) <= dl:
                    return False
        return seen

    # -- at dispatch ------------------------------------------------------------
    def shed_now(self, req: Request, b: BackendState, now: float) -> bool:
        """True when the request, sent to `b` now, would still miss an SLO."""
        if req.cls == "embedding":
            return _batch_done(b, req.text_tokens or req.n_texts, now) > req.deadline
        ttft_dl, e2e_dl = _deadlines(req)
        if ttft_dl == INF and e2e_dl == INF:
            return False
        first = now + b.predict_ttft(req.prompt_tokens)
        done = first + max(req.output_tokens - 1, 0) * b.predict_tpot()
        return first > ttft_dl or done > e2e_dl


def _batch_done(b: BackendState, tokens: int, now: float) -> float:
    """When an embedding batch of `tokens` sent to `b` now would be done: after the
    batches in flight there, then its own time."""
    return b.free_at(now) + b.estimate("embedding", tokens)


def _bucket(offset_s: float) -> int:
    """Order offsets in 50 ms buckets: tiers and priority levels apart, a few
    buckets in all, so summing the rates below one stays cheap."""
    return math.floor(offset_s * 20)


def _deadlines(req: Request) -> tuple[float, float]:
    """(first-token deadline, end-to-end deadline) of an LLM request; INF if none."""
    a = req.arrival
    ttft = INF if req.slo_ttft_ms is None else a + req.slo_ttft_ms / 1000.0
    e2e = INF if req.slo_e2e_ms is None else a + req.slo_e2e_ms / 1000.0
    return ttft, e2e


def _free_slots(b: BackendState, need: int) -> int:
    """Requests of KV size `need` this backend would take now."""
    n = b.max_conc - b.in_flight
    m = b.max_seqs - b.n_llm
    if m < n:
        n = m
    if b.kv_cap is not None:
        m = (b.kv_cap - b.kv_reserved) // (need or 1)
        if m < n:
            n = m
    return n if n > 0 else 0
