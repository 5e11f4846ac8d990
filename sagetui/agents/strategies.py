"""Tool-selection strategies: each ranks every tool for a query.

- `bm25`      keyword retrieval (rank_bm25's Okapi BM25) over tool name + description;
- `embedding` cosine similarity of MiniLM embeddings, computed by the embedding
              engine (engine.st_engine, the same engine serve-embed serves);
- `hybrid`    reciprocal-rank fusion of the two (k = 60, Cormack et al. 2009);
- `llm`       the chat engine is shown a BM25 shortlist of 20 tools and asked for
              one name; its answer is the whole ranking (so top-5 = top-1).

Planning segments a task at its connectives and selects one tool per clause;
timing calls a tool when the best retrieval score clears a threshold.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import numpy as np
from rank_bm25 import BM25Okapi

from .dataset import PLAN_JOINS

RRF_K = 60
TOKEN = re.compile(r"[a-z0-9]+")
# Thresholds for "should a tool be called" (documented in docs/agents.md):
# cosine similarity for embeddings, BM25 score for keywords.
EMBED_CALL_THRESHOLD = 0.30
BM25_CALL_THRESHOLD = 2.0


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower().replace(".", " "))


def tool_text(tool: dict) -> str:
    return f"{tool['name'].replace('.', ' ')}: {tool['description']}"


class Retriever:
    """Ranks tools; `rank(query)` returns (tool names best first, best score)."""

    name = "base"

    def rank(self, query: str) -> tuple[list[str], float]:
        raise NotImplementedError


class BM25Retriever(Retriever):
    name = "bm25"

    def __init__(self, tools: list[dict]):
        self.names = [t["name"] for t in tools]
        self.bm25 = BM25Okapi([tokenize(tool_text(t)) for t in tools])

    def rank(self, query: str) -> tuple[list[str], float]:
        scores = self.bm25.get_scores(tokenize(query))
        order = np.argsort(-scores, kind="stable")
        return [self.names[i] for i in order], float(scores[order[0]])


class EmbeddingRetriever(Retriever):
    """Embeddings from the embedding engine; tools embedded once."""

    name = "embedding"

    def __init__(self, tools: list[dict], embed: Callable[[list[str]], np.ndarray]):
        self.names = [t["name"] for t in tools]
        self.embed = embed
        self.matrix = _normalise(embed([tool_text(t) for t in tools]))

    def rank(self, query: str) -> tuple[list[str], float]:
        q = _normalise(self.embed([query]))[0]
        scores = self.matrix @ q
        order = np.argsort(-scores, kind="stable")
        return [self.names[i] for i in order], float(scores[order[0]])


class HybridRetriever(Retriever):
    """Reciprocal-rank fusion; calls a tool if either retriever would."""

    name = "hybrid"

    def __init__(self, bm25: BM25Retriever, emb: EmbeddingRetriever):
        self.bm25, self.emb = bm25, emb
        self.last_call: bool = False

    def rank(self, query: str) -> tuple[list[str], float]:
        a, sa = self.bm25.rank(query)
        b, sb = self.emb.rank(query)
        fused: dict[str, float] = {}
        for ranking in (a, b):
            for pos, name in enumerate(ranking):
                fused[name] = fused.get(name, 0.0) + 1.0 / (RRF_K + pos + 1)
        order = sorted(fused, key=lambda n: -fused[n])
        self.last_call = sa >= BM25_CALL_THRESHOLD or sb >= EMBED_CALL_THRESHOLD
        return order, max(sa / BM25_CALL_THRESHOLD, sb / EMBED_CALL_THRESHOLD)


class LLMRetriever(Retriever):
    """Asks the chat engine to name the tool. `chat(prompt) -> text`.

    The prompt lists a shortlist of `shortlist_k` candidates from a cheap
    retriever (BM25) rather than all tools, so it fits any model's context;
    the answer, if it names a listed tool, is the whole ranking. Engine errors
    count as misses and are counted in `errors`.
    """

    name = "llm"

    def __init__(self, tools: list[dict], chat: Callable[[str], str],
                 shortlist: Retriever | None = None, shortlist_k: int = 20):
        self.names = [t["name"] for t in tools]
        self.chat = chat
        self.shortlist, self.shortlist_k = shortlist, shortlist_k
        self.errors = 0

    def prompt(self, query: str, candidates: list[str]) -> str:
        return (f"Tools: {', '.join(candidates)}.\nUser request: {query}\n"
                "Answer with the single best tool name, or NONE if no tool is needed.\nTool:")

    def rank(self, query: str) -> tuple[list[str], float]:
        candidates = (self.shortlist.rank(query)[0][: self.shortlist_k]
                      if self.shortlist is not None else self.names)
        try:
            answer = self.chat(self.prompt(query, candidates))
        except OSError:
            self.errors += 1
            return [], 0.0
        for name in candidates:
            if name in answer:
                return [name], 1.0
        return [], 0.0


def should_call(retriever: Retriever, query: str) -> bool:
    """Timing judgement from the retrieval score (see the thresholds above)."""
    ranking, score = retriever.rank(query)
    if isinstance(retriever, HybridRetriever):
        return retriever.last_call
    if isinstance(retriever, BM25Retriever):
        return score >= BM25_CALL_THRESHOLD
    if isinstance(retriever, EmbeddingRetriever):
        return score >= EMBED_CALL_THRESHOLD
    return bool(ranking)


_SPLIT = re.compile("|".join(re.escape(j.strip(" ,.")) for j in PLAN_JOINS), re.IGNORECASE)


def plan(retriever: Retriever, task: str) -> list[str]:
    """One tool per clause of the task, in order."""
    clauses = [c.strip(" ,.") for c in _SPLIT.split(task) if c.strip(" ,.")]
    steps = []
    for clause in clauses:
        ranking, _ = retriever.rank(clause)
        if ranking:
            steps.append(ranking[0])
    return steps


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def _normalise(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
