"""Suite E's part of the results brief: the fusion against its parts, and the timing
figures beside BFCL's published relevance / irrelevance detection.

Why paired intervals: the retrieval strategies answer the same test items (their
ids are stored per category), so a difference between two strategies is
bootstrapped over items, each resample taking the same items for both; two
separate intervals would overstate the uncertainty of the difference.

Why a note and not a claim for BFCL's figures: they score a different task.
BFCL's irrelevance category gives a model the functions and counts it right when
it produces no call; its relevance category counts any call. Our retrieval
strategies rank functions and decide "call" by a dev-tuned threshold on a score;
only the LLM strategy is asked, as BFCL asks, whether to call at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from exports.bootstrap import balanced_of, bootstrap, mean_of
from exports.context import ExportContext
from exports.errors import ExportError
from exports.model import RunView
from exports.tables.agents import agent, has_items

# One line of the brief: (text, holds: True / False / None, run ids, informational).
Line = tuple[str, bool | None, list[int], bool]

# (category, outcome, label): what "no worse than its parts" is checked on.
HEADLINES = (("selection", "top1", "top-1 among an item's candidates"),
             ("selection_pool", "top1", "top-1 among all functions"),
             ("timing", "balanced", "call / no call balanced accuracy"),
             ("planning", "exact", "exact plans"))
PARTS = ("bm25", "embedding")

# BFCL's leaderboard, its "Leaderboard Update - 2025/12/16" (BFCL v4; docs/experiments.md names the
# source): relevance detection = live_relevance accuracy (any call counts);
# irrelevance detection = the unweighted mean of irrelevance and live_irrelevance
# accuracies (no call counts). Rows: the top-ranked model, the best sum of the two,
# the median of the 109 entries, and the smallest models listed.
LEADERBOARD = "BFCL leaderboard (v4, 'Leaderboard Update - 2025/12/16')"
PUBLISHED = (
    ("Claude-Opus-4-5 (FC), rank 1", 62.50, 84.72),
    ("GPT-4.1-2025-04-14 (Prompt), best relevance + irrelevance", 100.00, 83.99),
    ("median of 109 entries", 81.25, 80.79),
    ("Qwen3-0.6B (FC)", 75.00, 80.84),
    ("Granite-4.0-350m (FC)", 81.25, 60.84),
    ("Gemma-3-1b-it (Prompt)", 37.50, 33.18),
)
_SOURCE = re.compile(r"^(.*?)_\d")


def _by_strategy(ctx: ExportContext) -> dict[str, RunView]:
    runs = [r for r in ctx.runs if has_items(r)]
    if not runs:
        raise ExportError("brief: agents needs runs with per-item outcomes (suite E)")
    out: dict[str, RunView] = {}
    for r in runs:
        out.setdefault(str(agent(r)["strategy"]), r)
    return out


def _aligned(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Positions in `a` and `b` of their common items (by id; by position when both
    lack ids and hold as many items: the same deterministic selection)."""
    ia, ib = a.get("ids"), b.get("ids")
    if ia is None or ib is None:
        n = len(a.get("latency_ms") or [])
        if ia is None and ib is None and n and n == len(b.get("latency_ms") or []):
            return np.arange(n), np.arange(n)
        return None
    pos = {i: k for k, i in enumerate(ib)}
    common = [(k, pos[i]) for k, i in enumerate(ia) if i in pos]
    if not common:
        return None
    return np.array([k for k, _ in common]), np.array([k for _, k in common])


def _stat(block: dict, outcome: str, rows: np.ndarray):
    o = block["outcomes"]
    if outcome == "balanced":
        if "correct" not in o or len(block.get("labels") or []) != len(o["correct"]):
            return None
        return balanced_of(np.asarray(o["correct"])[rows], np.asarray(block["labels"])[rows])
    if outcome not in o:
        return None
    return mean_of(np.asarray(o[outcome])[rows])


def _minus(f: Callable[[np.ndarray], float], g: Callable[[np.ndarray], float]):
    """The paired difference f - g on the same resampled items."""
    return lambda idx: f(idx) - g(idx)


