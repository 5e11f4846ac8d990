"""hybrid: one control plane for LLM and embedding traffic, with SLO tiers,
priority and admission.

Rules (parameters in `[control_plane.hybrid]`, defaults and reasons in
docs/policies.md):

* LLM requests are ordered by slack with priority as a weight: key = the
  latest start that meets every SLO the request carries (as `slo`) +
  priority·`aging_s`. A tight-tier request goes ahead of a loose one, a p0
  ahead of a p4 of the same tier, and each `aging_s` of slack is worth one
  priority level — so neither pure priority nor pure deadline order.
* Admission is on by default: arrivals whose SLO the work ahead leaves no
  time for are rejected, queued ones whose deadline became unreachable are
  shed (scheduler.admission).
* Embeddings are batched only when they queue: with a backend free and
  nothing queued an embedding goes at once; what queues while the backends
  are busy leaves as one batch (up to `batch_max_texts`) when one frees.
  `batch_max_wait_ms` > 0 additionally holds a small batch that long.
* A batch goes to the backend with the earliest predicted completion (its
  backlog plus the batch's a + b·tokens); among backends within
  `cost_tolerance` of that, the cheapest (CPU before GPU). With
  `embedding_placement = "cheapest-in-slo"`, the cheapest whose predicted
  completion meets the batch's tightest deadline (CPU nodes first while they
  keep up), else the earliest.
* On a backend that hosts an LLM too, a batch fits into the LLM's slack: a
  host whose decode step plus the batch would exceed 90 % of the tightest
  TPOT SLO seen gets no batch; and while both classes wait, each class keeps
  to its share of the slots (`shares`), so a flood of one cannot starve the other.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections import deque
from operator import attrgetter

from scheduler.actions import Reject
from scheduler.admission import SHED_REASON
from scheduler.backends import BackendState
from scheduler.policies.base import Policy, Selection, router_pick
from scheduler.policies.slo import nominal_backends, slack_key
from vocab import LLM_CLASSES, Request

INF = float("inf")
_by_cost_rank = attrgetter("cost_rank")
TPOT_HEADROOM = 0.9  # a shared host keeps its decode step under 90 % of the TPOT SLO


class HybridPolicy(Policy):
    name = "hybrid"
    direct_classes = frozenset(("chat", "completion", "embedding"))

    def __init__(self, cp) -> None:
        super().__init__(cp)
        p = cp.config.hybrid
        self.max_texts = p.batch_max_texts
        self.wait_s = p.batch_max_wait_ms / 1000.0
        if self.wait_s > 0:  # a window holds even a lone embedding with a backend free
            self.direct_classes = frozenset(LLM_CLASSES)
        self.aging_s = p.aging_s
        self.cost_tolerance = p.cost_tolerance
        self.cheapest_in_slo = p.embedding_placement == "cheapest-in-slo"
        self.shares = dict(p.shares)
        self.llm: dict[str, list] = {c: [] for c in LLM_CLASSES}
        self.emb: dict[str, deque[Request]] = {}
        self.emb_texts: dict[str, int] = {}
        self._seq = itertools.count()
        self._nominal = nominal_backends(cp)
        self._cap = {b.name: {g: math.ceil(s * b.max_conc) for g, s in self.shares.items()}
                     for b in cp.backend_list}
        self.tightest_tpot = INF  # the tightest TPOT SLO among LLM requests seen

    # -- ordering -----------------------------------------------------------
    def key(self, req: Request) -> float:
        return slack_key(req, self._nominal[req.cls]) + req.priority * self.aging_s

    order_key = key  # admission ranks arrivals in this very order

    def push(self, req: Request, now: float) -> None:
        if req.cls == "embedding":
            dq = self.emb.get(req.model)
            if dq is None:
                dq = self.emb[req.model] = deque()
                self.emb_texts[req.model] = 0
            dq.append(req)
            self.emb_texts[req.model] += req.n_texts
        else:
            self._note_tpot(req)
            heapq.heappush(self.llm[req.cls], (self.key(req), next(self._seq), req))

    def _note_tpot(self, req: Request) -> None:
        t = req.slo_tpot_ms
        if t is not None and t / 1000.0 < self.tightest_tpot:
            self.tightest_tpot = t / 1000.0

    def requeue(self, req: Request, now: float) -> None:
        if req.cls != "embedding" or not self.emb.get(req.model):
            return self.push(req, now)
        items = list(self.emb[req.model])
        bisect.insort(items, req, key=lambda r: r.arrival)
        self.emb[req.model] = deque(items)
        self.emb_texts[req.model] += req.n_texts

    # -- embeddings ---------------------------------------------------------
    def _ready(self, model: str, now: float) -> bool:
        dq = self.emb[model]
        if not dq:
            return False
        return (self.wait_s == 0 or self.emb_texts[model] >= self.max_texts
                or now >= dq[0].arrival + self.wait_s)

    def _take_batch(self, model: str) -> list[Request]:
        dq = self.emb[model]
        batch = [dq.popleft()]
        texts = batch[0].n_texts
        while dq and texts + dq[0].n_texts <= self.max_texts:
            r = dq.popleft()
            batch.append(r)
            texts += r.n_texts
        self.emb_texts[model] -= texts
        return batch

    def next_timer(self, now: float) -> float | None:
        if self.wait_s == 0:
            return None
        t_min = None
        for model, dq in self.emb.items():
            if dq and self.emb_texts[model] < self.max_texts:
                t = dq[0].arrival + self.wait_s
                if t > now and (t_min is None or t < t_min):
                    t_min = t
        return t_min

    def _batch_tokens(self, model: str) -> tuple[int, float]:
        """Tokens and tightest deadline of the batch that would leave now."""
        texts = tokens = 0
        deadline = INF
        for r in self.emb[model]:
            if texts and texts + r.n_texts > self.max_texts:
                break
            texts += r.n_texts
            tokens += r.text_tokens or r.n_texts
            deadline = min(deadline, r.deadline)
        return tokens, deadline

    def place_batch(self, tokens: int, free: list[BackendState], now: float,
                    deadline: float = INF) -> BackendState | None:
        """Earliest predicted completion; the cheapest within `cost_tolerance` of
        it (or, placing `cheapest-in-slo`, the cheapest that meets the deadline);
        a shared host only where the batch fits into its LLM's TPOT slack."""
        scored = []
        best_t = INF
        slack_bound = self.tightest_tpot != INF  # else every batch fits an LLM's slack
        for b in free:
            svc = b.estimate("embedding", tokens)
            if slack_bound and b.mixed and b.n_llm and not self._fits_llm_slack(b, svc):
                continue
            t = b.free_at(now) + svc
            if t < best_t:
                best_t = t
            scored.append((t, b))
        if not scored:
            return None
        limit = now + (best_t - now) * (1 + self.cost_tolerance)
        if self.cheapest_in_slo and deadline < INF:
            limit = max(limit, deadline)
        return min((b for t, b in scored if t <= limit), key=_by_cost_rank)

    def _fits_llm_slack(self, b: BackendState, batch_s: float) -> bool:
        if self.tightest_tpot == INF:
            return True
        return b.predict_tpot(0) + batch_s <= TPOT_HEADROOM * self.tightest_tpot

    def route(self, req: Request, cands: list[BackendState], now: float
              ) -> BackendState | Reject:
        if req.cls != "embedding":
            if req.slo_tpot_ms is not None:
                self._note_tpot(req)  # the direct path from the core skips push()
            return router_pick(self.cp, req, cands, now)
        b = self.place_batch(req.text_tokens or req.n_texts, cands, now, req.deadline)
        if b is None:  # every free host is an LLM's at its TPOT limit: the least loaded
            b = min(cands, key=lambda x: x.n_llm)
        return b

    # -- shares -------------------------------------------------------------
    def _allowed(self, b: BackendState, group: str, other_waiting: bool) -> bool:
        if not (b.mixed and other_waiting):
            return True
        return b.in_flight_group[group] < self._cap[b.name][group]

    # -- selection ----------------------------------------------------------
    def select(self, now: float) -> Selection:
        llm = self.llm
        llm_waiting = bool(llm["chat"] or llm["completion"])
        ready = [m for m in self.emb if self._ready(m, now)]
        if not (ready or llm_waiting):
            return None
        emb_model, emb_key, emb_target = self._embedding_choice(ready, llm_waiting, now)
        best, cands = self._llm_choice(emb_target) if llm_waiting else (None, None)
        if emb_model is not None and (best is None or emb_key <= best[0]):
            return self._take_batch(emb_model), emb_target
        if best is None:
            return None
        assert cands is not None  # _llm_choice finds both or neither
        req = heapq.heappop(llm[best[2].cls])[2]
        b = cands[0] if len(cands) == 1 and self.lone_is_choice else \
            router_pick(self.cp, req, cands, now)
        adm = self.cp.admission
        if adm is not None and adm.shed_now(req, b, now):
            return Reject(req, SHED_REASON)
        return (req,), b

    def _embedding_choice(self, ready: list[str], llm_waiting: bool, now: float):
        """(model, order key, backend) of the batch that could go now, or Nones."""
        if not ready:
            return None, INF, None
        cands = self.cp.free["embedding"]
        if llm_waiting and cands:
            waiting = [c for c, h in self.llm.items() if h]
            cands = [b for b in cands if self._allowed(
                b, "embedding", any(c in b.caps for c in waiting))]
        if not cands:
            return None, INF, None
        if len(ready) == 1:
            model = ready[0]
            key = self.key(self.emb[model][0])
        else:
            key, model = min((self.key(self.emb[m][0]), m) for m in ready)
        tokens, deadline = self._batch_tokens(model)
        target = self.place_batch(tokens, cands, now, deadline)
        if target is None:
            return None, INF, None
        return model, key, target

    def _llm_choice(self, emb_target: BackendState | None):
        """The first LLM queue head with a backend that has room for it."""
        best = best_cands = None
        fitting = self.cp.fitting
        for cls, heap in self.llm.items():
            if not heap or (best is not None and heap[0] >= best):
                continue
            cands = self.cp.free[cls]
            if emb_target is not None and emb_target.mixed and emb_target in cands:
                # The batch waits for this shared backend: LLM keeps to its share.
                cands = [b for b in cands if b is not emb_target
                         or self._allowed(b, "llm", True)]
            cands = fitting(heap[0][2], cands) if cands else cands
            if cands:
                best, best_cands = heap[0], cands
        return best, best_cands

    def drain(self) -> list[Request]:
        out = [e[2] for h in self.llm.values() for e in h]
        for h in self.llm.values():
            h.clear()
        for m, dq in self.emb.items():
            out.extend(dq)
            dq.clear()
            self.emb_texts[m] = 0
        return out
