"""Agent capability: strategy × metric, from summaries carrying `extra_json.agent`.

Shape (docs/exports.md): summary 'all' extra_json = {"agent": {"strategy": "react",
"metrics": {"task_success_pct": 81.0, "tool_calls_per_task": 3.2, ...}}}.
When every run also carries per-item outcomes (`agent.items`, as suite E writes
them), the table is accuracy per category and strategy with a bootstrap
interval over items, beside the items' latency p50/p99 (`item_rows`).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from exports.baseline import enforce
from exports.bootstrap import BOOTSTRAP_METHOD, balanced_of, bootstrap, mean_of
from exports.context import ExportContext
from exports.errors import ExportError
from exports.groups import group_runs, keyed
from exports.model import RunView
from exports.table import Column, Table

NAME = "agents"
DESCRIPTION = "Agent strategies × metrics (success, tool calls, latency per task) from extra_json.agent"


def agent(run: RunView) -> dict:
    s = run.summary("all")
    block = s.extra.get("agent") if s else None
    if not isinstance(block, dict) or not isinstance(block.get("metrics"), dict) or "strategy" not in block:
        raise ExportError(f"run {run.id} ({run.name}): summary 'all' has no extra_json.agent "
                          "{strategy, metrics}")
    return block


def metric(run: RunView, name: str) -> float | None:
    """One agent metric of a run (None when the strategy does not report it)."""
    return agent(run)["metrics"].get(name)


# (category, outcome, label): the figures the table reports, in this order.
HEADLINES = (
    ("selection", "top1", "top-1 function (candidates)"),
    ("selection", "args", "function and arguments"),
    ("selection_pool", "top1", "top-1 of all functions"),
    ("selection_pool", "top5", "top-5 of all functions"),
    ("timing", "balanced", "call / no call, balanced accuracy"),
    ("planning", "exact", "exact plan (function names)"),
    ("planning", "f1", "plan F1 (function names)"),
)


def has_items(run: RunView) -> bool:
    s = run.summary("all")
    block = s.extra.get("agent") if s else None
    return isinstance(block, dict) and isinstance(block.get("items"), dict)


def pooled_items(runs: list[RunView], category: str) -> dict | None:
    """One category's items over `runs` (repetitions concatenated); None when absent."""
    blocks = [agent(r)["items"].get(category) for r in runs]
    blocks = [b for b in blocks if isinstance(b, dict)]
    if not blocks:
        return None
    out: dict = {"outcomes": {}, "latency_ms": [], "labels": []}
    for b in blocks:
        for k, v in (b.get("outcomes") or {}).items():
            out["outcomes"].setdefault(k, []).extend(v)
        out["latency_ms"].extend(b.get("latency_ms") or [])
        out["labels"].extend(b.get("labels") or [])
    return out


def item_rows(runs: list[RunView]) -> list[dict]:
    """Per (category, metric, strategy): accuracy % with its bootstrap CI, n, latency."""
    by_strategy: dict[str, list[RunView]] = {}
    for r in runs:
        by_strategy.setdefault(str(agent(r)["strategy"]), []).append(r)
    rows = []
    for cat, metric, label in HEADLINES:
        for strategy in sorted(by_strategy):
            items = pooled_items(by_strategy[strategy], cat)
            if items is None:
                continue
            o = items["outcomes"]
            if metric == "balanced":
                if "correct" not in o or len(items["labels"]) != len(o["correct"]):
                    continue
                stat, n = balanced_of(o["correct"], items["labels"]), len(o["correct"])
            elif metric in o and o[metric]:
                stat, n = mean_of(o[metric]), len(o[metric])
            else:
                continue
            ci = bootstrap(n, stat)
            lat = items["latency_ms"]
            rows.append({"category": cat, "metric": label, "strategy": strategy, "n": n,
                         "value": 100 * ci.value, "ci_low": 100 * ci.low,
                         "ci_high": 100 * ci.high,
                         "p50_ms": float(np.percentile(lat, 50)) if lat else None,
                         "p99_ms": float(np.percentile(lat, 99)) if lat else None,
                         "runs": " ".join(str(r.id) for r in by_strategy[strategy])})
    return rows


