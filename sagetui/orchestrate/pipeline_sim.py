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

from loadgen.spec import WorkloadSpec
from vocab import Request

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
    """Splits pipeline requests into stages, and fills each pipeline's own record
    (the parent request) from its stages' outcomes."""

    def __init__(self, spec: WorkloadSpec):
        self.spec = spec
        self.search_s = measure_search_s(spec.pipeline.corpus_size, spec.pipeline.top_k)
        self._parents: dict[str, Request] = {}
        self._embed_done: dict[str, Request] = {}
        self.records: list[Request] = []

    def first_stage(self, s: Request) -> Request:
        """The embedding stage of pipeline `s` (the query is one text)."""
        self._parents[s.id] = s
        return s.derive(cls="embedding", id=f"{s.id}/embed", parent_id=s.id,
                       n_texts=1, text_tokens=s.prompt_tokens, output_tokens=0,
                       slo_ttft_ms=None, slo_tpot_ms=None)

    def owns(self, stage: Request) -> bool:
        return stage.parent_id is not None and stage.parent_id in self._parents

    def on_stage_done(self, o: Request, t: float) -> list[Request]:
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
            return [parent.derive(cls="chat", id=f"{parent.id}/chat", parent_id=parent.id,
                            arrival=t_chat, t_intended=t_chat, prompt_tokens=chat_prompt,
                            n_texts=0, text_tokens=0, slo_e2e_ms=None, slo_ttft_ms=None,
                            slo_tpot_ms=None)]
        self._finish(parent, chat=o)
        return []

    def _finish(self, parent: Request, *, chat: Request | None = None,
                failed_stage: Request | None = None) -> None:
        emb = self._embed_done.pop(parent.id, None)
        parent.t_sent = parent.t_intended
        if failed_stage is not None or chat.status != "completed":
            bad = failed_stage or chat
            parent.status, parent.t_done = bad.status, bad.t_done
            parent.reason = f"{bad.id.rsplit('/', 1)[-1]}: {bad.reason}"
        else:
            parent.status, parent.backend = "completed", chat.backend
            parent.t_received = emb.t_received if emb else None
            parent.t_dispatched = emb.t_dispatched if emb else None
            parent.t_first_token = chat.t_first_token
            parent.chunk_times = list(chat.chunk_times)
            parent.t_done, parent.output_tokens = chat.t_done, chat.output_tokens
        self.records.append(parent)
