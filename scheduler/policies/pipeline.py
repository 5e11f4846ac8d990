"""Pipeline-aware policies: they order a job's calls by what is left of the job.

Why: under per-call FIFO every stage of a pipeline queues again behind
unrelated calls, so a job's tail latency compounds over its hops. A call
carries its job's end-to-end deadline, the work left after it and the service
its job already received (vocab.Request, docs/pipelines.md); these policies
read them. Keys are static (set at push), so each queue stays a heap.

* `pipeline-slack`: least slack on the job's deadline first. Slack = deadline
  − (predicted service of this call + of the work after it) − now; `now` is
  the same for every candidate, so the key drops it. The prediction prices
  output tokens at the fastest backend's time per token as loaded when the
  call is queued (corrected by what was observed), so the key stays static. Calls outside pipelines
  keep `slo`'s slack on their own SLO.
* `pipeline-las`: program-level least attained service (Autellix's PLAS): the
  call of the job that has received the least engine time goes first. Static
  keys cannot age, so a second of attained service counts as `las_weight`
  seconds of later arrival: a long job is overtaken by newer short ones for a
  bounded time, never forever. A plain call is a program with no service.
* `pipeline-fcfs`: program-level first come, first served: a call goes in the
  order of its job's start, so a job's later stages overtake the calls of jobs
  that started after it (per-call FIFO puts them behind every call released
  before them, at every hop). A plain call is a job that starts when it arrives.

* `pipeline-hybrid`: `pipeline-fcfs`'s order while every queued call can wait its
  turn, least slack for the calls that cannot. A call is at risk when its latest
  start comes before the queue ahead of it has drained (the predicted service of
  every queued call of its class over the class's slots): FCFS could make it wait
  that long, so the most urgent of those goes first. Nothing is tuned: the
  threshold is the queue's own predicted drain time. Admission ranks an arrival
  by latest start (`order_key`): the order that decides whether it starts in time.

All three shed, with admission control on (its default for them, as for `slo`), a
call whose job can no longer make its deadline (`slo_shed`; the job fails with
it) rather than run it.
* `staggered`: FIFO, but a new job's first calls are held and admitted one job
  at a time, `stagger_ms` apart (0: 0.9 × the mean gap between the jobs seen
  so far, a pace just above the offered one), as upstream SAGE's own pipeline
  baseline spaces its jobs. Calls of admitted jobs and plain calls are not held.
"""

from __future__ import annotations

import heapq

from scheduler.actions import Reject
from scheduler.admission import SHED_REASON
from scheduler.policies.base import HeapPolicy, Selection
from scheduler.policies.slo import NO_SLO, nominal_backends, slack_key
from vocab import SCHEDULED_CLASSES, Request


def _tpot(llm) -> float:
    """Seconds per output token on `llm` as it is loaded now, corrected by what was
    observed there (a decode step in a full batch costs far more than beta0 alone)."""
    return llm.predict_tpot()


def service_s(req: Request, b) -> float:
    """Predicted engine time of `req` on backend `b` at its present load."""
    if b is None:
        return 0.0
    if req.cls == "embedding":
        return b.emb_est.predict(req.text_tokens or req.n_texts)
    return b.model.beta1 * req.prompt_tokens + _tpot(b) * req.output_tokens


def rest_s(req: Request, llm) -> float:
    """Predicted time of the job's work after `req` (its longest remaining path)."""
    if llm is None:
        return req.rest_local_s
    return (req.rest_local_s + llm.model.beta1 * req.rest_prompt_tokens
            + _tpot(llm) * req.rest_output_tokens)


class _DeadlinePolicy(HeapPolicy):
    """What the deadline-reading policies share: a call's latest start (its job's
    deadline less the predicted time of this call and of the job's work after it)
    and, with admission control on, shedding a call whose latest start has passed:
    its job can no longer make its deadline, and under overload the engines' time
    goes to jobs that still can."""

    def __init__(self, cp) -> None:
        super().__init__(cp)
        self._nominal = nominal_backends(cp)
        self._shed = cp.admission is not None

    def latest_start(self, req: Request) -> float:
        return (req.pipeline_deadline - rest_s(req, self._nominal["chat"])  # type: ignore[operator]  # callers check it
                - service_s(req, self._nominal[req.cls]))

    def select(self, now: float) -> Selection:
        choice = super().select(now)
        if type(choice) is tuple and self._hopeless(choice[0][0], now):
            return Reject(choice[0][0], SHED_REASON)
        return choice

    def route(self, req: Request, cands: list, now: float):
        """An arrival routed straight to a free backend is judged the same way."""
        if self._hopeless(req, now):
            return Reject(req, SHED_REASON)
        return super().route(req, cands, now)

    def _hopeless(self, req: Request, now: float) -> bool:
        return (self._shed and req.pipeline_deadline is not None
                and self.latest_start(req) < now)

    def push(self, req: Request, now: float) -> None:
        heapq.heappush(self.heaps[req.cls], (self.key(req), next(self._seq), req))


class PipelineSlackPolicy(_DeadlinePolicy):
    name = "pipeline-slack"

    def key(self, req: Request) -> float:
        if req.pipeline_deadline is None:
            if req.parent_id is not None:
                return NO_SLO + req.arrival  # a job without a deadline: after all with one
            return slack_key(req, self._nominal[req.cls])
        return self.latest_start(req)


class PipelineFCFSPolicy(_DeadlinePolicy):
    name = "pipeline-fcfs"

    def key(self, req: Request) -> float:
        s = req.pipeline_start
        return req.arrival if s is None else s


