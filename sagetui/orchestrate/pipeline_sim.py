"""Pipeline jobs in virtual time: each declared DAG on the simulated engines.

The engine stages go through the control plane like any other request; the
local ones take their modelled time (docs/pipelines.md): a retrieve stage the
median time of a real faiss search of its index kind over a corpus of the
configured size, measured on this machine once per process (so every run of a
comparison charges the same), a tool stage its drawn duration. The stages'
order and sizes come from loadgen.jobs, which the live load generator drives
too.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from loadgen.jobs import Job, plan
from loadgen.schedule import stream
from loadgen.spec import WorkloadSpec
from vocab import Request

from ..config import EMBED_DIM, corpus_passages


@lru_cache(maxsize=64)
def measure_search_s(kind: str, corpus_size: int, k: int) -> float:
    """Median seconds of one single-query faiss search (engine.retrieval) of `kind`
    over `corpus_size` random unit vectors (the time depends on the shape only)."""
    from engine.retrieval import VectorIndex, time_search

    rng = np.random.default_rng(0)
    index = VectorIndex(rng.standard_normal((corpus_size, EMBED_DIM), dtype=np.float32), kind)
    queries = rng.standard_normal((20, EMBED_DIM), dtype=np.float32)
    return time_search(index, queries, k)


class PipelineDriver:
    """Plans each pipeline job, sends its stages as they are released, and keeps the
    records the core does not see: the jobs' own and their local stages'."""

    def __init__(self, spec: WorkloadSpec) -> None:
        self.spec = spec
        self.kinds = {k.name: k for k in spec.pipeline_kinds()}
        self.jobs: dict[str, Job] = {}
        self.records: list[Request] = []  # the jobs' own, as they end
        self.local: list[Request] = []  # the local stages' (their own records)
        self.search_s: dict[str, float] = {}  # "<index>/k=<k>" -> seconds, as charged
        passages = corpus_passages(spec)
        self.corpus_n = len(passages) if passages is not None else spec.pipeline.corpus_size

    def _retrieve_s(self, index: str, k: int) -> float:
        s = measure_search_s(index, self.corpus_n, k)
        self.search_s[f"{index}/k={k}"] = s
        return s

    def start(self, job: Request) -> list[Request]:
        """Plan `job` and release its first stages (at its intended time)."""
        stages = plan(self.kinds[job.pipeline], stream(self.spec.seed, f"pipeline/{job.id}"),
                      passage_tokens=self.spec.pipeline.passage_tokens,
                      retrieve_s=self._retrieve_s)
        j = self.jobs[job.id] = Job(job, stages, model=self.spec.model or job.model,
                                    embedding_model=self.spec.embedding_model)
        out = self._run_locals(j, j.start(job.t_intended))
        self._if_finished(j)
        return out

    def _run_locals(self, j: Job, released: list[Request]) -> list[Request]:
        """Local stages run for their modelled time, at once (their end is known), and
        what they release in turn; the engine calls among it all are returned."""
        calls: list[Request] = []
        todo = list(released)
        while todo:
            r = todo.pop(0)
            if r.backend != "local":
                calls.append(r)
                continue
            end = r.t_intended + j.stages[r.stage].local_s
            r.t_sent = r.t_received = r.t_dispatched = r.t_intended
            r.t_done, r.status = end, "completed"
            self.local.append(r)
            todo.extend(j.on_done(r, end))
        return calls

    def owns(self, r: Request) -> bool:
        return r.parent_id is not None and r.parent_id in self.jobs

    def on_stage_done(self, call: Request, t: float) -> tuple[list[Request], Request | None]:
        """The calls `call` releases, and its job's record if the job has just ended."""
        j = self.jobs[call.parent_id]  # type: ignore[index]  # owns() checked it
        was = j.finished
        out = self._run_locals(j, j.on_done(call, t))
        return out, (None if was else self._if_finished(j))

    def close(self, t: float) -> None:
        """Fail the jobs still open when the simulation stopped (a stage released past
        its horizon never ran): every job is accounted for."""
        for j in self.jobs.values():
            if not j.finished:
                j.finished = True
                j.job.status, j.job.reason, j.job.t_done = "failed", "run_ended", t
                self._if_finished(j)
        self.records.extend(self.local)
        self.local = []

    def _if_finished(self, j: Job) -> Request | None:
        if not j.finished:
            return None
        self.records.append(j.job)
        return j.job
