"""Heterogeneous hardware: embeddings on GPU-only / CPU-only / mixed pools, with cost.

When the runs sweep the offered load, each row is one load × pool and the table adds
the load and the embedding SLO attainment: where the CPU pool saturates and the mixed
pool spills to its GPU is what the sweep is for (suite D's `load-*` parts)."""

from __future__ import annotations

from exports.accessors import (
    cost_per_hour,
    latency,
    need_summary,
    pool_detail,
    pool_label,
    slo_pct,
)
from exports.baseline import enforce
from exports.context import ExportContext
from exports.errors import ExportError
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


def _load(run: RunView) -> float:
    rate = run.offered_rate
    if rate is None:
        raise ExportError(f"{NAME}: run {run.id} ({run.name}) has no offered rate (workload.rate)")
    return rate


def build(ctx: ExportContext) -> Table:
    footnotes = enforce(ctx.runs, NAME, ctx.allow_mismatch)
    groups = group_runs(ctx.runs)
    swept = len({g.first.offered_rate for g in groups}) > 1
    if swept:
        by_key = keyed(groups, lambda r: (_load(r), pool_label(r)), NAME)
        order = sorted(by_key, key=lambda k: (k[0], POOL_ORDER.index(k[1])))
    else:
        by_key = keyed(groups, lambda r: (None, pool_label(r)), NAME)
        order = sorted(by_key, key=lambda k: POOL_ORDER.index(k[1]))
    rows = []
    for key in order:
        g = by_key[key]
        row = {"load": key[0]} if swept else {}
        row |= {"pool": key[1], "detail": pool_detail(g.first),
               "throughput": g.estimate(throughput, "throughput"),
               "p99": g.estimate(lambda r: latency(r, measured_class(r), "e2e", "p99"), "e2e.p99")}
        if swept:
            row["slo"] = g.estimate(lambda r: slo_pct(r, measured_class(r)), "SLO attainment")
        row["cost"] = g.estimate(cost_per_million, "cost per million requests")
        row["per_dollar"] = g.estimate(throughput_per_dollar_hour, "throughput per dollar-hour")
        rows.append(row)
    cols = [Column("pool", "Pool"), Column("detail", "Backends"),
            Column("throughput", "Throughput (req/s)", 1), Column("p99", "p99 E2E (ms)", 1)]
    if swept:
        cols = [Column("load", "Offered load (req/s)", 0), *cols,
                Column("slo", "SLO attainment (%)", 1)]
    cols += [Column("cost", "Cost per 1M requests ($)", 2),
             Column("per_dollar", "Throughput per $/h (req/s)", 2)]
    notes = ["Backends and cost are those serving embeddings (the LLM backends are the same in "
             "every pool); cost per 1M requests = their price per hour / (throughput × 3600) × 10⁶."]
    if swept:
        notes.append("Offered load is the workload's target rate (all classes); throughput, p99 "
                     "and SLO attainment (failures and rejections count as misses) are those of "
                     "the embedding requests.")
    return Table(
        name=NAME,
        caption="Embedding serving on heterogeneous hardware pools"
                + (" across offered loads." if swept else "."),
        columns=cols, rows=rows, run_ids=[r.id for r in ctx.runs], footnotes=footnotes,
        notes=notes,
    )