def dataset_note(runs: list[RunView]) -> str:
    """Which dataset, version, split and tuning the runs report."""
    names = []
    for r in runs:
        a = agent(r)
        ds = a.get("dataset") or {}
        text = (f"{ds.get('name', '?')} (package {ds.get('package', '-')} "
                f"{ds.get('version', '?')}, licence {ds.get('licence', '?')})")
        if text not in names:
            names.append(text)
    a = agent(runs[0])
    tuning = a.get("tuning") or {}
    split = a.get("dev_test") or {}
    sizes = ", ".join(f"{c} {v.get('dev', 0)}/{v.get('test', 0)}" for c, v in split.items()
                      if isinstance(v, dict))
    thresholds = ", ".join(f"{k} {v:.3g}" for k, v in (tuning.get("thresholds") or {}).items())
    relevance = tuning.get("relevance") or {}
    coef = relevance.get("coef") or []
    model = (f" The fusion's call / no call is a logistic regression on the best BM25 score "
             f"and the best cosine (standardised weights {coef[0]:.2f} and {coef[1]:.2f}); its "
             "threshold is on that logit." if len(coef) == 2 else "")
    return (f"Dataset: {'; '.join(names)}. Reported on the test split (items hashed by id; "
            f"dev/test items per category: {sizes}); tuned on dev: fusion weight alpha = "
            f"{tuning.get('alpha', float('nan')):.2f} on BM25, timing thresholds {thresholds}."
            + model)


def build_items(ctx: ExportContext, footnotes: list[str]) -> Table:
    rows = item_rows(ctx.runs)
    if not rows:
        raise ExportError(f"{NAME}: the runs' agent items hold no outcome to report")
    return Table(
        name=NAME,
        caption="Agent capability per category and strategy, with each item's end-to-end "
                "latency (its pipeline through the gateway).",
        columns=[Column("category", "Category"), Column("metric", "Metric"),
                 Column("strategy", "Strategy"), Column("n", "Items"),
                 Column("value", "Accuracy (%)", 1), Column("ci_low", "CI low (%)", 1),
                 Column("ci_high", "CI high (%)", 1), Column("p50_ms", "p50 (ms)", 1),
                 Column("p99_ms", "p99 (ms)", 1)],
        rows=[{k: v for k, v in r.items() if k != "runs"} for r in rows],
        run_ids=[r.id for r in ctx.runs], footnotes=footnotes,
        notes=[BOOTSTRAP_METHOD, dataset_note(ctx.runs)],
    )


def build(ctx: ExportContext) -> Table:
    footnotes = enforce(ctx.runs, NAME, ctx.allow_mismatch)
    if ctx.runs and all(has_items(r) for r in ctx.runs):
        return build_items(ctx, footnotes)
    by_strategy = keyed(group_runs(ctx.runs), lambda r: str(agent(r)["strategy"]), NAME)
    metrics = sorted({m for g in by_strategy.values() for r in g.runs for m in agent(r)["metrics"]})
    rows = []
    for strategy in sorted(by_strategy):
        g = by_strategy[strategy]
        row = {"strategy": strategy}
        for m in metrics:
            row[m] = g.estimate(partial(metric, name=m), f"agent metric {m}")
        rows.append(row)
    return Table(
        name=NAME,
        caption="Agent capability per strategy.",
        columns=[Column("strategy", "Strategy")] + [Column(m, m.replace("_", " "), 2) for m in metrics],
        rows=rows, run_ids=[r.id for r in ctx.runs], footnotes=footnotes,
        notes=["Metric units follow their name suffix (_pct percent, _ms milliseconds)."],
    )
