"""The retrieval stage: a faiss vector index over a corpus embedded by MiniLM.

Why faiss: it is what RAG deployments search with, its exact (flat) and
approximate (HNSW, IVF) indexes have the cost shapes a scheduler must model
(linear in the corpus, logarithmic, and a fraction of it), and its search
time is measured here, then fitted (`calibrate`) so the simulator charges a
retrieve stage what this machine would.

Vectors are L2-normalised and searched by inner product, i.e. cosine
similarity, as MiniLM's embeddings are meant to be compared.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INDEX_KINDS = ("flat", "hnsw", "ivf")
HNSW_M = 32  # links per node: faiss's usual default for ~1e4-1e6 vectors
HNSW_EF_SEARCH = 64
IVF_NPROBE = 8
_WORDS = ("data", "model", "query", "token", "engine", "batch", "cache", "vector", "search",
          "latency", "serving", "request", "policy", "queue", "memory", "kernel", "graph",
          "index", "cluster", "prefill", "decode", "schedule", "embedding", "passage")


class IndexTooLarge(ValueError):
    """The index would not fit in the memory this machine has free."""


def generated_corpus(n: int, words_per_passage: int = 48, seed: int = 0) -> list[str]:
    """`n` deterministic passages of plain words (no download, same text every run)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(_WORDS), size=(n, words_per_passage))
    return [" ".join(_WORDS[j] for j in row) + f" #{i}" for i, row in enumerate(picks)]


def read_corpus(path: str | Path) -> list[str]:
    """Passages from a file: JSON lines with a `text` field, or plain text, one per
    line. A malformed line is an error naming the file and the line."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"corpus file {p}: not found")
    out: list[str] = []
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if p.suffix == ".jsonl":
            try:
                text = json.loads(line)["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"corpus file {p}, line {lineno}: not a JSON object with "
                                 f"a `text` field") from None
            if not isinstance(text, str) or not text:
                raise ValueError(f"corpus file {p}, line {lineno}: `text` must be a "
                                 f"non-empty string")
            out.append(text)
        else:
            out.append(line)
    if not out:
        raise ValueError(f"corpus file {p}: no passages")
    return out


def index_bytes(n: int, dim: int, kind: str) -> int:
    """Memory an index of `n` vectors takes (vectors, plus HNSW's links)."""
    size = n * dim * 4
    if kind == "hnsw":
        size += n * HNSW_M * 2 * 4
    return size


def check_fits(n: int, dim: int, kind: str, available: int | None = None) -> None:
    """Refuse, before building, an index larger than half the free memory."""
    if available is None:
        import psutil

        available = psutil.virtual_memory().available
    need = index_bytes(n, dim, kind)
    if need > available // 2:
        raise IndexTooLarge(f"index: a {kind} index of {n:,} x {dim} vectors needs "
                            f"{need / 2**20:,.0f} MiB, more than half the "
                            f"{available / 2**20:,.0f} MiB free")


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class VectorIndex:
    """A faiss index of one kind over normalised vectors, searched by cosine."""

    def __init__(self, vectors: np.ndarray, kind: str = "flat", *, seed: int = 0) -> None:
        import faiss

        if kind not in INDEX_KINDS:
            raise ValueError(f"index: {kind!r} is not one of {', '.join(INDEX_KINDS)}")
        if vectors.ndim != 2 or len(vectors) == 0:
            raise ValueError("index: needs a non-empty (n, dim) matrix of vectors")
        n, dim = vectors.shape
        check_fits(n, dim, kind)
        x = _normalised(vectors)
        self.kind, self.n, self.dim = kind, n, dim
        self.nlist = 0
        index: faiss.Index
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efSearch = HNSW_EF_SEARCH
            index = hnsw
        else:
            # about sqrt(n) lists, each trained on >= 39 points as faiss asks
            self.nlist = max(1, min(int(math.sqrt(n)), n // 39))
            ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, self.nlist,
                                     faiss.METRIC_INNER_PRODUCT)
            ivf.cp.seed = seed
            ivf.train(x)
            ivf.nprobe = min(IVF_NPROBE, self.nlist)
            index = ivf
        index.add(x)
        self._index = index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (len(queries), min(k, n)), best first."""
        if k < 1:
            raise ValueError(f"k: must be >= 1, got {k}")
        q = _normalised(np.atleast_2d(queries))
        if q.shape[1] != self.dim:
            raise ValueError(f"query: {q.shape[1]} dimensions, the index has {self.dim}")
        return self._index.search(q, min(k, self.n))

    def cost_x(self) -> float:
        """The size term a search costs in proportion to (see RetrievalCost)."""
        return search_work(self.kind, self.n, self.nlist)


def search_work(kind: str, n: int, nlist: int = 0) -> float:
    """Vectors a search compares against: all of them (flat), a log-depth walk of
    ef candidates (HNSW), nprobe of nlist lists (IVF)."""
    if kind == "flat":
        return float(n)
    if kind == "hnsw":
        return HNSW_EF_SEARCH * math.log2(max(n, 2))
    nlist = nlist or max(1, min(int(math.sqrt(n)), n // 39))
    return n * min(IVF_NPROBE, nlist) / nlist


def embed_corpus(passages: Sequence[str], encode: Callable[[list[str]], np.ndarray],
                 batch: int = 64) -> np.ndarray:
    """Vectors for the passages, `batch` at a time through `encode` (MiniLM's, in
    live mode: engine.st_engine.STEngine.encode(...).vectors)."""
    parts = [encode(list(passages[i:i + batch])) for i in range(0, len(passages), batch)]
    return np.vstack(parts).astype(np.float32)


@dataclass(frozen=True, slots=True)
class RetrievalCost:
    """Seconds per query search: a + b·work + c·k, per index kind (work:
    search_work). Fitted by `calibrate` on the machine that serves the index."""

    kind: str
    a: float
    b: float
    c: float

    def predict(self, n: int, k: int, nlist: int = 0) -> float:
        return max(self.a + self.b * search_work(self.kind, n, nlist) + self.c * k, 0.0)


def time_search(index: VectorIndex, queries: np.ndarray, k: int, repeat: int = 3) -> float:
    """Median seconds of one single-query search (queries one at a time, as a
    pipeline's retrieve stage sends them)."""
    times = []
    for _ in range(repeat):
        for q in queries:
            t0 = time.perf_counter()
            index.search(q, k)
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def calibrate(kind: str, sizes: Sequence[int], ks: Sequence[int], dim: int = 384,
              n_queries: int = 20, seed: int = 0) -> tuple[RetrievalCost, list[dict]]:
    """Measure search time over corpus sizes × k on random unit vectors (search time
    depends on the shape, not the text) and fit RetrievalCost by least squares."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for n in sizes:
        index = VectorIndex(rng.standard_normal((n, dim), dtype=np.float32), kind, seed=seed)
        queries = rng.standard_normal((n_queries, dim), dtype=np.float32)
        for k in ks:
            rows.append({"kind": kind, "n": n, "k": k, "work": index.cost_x(),
                         "seconds": time_search(index, queries, k)})
    design = np.array([[1.0, r["work"], r["k"]] for r in rows])
    y = np.array([r["seconds"] for r in rows])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return RetrievalCost(kind, float(coef[0]), float(coef[1]), float(coef[2])), rows
