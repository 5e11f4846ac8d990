"""Pipeline jobs, live: the declared DAG's calls sent through the gateway, local stages run here.

Why here and not in the server: a pipeline is a workload (what a RAG app or an
agent sends), so its per-stage timings are measured by the client. The same
`loadgen.jobs.Job` as in simulation decides what runs when; this module turns
its stages into real work: embed and rerank are embedding calls, generate and
loop chat calls whose prompts carry the outputs they read, retrieve a search
over a corpus embedded once through the same endpoint before the run starts
(the index maker given, faiss in a sagetui run: engine.retrieval.VectorIndex;
an exact numpy search otherwise), tool a sleep of its drawn time. Each call
carries the pipeline headers (docs/gateway.md). Records: one per stage call or
local stage (parent_id = the job's id) and the job's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

from vocab import Request

from .client import Client
from .jobs import Job, Stage, plan
from .schedule import stream
from .spec import WorkloadSpec

BATCH = 32


class ExactIndex:
    """Exact cosine top-k in numpy, for a run that is given no index maker."""

    def __init__(self, vectors: np.ndarray, kind: str = "flat") -> None:
        self.m = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.atleast_2d(queries).astype(np.float32)
        scores = q @ self.m.T
        k = min(k, self.m.shape[0])
        ids = np.argsort(-scores, axis=1)[:, :k]
        return np.take_along_axis(scores, ids, axis=1), ids


def pipeline_headers(call: Request, job: Job, now: float) -> dict[str, str]:
    """The pipeline headers of one call (docs/gateway.md, "Pipeline headers")."""
    h = {"X-Pipeline-Id": job.job.id, "X-Pipeline-Kind": job.job.pipeline,
         "X-Pipeline-Stage": call.stage,
         "X-Pipeline-Elapsed-Ms": f"{max(0.0, now - job.job.t_intended) * 1000:.3f}",
         "X-Pipeline-Attained-Ms": f"{call.attained_s * 1000:.3f}",
         "X-Pipeline-Rest": f"{call.rest_prompt_tokens},{call.rest_output_tokens},"
                            f"{call.rest_local_s * 1000:.3f}"}
    if job.job.slo_e2e_ms is not None:
        h["X-Pipeline-Deadline-Ms"] = f"{job.job.slo_e2e_ms:g}"
    return h


class LiveJobs:
    def __init__(self, spec: WorkloadSpec, *, make_index: Callable[..., Any] | None = None,
                 corpus: list[str] | None = None):
        self.spec = spec
        self.corpus = corpus
        self.kinds = {k.name: k for k in spec.pipeline_kinds()}
        self.make_index = make_index or ExactIndex
        self.passages: list[str] = []
        self.indexes: dict[str, Any] = {}

    async def build(self, client: Client) -> None:
        """Embed the corpus once and build each index kind the pipelines search; a
        failure here stops the run (nothing measured yet)."""
        p = self.spec.pipeline
        self.passages = list(self.corpus) if self.corpus is not None else [
            client.prompts.text(p.passage_tokens, f"corpus/{i}") for i in range(p.corpus_size)]
        vecs: list = []
        for start in range(0, len(self.passages), BATCH):
            texts = self.passages[start:start + BATCH]
            req = Request(id=f"corpus-{start}", t_intended=0.0, cls="embedding",
                          client_id="corpus", priority=4, n_texts=len(texts),
                          text_tokens=sum(len(t.split()) for t in texts),
                          model=self.spec.embedding_model)
            rec = await client.call(req, texts=texts, vectors=vecs)
            if rec.status != "completed":
                raise RuntimeError(f"pipeline corpus: embedding failed: {rec.reason}")
        m = np.asarray(vecs, dtype=np.float32)
        kinds = {s.index for k in self.kinds.values() for s in k.stages if s.kind == "retrieve"}
        self.indexes = {kind: self.make_index(m, kind) for kind in sorted(kinds)}

    async def run(self, client: Client, job: Request) -> list[Request]:
        """Every stage of `job` as it is released; [its stages' records..., the job]."""
        if not self.passages:
            raise RuntimeError("LiveJobs.build() must run before requests")
        stages = plan(self.kinds[job.pipeline], stream(self.spec.seed, f"pipeline/{job.id}"),
                      passage_tokens=self.spec.pipeline.passage_tokens,
                      retrieve_s=lambda index, k: 0.0)  # live: measured, not modelled
        j = Job(job, stages, model=self.spec.model, embedding_model=self.spec.embedding_model)
        run = _JobRun(self, client, j)
        await asyncio.gather(*(run.go(r) for r in j.start(job.t_intended)))
        return [*run.records, job]


class _JobRun:
    """One job's stages in flight: what each produced (texts, vectors, passages)."""

    def __init__(self, jobs: LiveJobs, client: Client, j: Job) -> None:
        self.jobs, self.client, self.j = jobs, client, j
        self.text: dict[str, str] = {}  # stage -> its output as text
        self.vec: dict[str, np.ndarray] = {}  # embed stage -> its first vector
        self.hits: dict[str, list[int]] = {}  # retrieve / rerank -> passage ids
        self.records: list[Request] = []

    async def go(self, r: Request) -> None:
        st = self.j.stages[r.stage]
        if r.backend == "local":
            await self._local(r, st)
        else:
            await self._call(r, st)
        self.records.append(r)
        released = self.j.on_done(r, r.t_done if r.t_done is not None else self.client.now())
        await asyncio.gather(*(self.go(n) for n in released))

    def _reads(self, st: Stage) -> str:
        spec = self.jobs.kinds[self.j.job.pipeline].stage(st.name)
        names = sorted(spec.reads()) or list(st.after)
        return "\n\n".join(self.text.get(n, "") for n in names)

    async def _local(self, r: Request, st: Stage) -> None:
        c = self.client
        r.t_sent = r.t_received = r.t_dispatched = c.now()
        if st.kind == "tool":
            await asyncio.sleep(st.local_s)
        else:  # retrieve: search with the vector of the embed stage it reads
            q = next((self.vec[a] for a in st.after if a in self.vec), None)
            if q is None:
                r.status, r.reason, r.t_done = "failed", "no_query: no embedded input", c.now()
                return
            _, ids = self.jobs.indexes[st.index].search(q[None, :], st.k)
            self.hits[st.name] = [int(i) for i in ids[0] if i >= 0]
            self.text[st.name] = "\n\n".join(self.jobs.passages[i] for i in self.hits[st.name])
        r.t_done, r.status = c.now(), "completed"

    async def _call(self, r: Request, st: Stage) -> None:
        c, j = self.client, self.j
        prompts = c.prompts
        h = pipeline_headers(r, j, c.now())
        if r.cls == "embedding":
            if st.kind == "rerank":
                ids = [i for a in st.after for i in self.hits.get(a, [])]
                texts = [self.jobs.passages[i] for i in ids] or [self._reads(st)]
            elif st.after:
                texts = [self._reads(st)]
            else:
                per = max(1, st.text_tokens // max(st.n_texts, 1))
                texts = [prompts.text(per, f"{r.id}/{i}") for i in range(st.n_texts)]
            vecs: list = []
            await c.call(r, texts=texts, vectors=vecs, headers=h)
            if r.status == "completed" and vecs:
                v = np.asarray(vecs, dtype=np.float32)
                if st.kind == "rerank":
                    self._rerank(st, ids, v)
                else:
                    self.vec[st.name] = v[0]
                    self.text[st.name] = "\n".join(texts)
            return
        own = prompts.text(st.own[self.j.next_call.get(st.name, 0)], r.id)
        history = self.text.get(f"{st.name}#history", "")
        out: list[str] = []
        await c.call(r, text=f"{self._reads(st)}\n\n{history}\n\n{own}".strip(), output=out,
                     headers=h)
        answer = "".join(out)
        self.text[st.name] = answer
        self.text[f"{st.name}#history"] = f"{history}\n{own}\n{answer}".strip()

    def _rerank(self, st: Stage, ids: list[int], v: np.ndarray) -> None:
        """Keep the k passages closest to the job's embedded question."""
        q = next(iter(self.vec.values()), None)
        if q is None or not ids:
            self.hits[st.name] = ids[:st.k]
        else:
            scores = (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)) @ q
            order = np.argsort(-scores)[:st.k]
            self.hits[st.name] = [ids[i] for i in order]
        self.text[st.name] = "\n\n".join(self.jobs.passages[i] for i in self.hits[st.name])