def fusion_claims(ctx: ExportContext) -> list[Line]:
    """Per headline: the fusion against the better of BM25 and embeddings on the same
    items, the difference with its paired bootstrap interval."""
    runs = _by_strategy(ctx)
    if "fusion" not in runs or not all(p in runs for p in PARTS):
        raise ExportError("brief: agents needs the bm25, embedding and fusion runs")
    out: list[Line] = []
    for cat, outcome, label in HEADLINES:
        blocks = {s: agent(runs[s])["items"].get(cat) for s in ("fusion", *PARTS)}
        if any(b is None for b in blocks.values()):
            continue
        best = None
        for part in PARTS:
            rows = _aligned(blocks["fusion"], blocks[part])
            if rows is None:
                continue
            f, p = _stat(blocks["fusion"], outcome, rows[0]), _stat(blocks[part], outcome, rows[1])
            if f is None or p is None:
                continue
            n = len(rows[0])
            ci = bootstrap(n, _minus(f, p))
            if best is None or p(np.arange(n)) > best[1]:
                best = (part, p(np.arange(n)), f(np.arange(n)), ci, n)
        if best is None:
            continue
        part, pv, fv, ci, n = best
        verdict = ("better" if ci.low > 0 else "worse" if ci.high < 0
                   else "no difference shown")
        text = (f"The fusion is no worse than the better of its parts ({part}) on {cat} "
                f"{label}: {100 * fv:.1f}% against {100 * pv:.1f}%, difference "
                f"{100 * ci.value:+.1f} points (95% paired bootstrap CI {100 * ci.low:+.1f} to "
                f"{100 * ci.high:+.1f}; {verdict}; {n} test items)")
        out.append((text, ci.high >= 0, sorted({runs["fusion"].id, runs[part].id}), False))
    return out


def detection(block: dict) -> dict[str, tuple[float, int]]:
    """BFCL's two figures from a timing block's items (ids name their BFCL file):
    irrelevance = unweighted mean over `irrelevance` and `live_irrelevance`,
    relevance = `live_relevance` only; ours pools `live_simple` in as well."""
    ids, correct = block.get("ids"), block["outcomes"].get("correct")
    if not ids or correct is None:
        return {}
    by: dict[str, list[float]] = {}
    for i, v in zip(ids, correct, strict=True):
        m = _SOURCE.match(i)
        by.setdefault(m.group(1) if m else i, []).append(float(v))
    out = {}
    irr = [by[s] for s in ("irrelevance", "live_irrelevance") if s in by]
    if irr:
        out["irrelevance"] = (100 * float(np.mean([np.mean(x) for x in irr])),
                              sum(len(x) for x in irr))
    if "live_relevance" in by:
        out["relevance"] = (100 * float(np.mean(by["live_relevance"])), len(by["live_relevance"]))
    pos = [v for s in ("live_relevance", "live_simple") for v in by.get(s, [])]
    if pos:
        out["relevance_pooled"] = (100 * float(np.mean(pos)), len(pos))
    return out


def _items(n: int) -> str:
    return f"{n} item" + ("" if n == 1 else "s")


def bfcl_notes(ctx: ExportContext) -> list[Line]:
    """Each strategy's timing figures computed as BFCL computes its detection figures,
    beside the published ones, and what differs between the two tasks."""
    runs = _by_strategy(ctx)
    lines: list[Line] = []
    for strategy, run in sorted(runs.items()):
        block = agent(run)["items"].get("timing")
        d = detection(block) if block else {}
        if "irrelevance" not in d:
            continue
        text = (f"{strategy}: irrelevance detection {d['irrelevance'][0]:.1f}% "
                f"({_items(d['irrelevance'][1])} of the test split)")
        if "relevance" in d:
            text += (f", relevance detection {d['relevance'][0]:.1f}% "
                     f"({_items(d['relevance'][1])})")
        if "relevance_pooled" in d:
            text += (f"; with live_simple's questions {d['relevance_pooled'][0]:.1f}% "
                     f"({_items(d['relevance_pooled'][1])})")
        lines.append((text + ", each computed as BFCL computes it", None, [run.id], True))
    if not lines:
        raise ExportError("brief: agents' timing items carry no BFCL ids")
    published = "; ".join(f"{m} {r:.2f} / {i:.2f}%" for m, r, i in PUBLISHED)
    lines.append((f"Published relevance / irrelevance detection, {LEADERBOARD}: {published}",
                  None, [], True))
    lines.append((
        "Not the same task: BFCL scores full function calling, where the model sees the "
        "functions and must decline to call (irrelevance) or produce a call (relevance). "
        "Our bm25, embedding and fusion strategies rank the candidates and decide "
        "relevance by a threshold tuned on the dev split, on a score, never writing a call; "
        "only the llm strategy answers as a BFCL model does. The retrieval figures say how "
        "far a cheap relevance gate in front of a model gets, not how a model would rank",
        None, [], True))
    return lines


def claims(ctx: ExportContext) -> list[Line]:
    """The brief's suite-E section: the fusion's claims (when its parts ran too), then
    the comparison with BFCL's published figures (when the items carry BFCL ids)."""
    out: list[Line] = []
    errors = []
    for part in (fusion_claims, bfcl_notes):
        try:
            out += part(ctx)
        except ExportError as exc:
            errors.append(str(exc))
    if not out:
        raise ExportError("; ".join(dict.fromkeys(errors)))
    return out
