"""Retrieval strategies over items' candidate functions (or the whole pool).

- `bm25`      Okapi BM25 (rank_bm25) with the pool's term statistics, over each tool's
              name (split into words), description and parameter names;
- `embedding` cosine similarity of MiniLM embeddings (the embedding engine, through
              the gateway; tools embedded once per suite run);
- `fusion`    a weighted sum of the two, each standardised by its mean and standard
              deviation on the dev split: alpha * z(bm25) + (1 - alpha) * z(cosine),
              alpha chosen on dev (`tune`);
- timing calls a function when the best candidate's score clears the strategy's
  threshold, chosen on dev for the best balanced accuracy;
- planning splits the request into clauses (sentences and connectives) and takes
  the best candidate of each, in order.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

import numpy as np
from rank_bm25 import BM25Okapi

from .items import Item, Tool, split_identifier

RETRIEVAL = ("bm25", "embedding", "fusion")
ALPHAS = tuple(round(0.05 * i, 2) for i in range(21))


def tokenize(text: str) -> list[str]:
    return split_identifier(text)


class Index:
    """Every pool tool: BM25 statistics and (once embedded) unit-length MiniLM vectors."""

    def __init__(self, pool: list[Tool]):
        self.pool = pool
        self.pos = {t.key: i for i, t in enumerate(pool)}
        self.bm25 = BM25Okapi([tokenize(t.text()) or ["_"] for t in pool])
        self.vectors: np.ndarray | None = None
        self.all = list(range(len(pool)))

    def texts(self) -> list[str]:
        return [t.text() for t in self.pool]

    def set_vectors(self, vectors, ids: list[int] | None = None) -> None:
        """Vectors of every pool tool, or of the tools `ids` only (the rest stay zero:
        a run that never ranks them need not embed them)."""
        v = unit(np.asarray(vectors, dtype=np.float32))
        if ids is None:
            self.vectors = v
            return
        self.vectors = np.zeros((len(self.pool), v.shape[1]), dtype=np.float32)
        self.vectors[ids] = v

    def ids(self, tools: list[Tool]) -> list[int]:
        return [self.pos[t.key] for t in tools]

    def bm25_scores(self, query: str, ids: list[int]) -> np.ndarray:
        if not ids:
            return np.zeros(0)
        if len(ids) == len(self.pool) and ids == self.all:  # the whole pool: vectorised
            return np.asarray(self.bm25.get_scores(tokenize(query)), dtype=np.float64)
        return np.asarray(self.bm25.get_batch_scores(tokenize(query), ids), dtype=np.float64)

    def cos_scores(self, qvec: np.ndarray, ids: list[int]) -> np.ndarray:
        if self.vectors is None:
            raise RuntimeError("Index.set_vectors() must run before embedding scores")
        if not ids:
            return np.zeros(0)
        return self.vectors[ids] @ qvec


@dataclass
class Tuning:
    """What the dev split chose (stored with every run)."""

    alpha: float = 0.5
    bm25_mean: float = 0.0
    bm25_sd: float = 1.0
    cos_mean: float = 0.0
    cos_sd: float = 1.0
    thresholds: dict[str, float] = field(default_factory=dict)
    dev_items: dict[str, int] = field(default_factory=dict)
    dev_top1_by_alpha: dict[str, float] = field(default_factory=dict)
    dev_timing_balanced_acc: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def fuse(self, b: np.ndarray, c: np.ndarray, alpha: float | None = None) -> np.ndarray:
        a = self.alpha if alpha is None else alpha
        return (a * (b - self.bm25_mean) / self.bm25_sd
                + (1 - a) * (c - self.cos_mean) / self.cos_sd)


def scores(strategy: str, b: np.ndarray | None, c: np.ndarray | None, tuning: Tuning) -> np.ndarray:
    if strategy == "bm25":
        return b
    if strategy == "embedding":
        return c
    return tuning.fuse(b, c)


def ranking(tools: list[Tool], s: np.ndarray) -> list[str]:
    """Function names, best first, each once (stable on ties)."""
    out: list[str] = []
    for i in np.argsort(-s, kind="stable"):
        if tools[i].name not in out:
            out.append(tools[i].name)
    return out


def should_call(s: np.ndarray, threshold: float) -> bool:
    return bool(len(s)) and float(np.max(s)) >= threshold


_CLAUSE = re.compile(
    r"(?<=[.!?])\s+|;\s*|\s*,?\s*\b(?:and then|then|also|after that|afterwards|"
    r"additionally|finally|next|as well as|followed by)\b[,:]?\s*", re.IGNORECASE)


def clauses(text: str) -> list[str]:
    """The request cut at sentence ends and step connectives (at least one clause)."""
    parts = [p.strip(" ,.") for p in _CLAUSE.split(text)]
    parts = [p for p in parts if len(tokenize(p)) >= 2]
    return parts or [text]


# -- tuning on dev ------------------------------------------------------------------------------

def tune(sel: list[tuple[Item, np.ndarray, np.ndarray]],
         timing: list[tuple[Item, np.ndarray, np.ndarray]]) -> Tuning:
    """Fit the standardisation and alpha on dev selection items ((item, bm25, cosine)
    per item over its candidates), then each strategy's timing threshold on dev timing items."""
    t = Tuning()
    if sel:
        b = np.concatenate([x[1] for x in sel])
        c = np.concatenate([x[2] for x in sel])
        t.bm25_mean, t.bm25_sd = float(b.mean()), float(b.std()) or 1.0
        t.cos_mean, t.cos_sd = float(c.mean()), float(c.std()) or 1.0
        best = -1.0
        for a in ALPHAS:
            acc = float(np.mean([ranking(it.tools, t.fuse(bb, cc, a))[0] == it.gold[0]
                                 for it, bb, cc in sel]))
            t.dev_top1_by_alpha[f"{a:.2f}"] = round(100 * acc, 2)
            if acc > best + 1e-12:
                best, t.alpha = acc, a
    t.dev_items = {"selection": len(sel), "timing": len(timing)}
    for strategy in RETRIEVAL:
        best_scores = [float(np.max(scores(strategy, b, c, t))) if len(b) else -math.inf
                       for _, b, c in timing]
        labels = [it.call for it, _, _ in timing]
        t.thresholds[strategy], acc = best_threshold(best_scores, labels)
        t.dev_timing_balanced_acc[strategy] = round(100 * acc, 2)
    return t


def balanced_accuracy(pred: list[bool], labels: list[bool]) -> float:
    pos = [p for p, y in zip(pred, labels, strict=True) if y]
    neg = [not p for p, y in zip(pred, labels, strict=True) if not y]
    parts = [float(np.mean(x)) for x in (pos, neg) if x]
    return float(np.mean(parts)) if parts else 0.0


def best_threshold(values: list[float], labels: list[bool]) -> tuple[float, float]:
    """The cut (call when value >= cut) with the best balanced accuracy: midpoints
    between sorted distinct finite values; ties to the lower cut."""
    finite = sorted({v for v in values if math.isfinite(v)})
    if not finite:
        return 0.0, 0.0
    cuts = ([finite[0] - 1.0] + [(a + b) / 2 for a, b in zip(finite, finite[1:], strict=False)]
            + [finite[-1] + 1.0])
    best, best_acc = cuts[0], -1.0
    for cut in cuts:
        acc = balanced_accuracy([v >= cut for v in values], labels)
        if acc > best_acc + 1e-12:
            best, best_acc = cut, acc
    return float(best), best_acc


def unit(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    if m.ndim == 1:
        return m / max(float(np.linalg.norm(m)), 1e-12)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