class PipelineHybridPolicy(PipelineFCFSPolicy):
    """Two views of one queue per class: by job start (the order served) and by
    latest start (checked first). Entries are dropped lazily: a call is live while
    its sequence number is in `_svc`."""

    name = "pipeline-hybrid"

    def __init__(self, cp) -> None:
        super().__init__(cp)
        self.urgent: dict[str, list] = {c: [] for c in SCHEDULED_CLASSES}
        self._svc: dict[int, float] = {}  # live call -> its predicted service (s)
        self.queued_s = dict.fromkeys(SCHEDULED_CLASSES, 0.0)
        self.slots = {c: sum(b.max_conc for b in cp.capable[c]) or 1 for c in SCHEDULED_CLASSES}
        self._by_cls = [(c, self.heaps[c], cp.free[c]) for c in SCHEDULED_CLASSES if cp.capable[c]]

    def _latest(self, req: Request) -> float:
        if req.pipeline_deadline is not None:
            return self.latest_start(req)
        return slack_key(req, self._nominal[req.cls])  # plain: its own SLO's; none: never

    def order_key(self, req: Request) -> float:
        """Admission ranks an arrival by latest start, as this policy serves a call
        once job order would start it too late: a call misses its deadline only when
        the calls more urgent than it fill the slots until its latest start; calls
        of older jobs with more slack than it are overtaken then, so they do not
        count against it."""
        return self._latest(req)

    def push(self, req: Request, now: float) -> None:
        seq, c = next(self._seq), req.cls
        svc = service_s(req, self._nominal[c])
        self._svc[seq] = svc
        self.queued_s[c] += svc
        heapq.heappush(self.heaps[c], (self.key(req), seq, req))
        heapq.heappush(self.urgent[c], (self._latest(req), seq, req))

    def _head(self, heap: list):
        while heap and heap[0][1] not in self._svc:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def _candidate(self, c: str, heap: list, now: float):
        """This class's next call and its rank: an at-risk call by latest start
        before any other, else the oldest job's."""
        first = self._head(heap)
        if first is None:
            return None
        risk = self._head(self.urgent[c])
        if risk is not None and risk[0] < now + self.queued_s[c] / self.slots[c]:
            return (0, risk[0]), risk
        return (1, first[0]), first

    def select(self, now: float) -> Selection:
        best = None
        for c, heap, cands in self._by_cls:
            if not cands:
                continue
            got = self._candidate(c, heap, now)
            if got is None or (best is not None and got[0] >= best[0]):
                continue
            if c != "embedding":
                cands = self.cp.fitting(got[1][-1], cands)
                if not cands:
                    continue
            best = (got[0], got[1], c, cands)
        if best is None:
            return None
        _, (_, seq, req), c, cands = best
        self.queued_s[c] -= self._svc.pop(seq)
        if self._hopeless(req, now):
            return Reject(req, SHED_REASON)
        return self.place(req, cands, now)

    def drain(self) -> list[Request]:
        out = [e[-1] for heap in self.heaps.values() for e in heap if e[1] in self._svc]
        for heaps in (self.heaps, self.urgent):
            for heap in heaps.values():
                heap.clear()
        self._svc.clear()
        self.queued_s = dict.fromkeys(SCHEDULED_CLASSES, 0.0)
        return out


class PipelineLASPolicy(HeapPolicy):
    name = "pipeline-las"

    def __init__(self, cp) -> None:
        super().__init__(cp)
        self.weight = cp.config.pipeline.las_weight

    def key(self, req: Request) -> float:
        return req.arrival + self.weight * req.attained_s

    def push(self, req: Request, now: float) -> None:
        heapq.heappush(self.heaps[req.cls], (self.key(req), next(self._seq), req))


class StaggeredPolicy(HeapPolicy):
    name = "staggered"
    direct_classes = frozenset()  # an idle core must still hold a new job's calls

    def __init__(self, cp) -> None:
        super().__init__(cp)
        self.fixed_s = cp.config.pipeline.stagger_ms / 1000.0
        self.admitted: set[str] = set()
        # first calls of jobs not yet admitted, by job, oldest job first
        self.held: dict[str, list[Request]] = {}
        self.next_at = 0.0
        self._jobs_seen = 0
        self._first_seen: float | None = None

    def key(self, req: Request) -> float:
        return req.arrival

    def push(self, req: Request, now: float) -> None:
        job = req.parent_id
        if job is not None and job not in self.admitted:
            if job not in self.held:
                self._jobs_seen += 1
                if self._first_seen is None:
                    self._first_seen = req.arrival
                self.held[job] = []
            self.held[job].append(req)
            return
        heapq.heappush(self.heaps[req.cls], (req.arrival, next(self._seq), req))

    def _gap_s(self, now: float) -> float:
        if self.fixed_s > 0:
            return self.fixed_s
        if self._jobs_seen < 2 or self._first_seen is None:
            return 0.0
        return 0.9 * (now - self._first_seen) / self._jobs_seen

    def _admit_due(self, now: float) -> None:
        """Admit the oldest held job (all its held calls) when its turn has come."""
        if not self.held or now < self.next_at:
            return
        job = next(iter(self.held))
        self.admitted.add(job)
        for r in self.held.pop(job):
            heapq.heappush(self.heaps[r.cls], (r.arrival, next(self._seq), r))
        self.next_at = now + self._gap_s(now)

    def select(self, now: float) -> Selection:
        self._admit_due(now)
        return super().select(now)

    def next_timer(self, now: float) -> float | None:
        return self.next_at if self.held and self.next_at > now else None

    def drain(self) -> list[Request]:
        out = super().drain() + [r for rs in self.held.values() for r in rs]
        self.held.clear()
        return out
