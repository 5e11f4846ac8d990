"""Heterogeneous hardware: embeddings on GPU-only / CPU-only / mixed pools, with cost."""

from __future__ import annotations

from exports.accessors import cost_per_hour, latency, need_summary, pool_detail, pool_label
from exports.baseline import enforce
from exports.context import ExportContext
from exports.groups import group_runs, keyed
from exports.model import RunView
from exports.table import Column, Table

NAME = "heterogeneous"
DESCRIPTION = "GPU-only / CPU-only / mixed pools: throughput, p99, cost per million requests, throughput per dollar-hour"
POOL_ORDER = ("GPU-only", "CPU-only", "mixed")


def measured_class(run: RunView) -> str:
    """Embedding traffic when the run has it, else every class together."""
    return "embedding" if run.summary("embedding") is not None else "all"


def throughput(run: RunView) -> float:
    return need_summary(run, measured_class(run)).throughput_rps


def cost_per_million(run: RunView) -> float:
    """Dollars per million requests: pool price per hour / requests served per hour × 10⁶."""
    return cost_per_hour(run) / (throughput(run) * 3600.0) * 1e6


def throughput_per_dollar_hour(run: RunView) -> float:
    return throughput(run) / cost_per_hour(run)


def build(ctx: ExportContext) -> Table:
    footnotes = enforce(ctx.runs, NAME, ctx.allow_mismatch)
    by_pool = keyed(group_runs(ctx.runs), pool_label, NAME)
    rows = []
    for pool in sorted(by_pool, key=lambda p: POOL_ORDER.index(p)):
        g = by_pool[pool]
        rows.append({
            "pool": pool, "detail": pool_detail(g.first),
            "throughput": g.estimate(throughput, "throughput"),
            "p99": g.estimate(lambda r: latency(r, measured_class(r), "e2e", "p99"), "e2e.p99"),
            "cost": g.estimate(cost_per_million, "cost per million requests"),
            "per_dollar": g.estimate(throughput_per_dollar_hour, "throughput per dollar-hour"),
        })
    return Table(
        name=NAME,
        caption="Embedding serving on heterogeneous hardware pools.",
        columns=[Column("pool", "Pool"), Column("detail", "Backends"),
                 Column("throughput", "Throughput (req/s)", 1), Column("p99", "p99 E2E (ms)", 1),
                 Column("cost", "Cost per 1M requests ($)", 2),
                 Column("per_dollar", "Throughput per $/h (req/s)", 2)],
        rows=rows, run_ids=[r.id for r in ctx.runs], footnotes=footnotes,
        notes=["Backends and cost are those serving embeddings (the LLM backends are the same in "
               "every pool); cost per 1M requests = their price per hour / (throughput × 3600) × 10⁶."],
    )
