"""RAG pipelines in virtual time: embed the query, search, then chat.

The live load generator runs the real pipeline (loadgen/pipeline.py). In
simulation the two engine stages go through the control plane like any other
request; the search in between is a numpy top-k over a corpus of the
configured size, timed for real on this machine once per run (median of a few
runs) rather than assumed.
"""

from __future__ import annotations

import time

import numpy as np

from loadgen.records import RequestRecord
from loadgen.schedule import ScheduledRequest
from loadgen.spec import WorkloadSpec
from scheduler.request import Request
from scheduler.simrt import RequestOutcome

from .convert import to_request

EMBED_DIM = 384  # all-MiniLM-L6-v2


def measure_search_s(corpus_size: int, top_k: int, repeats: int = 21) -> float:
    """Median wall time of one top-k cosine search over `corpus_size` vectors."""
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((corpus_size, EMBED_DIM)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    query = corpus[0]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        scores = corpus @ query
        k = min(top_k, corpus_size - 1) if corpus_size > 1 else 0
        idx = np.argpartition(-scores, k)[: top_k]
        idx[np.argsort(-scores[idx])]
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


class PipelineDriver:
    """Splits pipeline requests into stages and stitches their outcomes back."""

    def __init__(self, spec: WorkloadSpec):
        self.spec = spec
        self.search_s = measure_search_s(spec.pipeline.corpus_size, spec.pipeline.top_k)
        self._parents: dict[str, ScheduledRequest] = {}
        self._embed_done: dict[str, RequestOutcome] = {}
        self.records: list[RequestRecord] = []

    def first_stage(self, s: ScheduledRequest) -> Request:
        """The embedding stage of pipeline `s` (the query is one text)."""
        self._parents[s.id] = s
        return to_request(s, cls="embedding", id=f"{s.id}/embed", parent_id=s.id,
                          n_texts=1, text_tokens=s.prompt_tokens, output_tokens=0,
                          slo_ttft_ms=None, slo_tpot_ms=None)

    def owns(self, outcome: RequestOutcome) -> bool:
        return outcome.parent_id is not None and outcome.parent_id in self._parents

    def on_stage_done(self, o: RequestOutcome, t: float) -> list[Request]:
        """After the embed stage: search, then the chat stage. After chat: the pipeline."""
        parent = self._parents[o.parent_id]
        if o.id.endswith("/embed"):
            if o.status != "completed":
                self._finish(parent, failed_stage=o)
                return []
            self._embed_done[parent.id] = o
            p = self.spec.pipeline
            t_chat = t + self.search_s
            chat_prompt = parent.prompt_tokens + p.top_k * p.passage_tokens
            return [to_request(parent, cls="chat", id=f"{parent.id}/chat", parent_id=parent.id,
                               arrival=t_chat, t=t_chat, prompt_tokens=chat_prompt,
                               n_texts=0, text_tokens=0, slo_e2e_ms=None, slo_ttft_ms=None,
                               slo_tpot_ms=None)]
        self._finish(parent, chat=o)
        return []

    def _finish(self, parent: ScheduledRequest, *, chat: RequestOutcome | None = None,
                failed_stage: RequestOutcome | None = None) -> None:
        emb = self._embed_done.pop(parent.id, None)
        if failed_stage is not None or chat.status != "completed":
            bad = failed_stage or chat
            rec = RequestRecord.from_scheduled(
                parent, status=bad.status, reason=f"{bad.id.rsplit('/', 1)[-1]}: {bad.reason}",
                t_sent=parent.t, t_done=bad.t_done)
        else:
            rec = RequestRecord.from_scheduled(
                parent, status="completed", backend=chat.backend, t_sent=parent.t,
                t_received=emb.t_received if emb else None,
                t_dispatched=emb.t_dispatched if emb else None,
                t_first_token=chat.t_first_token, chunk_times=list(chat.chunk_times),
                t_done=chat.t_done)
            rec.output_tokens = chat.output_tokens
        self.records.append(rec)
