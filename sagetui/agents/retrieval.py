"""Retrieval strategies over items' candidate functions (or the whole pool).

- `bm25`      Okapi BM25 (rank_bm25) with the pool's term statistics, over each tool's
              name (split into words), description and parameter names;
- `embedding` cosine similarity of MiniLM embeddings (the embedding engine, through
              the gateway; tools embedded once per suite run);
- `fusion`    a weighted sum of the two, each standardised by its mean and standard
              deviation on the dev split: alpha * z(bm25) + (1 - alpha) * z(cosine),
              alpha chosen on dev (`tune`);
- timing calls a function when the item's relevance score clears the strategy's
  threshold, chosen on dev for the best balanced accuracy. BM25 and embeddings
  score an item by its best candidate; the fusion by a combination of the two best
  scores whose weights are chosen by cross-validation on the dev timing items
  (`fit_relevance`), not by its ranking score (see `timing_score`);
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
ANGLES = tuple(range(0, 91, 5))  # degrees: the fusion's relevance direction (fit_relevance)
CV_FOLDS, CV_REPEATS = 5, 20


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
    relevance: dict = field(default_factory=dict)  # fusion's call/no-call model (fit_relevance)
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


def timing_score(strategy: str, b: np.ndarray | None, c: np.ndarray | None,
                 tuning: Tuning) -> float:
    """How strongly an item asks for one of its candidates (call when >= the threshold).

    BM25 and embeddings: the best candidate's score. Fusion: not the best fused
    ranking score. Its z-scores are standardised over the dev *selection*
    candidates, where BM25's spread is dominated by long queries (sd ~2x its
    mean), which squeezes BM25's useful range near a call/no-call cut to a small
    fraction of the cosine's; and alpha is chosen for top-1, not for relevance.
    So the fusion decides relevance with its own combination of the two parts'
    best scores, standardised and weighted on the dev timing items (`fit_relevance`).
    """
    if strategy == "bm25":
        return float(np.max(b)) if b is not None and len(b) else -math.inf
    if strategy == "embedding":
        return float(np.max(c)) if c is not None and len(c) else -math.inf
    if b is None or c is None or not len(b):
        return -math.inf
    return relevance_score(tuning.relevance, relevance_features(b, c))


def relevance_features(b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The fusion's relevance inputs: log(1 + the best BM25 score) (BM25 is heavy-tailed:
    long queries sum many terms) and the best cosine."""
    return np.array([math.log1p(max(float(np.max(b)), 0.0)), float(np.max(c))])


def relevance_score(model: dict, x: np.ndarray) -> float:
    """cos(angle)·z(bm25 feature) + sin(angle)·z(cosine), z over the dev timing items."""
    if not model:
        raise RuntimeError("tune() must fit the fusion's relevance model before timing")
    z = (np.asarray(x, dtype=float) - model["mean"]) / model["sd"]
    a = math.radians(model["angle_deg"])
    return float(math.cos(a) * z[0] + math.sin(a) * z[1])


def fit_relevance(x: np.ndarray, labels: list[bool]) -> dict:
    """The direction in the plane of the two standardised features that decides "call"
    best on held-out dev items: every angle of ANGLES (0 is BM25 alone, 90 the cosine
    alone) scored by repeated cross-validation on dev (`cv_balanced_accuracy`), the best
    kept, ties to the smaller angle. Held-out, because in-sample every extra degree of
    freedom looks better; the metric itself, because a likelihood fit (logistic
    regression) weighs the cosine for calibration, not for the cut."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(labels, dtype=bool)
    mean, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    z = (x - mean) / sd
    cv = {a: cv_balanced_accuracy(math.cos(math.radians(a)) * z[:, 0]
                                  + math.sin(math.radians(a)) * z[:, 1], y) for a in ANGLES}
    best = max(ANGLES, key=lambda a: (round(cv[a], 12), -a))
    return {"features": ["log1p_bm25_max", "cos_max"], "mean": mean.tolist(), "sd": sd.tolist(),
            "angle_deg": best, "cv_balanced_acc_by_angle": {str(a): round(100 * v, 2)
                                                            for a, v in cv.items()}}


def cv_balanced_accuracy(s: np.ndarray, y: np.ndarray) -> float:
    """Mean held-out balanced accuracy of the cut `best_threshold` picks on the other
    folds (CV_REPEATS × CV_FOLDS folds, seeds 0.. : deterministic). With fewer than
    CV_FOLDS items of a class, the in-sample balanced accuracy instead."""
    if min(int(y.sum()), int((~y).sum())) < CV_FOLDS:
        return best_threshold(list(s), list(y))[1]
    accs = []
    for rep in range(CV_REPEATS):
        folds = np.random.default_rng(rep).permutation(len(s)) % CV_FOLDS
        for k in range(CV_FOLDS):
            train, held = folds != k, folds == k
            cut, _ = best_threshold(list(s[train]), list(y[train]))
            accs.append(balanced_accuracy(list(s[held] >= cut), list(y[held])))
    return float(np.mean(accs))


def ranking(tools: list[Tool], s: np.ndarray) -> list[str]:
    """Function names, best first, each once (stable on ties)."""
    out: list[str] = []
    for i in np.argsort(-s, kind="stable"):
        if tools[i].name not in out:
            out.append(tools[i].name)
    return out


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
    per item over its candidates), then the fusion's relevance model and each
    strategy's timing threshold on dev timing items."""
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
    labels = [it.call for it, _, _ in timing]
    scored = [(relevance_features(b, c), it.call) for it, b, c in timing if len(b)]
    if scored:
        t.relevance = fit_relevance(np.array([f for f, _ in scored]), [y for _, y in scored])
    for strategy in RETRIEVAL:
        values = [timing_score(strategy, b, c, t) if t.relevance or strategy != "fusion"
                  else -math.inf for _, b, c in timing]
        t.thresholds[strategy], acc = best_threshold(values, labels)
        t.dev_timing_balanced_acc[strategy] = round(100 * acc, 2)
    return t


def balanced_accuracy(pred: list[bool], labels: list[bool]) -> float:
    pos = [p for p, y in zip(pred, labels, strict=True) if y]
    neg = [not p for p, y in zip(pred, labels, strict=True) if not y]
    parts = [float(np.mean(x)) for x in (pos, neg) if x]
    return float(np.mean(parts)) if parts else 0.0


def best_threshold(values, labels) -> tuple[float, float]:
    """The cut (call when value >= cut) with the best balanced accuracy: midpoints
    between sorted distinct finite values; ties to the lower cut. Counted with sorted
    arrays (no loop over cuts): cross-validation calls it thousands of times."""
    v = np.asarray(values, dtype=float)
    y = np.asarray(labels, dtype=bool)
    finite = np.unique(v[np.isfinite(v)])
    if not len(finite):
        return 0.0, 0.0
    cuts = np.r_[finite[0] - 1.0, (finite[:-1] + finite[1:]) / 2, finite[-1] + 1.0]
    pos, neg = np.sort(v[y]), np.sort(v[~y])
    parts = []
    if len(pos):  # positives at or above the cut are called
        parts.append((len(pos) - np.searchsorted(pos, cuts, side="left")) / len(pos))
    if len(neg):  # negatives below it are not
        parts.append(np.searchsorted(neg, cuts, side="left") / len(neg))
    acc = np.mean(parts, axis=0)
    k = int(np.argmax(acc >= acc.max() - 1e-12))
    return float(cuts[k]), float(acc[k])


def unit(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    if m.ndim == 1:
        return m / max(float(np.linalg.norm(m)), 1e-12)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
