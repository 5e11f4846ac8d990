"""RAG pipeline requests: embed the query → top-k over a local corpus → chat.

Why here and not in the server: the pipeline is a workload (what a RAG app
sends), so its per-stage timings are measured by the client. The corpus is
synthetic passages, embedded once through the same embeddings endpoint
before the run starts, kept as a normalised numpy matrix.
Records: one `embedding` and one `chat` stage record (parent_id = the
pipeline's id; the chat stage's t_intended is the moment search finished)
plus the end-to-end `pipeline` record.
"""

from __future__ import annotations

import numpy as np

from vocab import Request

from .client import Client
from .spec import Pipeline

BATCH = 32


class Rag:
    def __init__(self, cfg: Pipeline, *, model: str, embedding_model: str):
        self.cfg = cfg
        self.model = model
        self.embedding_model = embedding_model
        self.passages: list[str] = []
        self.matrix: np.ndarray | None = None

    async def build(self, client: Client) -> None:
        """Embed the corpus once; a failure here stops the run (nothing measured yet)."""
        self.passages = [client.prompts.text(self.cfg.passage_tokens, f"corpus/{i}")
                         for i in range(self.cfg.corpus_size)]
        vecs: list = []
        for start in range(0, len(self.passages), BATCH):
            texts = self.passages[start:start + BATCH]
            req = Request(
                id=f"corpus-{start}", t_intended=0.0, cls="embedding", client_id="corpus", priority=4,
                prompt_tokens=0, output_tokens=0, n_texts=len(texts),
                text_tokens=len(texts) * self.cfg.passage_tokens, slo_ttft_ms=None, slo_e2e_ms=None,
                model=self.embedding_model,
            )
            rec = await client.call(req, texts=texts, vectors=vecs)
            if rec.status != "completed":
                raise RuntimeError(f"pipeline corpus: embedding failed: {rec.reason}")
        m = np.asarray(vecs, dtype=np.float32)
        self.matrix = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)

    def search(self, query: list[float]) -> list[int]:
        if self.matrix is None:
            raise RuntimeError("Rag.build() must run before requests")
        q = np.asarray(query, dtype=np.float32)
        scores = self.matrix @ (q / max(float(np.linalg.norm(q)), 1e-12))
        k = self.cfg.top_k
        top = np.argpartition(-scores, k - 1)[:k]
        return top[np.argsort(-scores[top])].tolist()

    async def run(self, client: Client, req: Request) -> list[Request]:
        """[embed stage, chat stage (if reached), pipeline record]."""
        if self.matrix is None:
            raise RuntimeError("Rag.build() must run before requests")
        question = client.prompts.text(req.prompt_tokens, req.id)
        emb_req = req.derive(id=f"{req.id}/embed", cls="embedding", n_texts=1,
                          text_tokens=req.prompt_tokens, output_tokens=0, slo_ttft_ms=None,
                          slo_e2e_ms=None, slo_tpot_ms=None, model=self.embedding_model,
                          parent_id=req.id)
        vec: list = []
        emb = await client.call(emb_req, texts=[question], vectors=vec)
        top = req  # the pipeline's own record
        top.t_sent = emb.t_sent
        out = [emb]
        if emb.status != "completed":
            top.status, top.reason, top.t_done = emb.status, f"stage_embed: {emb.reason}", emb.t_done
            return [*out, top]
        hits = self.search(vec[0])
        t_search = client.now()
        context = "\n\n".join(self.passages[i] for i in hits)
        chat_req = req.derive(id=f"{req.id}/chat", t_intended=t_search, cls="chat",
                           prompt_tokens=req.prompt_tokens + len(hits) * self.cfg.passage_tokens,
                           slo_ttft_ms=None, slo_e2e_ms=None, slo_tpot_ms=None, model=self.model,
                           parent_id=req.id)
        chat = await client.call(chat_req, text=f"{context}\n\nQuestion: {question}")
        out.append(chat)
        top.backend = chat.backend
        top.t_first_token, top.chunk_times, top.t_done = chat.t_first_token, chat.chunk_times, chat.t_done
        top.output_tokens, top.prompt_tokens = chat.output_tokens, chat.prompt_tokens
        top.status = chat.status
        top.reason = f"stage_chat: {chat.reason}" if chat.status != "completed" else ""
        return [*out, top]
