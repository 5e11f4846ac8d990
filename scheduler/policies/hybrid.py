"""hybrid: HybridSchedulingPolicy — one control plane for LLM and embedding traffic.

Rules (parameters in `[control_plane.hybrid]`, defaults and reasons in
docs/policies.md):

* Embeddings are batched per model: a batch opens when its first request is
  queued and is released when it holds `batch_max_texts` texts or when
  `batch_max_wait_ms` has passed since it opened — a SetTimer really holds
  the window open and flushes it. A released batch is one dispatch.
* Each batch is routed by estimated completion time (fitted a + b·tokens per
  backend): dedicated embedding backends before shared ones, CPU before GPU,
  cheaper before dearer, the first that meets the batch's tightest deadline;
  if none does, it spills to the one that finishes first (usually a GPU).
* LLM requests are ordered SLO-aware with priority aging: key = deadline
  (arrival + TTFT SLO, or `default_slo_ms`) + priority·aging_s.
* Shares: on a backend that serves both classes, while both classes wait, a
  class may hold at most ceil(share·max_concurrency) of its slots; when only
  one class waits it may use them all (work-conserving). A flood of one class
  thus cannot starve the other.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections import deque

from scheduler.backends import BackendState
from scheduler.policies.base import Policy, Selection, router_pick
from scheduler.request import LLM_CLASSES, Request

INF = float("inf")


class HybridPolicy(Policy):
    name = "hybrid"
    direct_classes = frozenset(LLM_CLASSES)  # embeddings wait for their batch window

    def __init__(self, cp) -> None:
        super().__init__(cp)
        p = cp.config.hybrid
        self.max_texts = p.batch_max_texts
        self.wait_s = p.batch_max_wait_ms / 1000.0
        self.aging_s = p.aging_s
        self.default_slo_s = p.default_slo_ms / 1000.0
        self.shares = dict(p.shares)
        self.llm: dict[str, list] = {c: [] for c in LLM_CLASSES}
        self.emb: dict[str, deque[Request]] = {}
        self.emb_texts: dict[str, int] = {}
        self._seq = itertools.count()
        self._recheck = INF  # when a batch held for a busy backend must be reconsidered
        self._emb_ranked = sorted(cp.capable["embedding"], key=lambda b: b.cost_rank)
        self._cap = {b.name: {g: math.ceil(s * b.max_conc) for g, s in self.shares.items()}
                     for b in cp.backend_list}

    # -- ordering -----------------------------------------------------------
    def key(self, req: Request) -> float:
        slo = req.slo_s
        return req.arrival + (self.default_slo_s if slo is None else slo) \
            + req.priority * self.aging_s

    def push(self, req: Request, now: float) -> None:
        if req.cls == "embedding":
            dq = self.emb.get(req.model)
            if dq is None:
                dq = self.emb[req.model] = deque()
                self.emb_texts[req.model] = 0
            dq.append(req)
            self.emb_texts[req.model] += req.n_texts
        else:
            heapq.heappush(self.llm[req.cls], (self.key(req), next(self._seq), req))

    def requeue(self, req: Request, now: float) -> None:
        if req.cls != "embedding" or not self.emb.get(req.model):
            return self.push(req, now)
        items = list(self.emb[req.model])
        bisect.insort(items, req, key=lambda r: r.arrival)
        self.emb[req.model] = deque(items)
        self.emb_texts[req.model] += req.n_texts

    # -- batching -----------------------------------------------------------
    def _ready(self, model: str, now: float) -> bool:
        dq = self.emb[model]
        return bool(dq) and (self.emb_texts[model] >= self.max_texts
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
        rc = self._recheck
        t_min = rc if now < rc < INF else None
        self._recheck = INF
        for model, dq in self.emb.items():
            if dq and self.emb_texts[model] < self.max_texts:
                t = dq[0].arrival + self.wait_s
                if t > now and (t_min is None or t < t_min):
                    t_min = t
        return t_min

    # -- batch routing ------------------------------------------------------
    def _route_batch(self, model: str, free: list[BackendState], now: float
                     ) -> BackendState | None:
        """Cost order (dedicated, CPU, cheap first): the first backend whose estimated
        completion (its in-flight batches' backlog, then this batch) meets the batch's
        deadline. A free one gets the batch now; a busy
        dedicated one that frees in time keeps it waiting (None) — that is what makes
        "prefer the cheap backend" real under load. If none can meet the deadline,
        spill to the free backend that finishes first (None if none is free)."""
        dq = self.emb[model]
        texts = tokens = 0
        deadline = INF
        for r in dq:
            if texts and texts + r.n_texts > self.max_texts:
                break
            texts += r.n_texts
            tokens += r.text_tokens or r.n_texts
            if r.deadline < deadline:
                deadline = r.deadline
        if deadline == INF:
            deadline = dq[0].arrival + self.default_slo_s
        for b in self._emb_ranked:
            if not b.up:
                continue
            svc = b.estimate("embedding", tokens)
            if b in free:
                if now + b.backlog(now) + svc <= deadline:
                    return b
            elif b.dedicated_embedding and now + b.backlog(now) + svc <= deadline:
                # Wait — but look again when spilling is the last chance, even if no
                # other event comes (a backend that stops answering).
                spill = min((deadline - x.estimate("embedding", tokens) for x in free),
                            default=INF)
                if now < spill < self._recheck:
                    self._recheck = spill
                return None
        best, best_t = None, INF
        for b in free:
            t = now + b.backlog(now) + b.estimate("embedding", tokens)
            if t < best_t:
                best, best_t = b, t
        return best

    # -- shares -------------------------------------------------------------
    def _allowed(self, b: BackendState, group: str, other_waiting: bool) -> bool:
        if not (b.mixed and other_waiting):
            return True
        return b.in_flight_group[group] < self._cap[b.name][group]

    # -- selection ----------------------------------------------------------
    def select(self, now: float) -> Selection:
        cp = self.cp
        max_texts, wait_s, texts = self.max_texts, self.wait_s, self.emb_texts
        ready = []  # models whose batch is full or whose window has closed
        for m, dq in self.emb.items():
            if dq and (texts[m] >= max_texts or now >= dq[0].arrival + wait_s):
                ready.append(m)
        llm = self.llm
        llm_waiting = bool(llm["chat"] or llm["completion"])
        if not (ready or llm_waiting):
            return None  # only open batch windows: nothing to decide until a timer or arrival

        best_model, best_emb_key, emb_target = None, INF, None
        if ready:
            cands = cp.free["embedding"]
            if llm_waiting and cands:
                waiting = [c for c, h in llm.items() if h]
                cands = [b for b in cands if self._allowed(
                    b, "embedding", any(c in b.caps for c in waiting))]
            for m in ready:
                k = self.key(self.emb[m][0])
                if best_model is None or k < best_emb_key:
                    best_model, best_emb_key = m, k
            emb_target = self._route_batch(best_model, cands, now)
            if emb_target is None:
                best_model = None  # held for a cheaper backend, or no slot

        best_llm, llm_cands = None, None
        if llm_waiting:
            for cls, heap in llm.items():
                if heap and (best_llm is None or heap[0] < best_llm):
                    cands = cp.free[cls]  # the core's list, not to be modified
                    if emb_target is not None and emb_target.mixed and emb_target in cands:
                        # The batch waits for this shared backend: LLM keeps to its share.
                        cands = [b for b in cands if b is not emb_target
                                 or self._allowed(b, "llm", True)]
                    if cands:
                        best_llm, llm_cands = heap[0], cands

        if best_model is not None and (best_llm is None or best_emb_key <= best_llm[0]):
            return self._take_batch(best_model), emb_target
        if best_llm is not None:
            req = heapq.heappop(llm[best_llm[2].cls])[2]
            if len(llm_cands) == 1 and self.lone_is_choice:
                return (req,), llm_cands[0]
            return (req,), router_pick(cp, req, llm_cands, now)
        return None

    def drain(self) -> list[Request]:
        out = [e[2] for h in self.llm.values() for e in h]
        for h in self.llm.values():
            h.clear()
        for m, dq in self.emb.items():
            out.extend(dq)
            dq.clear()
            self.emb_texts[m] = 0
        return out
