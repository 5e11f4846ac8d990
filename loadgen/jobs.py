"""Pipeline jobs: a declared pipeline planned for one arrival and released stage by stage.

Why clock-free: the simulator and the live load generator must run the same
DAG the same way (docs/pipelines.md). A `Job` knows which stages are done and
answers each finished call with the calls it releases; whoever drives it owns
the clock. A stage is released when every stage in its `after` is done
(fan-in waits for its last input); a local stage (retrieve, tool) takes the
time its driver says and releases the stages after it when it ends.

Sizes are drawn when the job is planned, from a stream named by the job's id,
so a job's stages do not depend on the order other jobs finish in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vocab import Request

from .dag import PipelineSpec, topological_order
from .sizes import sample

LOCAL_KINDS = ("retrieve", "tool")  # run where the driver is; the rest are engine calls
EMBED_KINDS = ("embed", "rerank")


@dataclass
class Stage:
    """One stage of one job, as planned: its calls' sizes and what it hands on."""

    name: str
    kind: str
    after: tuple[str, ...]
    calls: list[tuple[int, int]] = field(default_factory=list)  # LLM: (prompt, output)
    own: list[int] = field(default_factory=list)  # LLM: each call's own prompt tokens
    n_texts: int = 0  # embed / rerank
    text_tokens: int = 0
    k: int = 0
    index: str = ""
    local_s: float = 0.0  # tool: its drawn time; retrieve: its cost model's
    out_tokens: int = 0  # what a stage reading this one receives
    # The longest path of work after this stage (docs/pipelines.md): prompt and output
    # tokens of its LLM calls and the local stages' seconds.
    rest: tuple[int, int, float] = (0, 0, 0.0)


def assign_kinds(kinds: list[PipelineSpec], jobs: list[Request], rng: np.random.Generator,
                 declared: bool) -> None:
    """Give each pipeline arrival its kind by weight and, for declared kinds, its
    deadline tier by share (in place). Undeclared (the RAG shape of `[workload.pipeline]`)
    keeps the SLOs the class drew, so an old config keeps its schedule."""
    if not jobs:
        return
    if not declared:
        for j in jobs:
            j.pipeline = kinds[0].name
        return
    w = np.array([k.weight for k in kinds], dtype=float)
    picks = rng.choice(len(kinds), size=len(jobs), p=w / w.sum())
    u = rng.random(len(jobs))
    for j, i, x in zip(jobs, picks, u, strict=True):
        kind = kinds[int(i)]
        j.pipeline = kind.name
        j.slo_ttft_ms = j.slo_tpot_ms = None
        j.slo_e2e_ms, j.slo_tier = kind.deadline_ms, ""
        acc = 0.0
        for t in kind.tiers:
            acc += t.share
            if x < acc or t is kind.tiers[-1]:
                j.slo_e2e_ms, j.slo_tier = t.deadline_ms, t.name
                break


def plan(kind: PipelineSpec, rng: np.random.Generator, *, passage_tokens: int,
         retrieve_s: Callable[[str, int], float]) -> dict[str, Stage]:
    """Every stage's sizes, in topological order (the draw order), and each stage's
    rest of work. `retrieve_s(index, k)`: a retrieve stage's time."""
    out: dict[str, Stage] = {}
    for s in topological_order(kind):
        st = Stage(s.name, s.kind, tuple(s.after), k=s.k, index=s.index)
        reads = sorted(s.reads()) or list(s.after)
        fed = sum(out[a].out_tokens for a in reads)
        if s.kind == "embed":
            st.n_texts = int(sample(s.n_texts, rng, 1)[0]) if not s.after else 1
            per = int(sample(s.tokens, rng, 1)[0]) if not s.after else max(fed, 1)
            st.text_tokens = st.out_tokens = st.n_texts * per
        elif s.kind == "retrieve":
            st.local_s = retrieve_s(s.index, s.k)
            st.out_tokens = s.k * passage_tokens
        elif s.kind == "rerank":
            st.n_texts = max(1, sum(out[a].k for a in s.after if out[a].kind == "retrieve"))
            st.text_tokens = max(fed, st.n_texts)
            st.out_tokens = min(s.k, st.n_texts) * passage_tokens
        elif s.kind == "tool":
            st.local_s = float(sample(s.duration_ms, rng, 1)[0]) / 1000.0
        else:  # generate, loop: the prompt grows by each earlier call's output
            n = 1 if s.kind == "generate" else int(rng.integers(1, s.max_calls + 1))
            own = sample(s.tokens, rng, n)
            outs = sample(s.output_tokens, rng, n)
            history = 0
            for i in range(n):
                st.calls.append((int(own[i]) + fed + history, int(outs[i])))
                st.own.append(int(own[i]))
                history += int(own[i]) + int(outs[i])
            st.out_tokens = int(outs[-1])
        out[s.name] = st
    _rest(kind, out)
    return out


def _work(st: Stage) -> tuple[int, int, float]:
    return (sum(p for p, _ in st.calls), sum(o for _, o in st.calls), st.local_s)


def _rest(kind: PipelineSpec, stages: dict[str, Stage]) -> None:
    """Each stage's longest remaining path; of two branches the one with more output
    tokens (decode dominates an LLM call), then more local time."""
    after_me: dict[str, list[str]] = {s: [] for s in stages}
    for st in stages.values():
        for a in st.after:
            after_me[a].append(st.name)
    for s in reversed(topological_order(kind)):
        best = (0, 0, 0.0)
        for c in after_me[s.name]:
            w, r = _work(stages[c]), stages[c].rest
            path = (w[0] + r[0], w[1] + r[1], w[2] + r[2])
            if (path[1], path[2]) > (best[1], best[2]):
                best = path
        stages[s.name].rest = best


class Job:
    """One pipeline job in flight. `start` and `on_done` answer with the stages to run
    now, each a Request derived from the job (`t_intended` = when it became ready):
    engine calls (chat, embedding) go to the control plane; a local stage (class
    `pipeline`, `backend` "local") is run by the driver — for its modelled time in
    simulation, for real live — which reports its end through `on_done` like any
    call's, and stores it as the stage's record."""

    def __init__(self, job: Request, stages: dict[str, Stage], *, model: str,
                 embedding_model: str) -> None:
        self.job = job
        self.stages = stages
        self.model, self.embedding_model = model, embedding_model
        self.done: dict[str, float] = {}  # stage -> when it ended
        self.started: set[str] = set()
        self.next_call: dict[str, int] = {}  # loop stage -> calls finished
        self.attained_s = 0.0
        self.finished = False
        self._last: Request | None = None  # the engine call that ended last
        e2e = job.slo_e2e_ms
        self.deadline = None if e2e is None else job.t_intended + e2e / 1000.0

    def start(self, t: float) -> list[Request]:
        self.job.t_sent = self.job.t_intended
        return self._release(t)

    def on_done(self, call: Request, t: float) -> list[Request]:
        """A stage's call (or local run) ended at `t`, any status: what it releases."""
        local = call.backend == "local"
        if (call.status == "completed" and not local and call.t_dispatched is not None
                and call.t_done is not None):
            self.attained_s += call.t_done - call.t_dispatched
        if self.finished:
            return []  # the job failed earlier: its stragglers are only recorded
        if call.status != "completed":
            self._fail(call, t)
            return []
        st = self.stages[call.stage]
        if st.calls:
            i = self.next_call[st.name] = self.next_call.get(st.name, 0) + 1
            if i < len(st.calls):
                return [self._call(st, i, t)]
        self.done[st.name] = t
        if not local:
            self._last = call
        out = self._release(t)
        if len(self.done) == len(self.stages):
            self._complete()
        return out

    def _release(self, t: float) -> list[Request]:
        out: list[Request] = []
        for st in self.stages.values():
            if st.name in self.started or not all(a in self.done for a in st.after):
                continue
            self.started.add(st.name)
            out.append(self._local(st, t) if st.kind in LOCAL_KINDS else self._call(st, 0, t))
        return out

    def _common(self, st: Stage, rid: str, t: float) -> dict:
        return dict(id=rid, stage=st.name, parent_id=self.job.id, t_intended=t, arrival=t,
                    slo_ttft_ms=None, slo_e2e_ms=None, slo_tpot_ms=None,
                    pipeline_start=self.job.t_intended, pipeline_deadline=self.deadline,
                    attained_s=self.attained_s,
                    prefix_id="", prefix_tokens=0, prefix_extend=False)

    def _local(self, st: Stage, t: float) -> Request:
        r = self.job.derive(cls="pipeline", prompt_tokens=0, output_tokens=0,
                            **self._common(st, f"{self.job.id}/{st.name}", t))
        r.backend = "local"
        return r

    def _call(self, st: Stage, i: int, t: float) -> Request:
        rid = f"{self.job.id}/{st.name}" + (f".{i}" if len(st.calls) > 1 else "")
        rp, ro, rl = st.rest
        common = self._common(st, rid, t)
        if st.kind in EMBED_KINDS:
            return self.job.derive(cls="embedding", n_texts=st.n_texts,
                                   text_tokens=st.text_tokens, prompt_tokens=st.text_tokens,
                                   output_tokens=0, model=self.embedding_model,
                                   rest_prompt_tokens=rp, rest_output_tokens=ro,
                                   rest_local_s=rl, **common)
        later = st.calls[i + 1:]
        p, o = st.calls[i]
        return self.job.derive(cls="chat", n_texts=0, text_tokens=0, prompt_tokens=p,
                               output_tokens=o, model=self.model,
                               rest_prompt_tokens=rp + sum(x for x, _ in later),
                               rest_output_tokens=ro + sum(y for _, y in later),
                               rest_local_s=rl, **common)

    def _complete(self) -> None:
        self.finished = True
        j = self.job
        last = self._last
        j.status, j.t_done = "completed", max(self.done.values())
        if last is not None:
            j.backend, j.output_tokens = last.backend, last.output_tokens
            j.t_first_token = last.t_first_token if last.cls == "chat" else last.t_done
            j.chunk_times = list(last.chunk_times)

    def _fail(self, call: Request, t: float) -> None:
        self.finished = True
        j = self.job
        j.status = "rejected" if call.status == "rejected" else "failed"
        j.reason, j.t_done = f"stage_{call.stage}: {call.reason}", t

