"""Saturation: per configuration, the saturation point of its rate sweep and latency there."""

from __future__ import annotations

from exports.baseline import enforce
from exports.context import ExportContext
from exports.groups import labels
from exports.saturation import RULE_TEXT, rate_series, require_sweep, saturation
from exports.table import Column, Table

NAME = "saturation"
DESCRIPTION = "Per configuration: saturation point of the rate sweep, throughput and p99 E2E there"


def build(ctx: ExportContext) -> Table:
    footnotes = enforce(ctx.runs, NAME, ctx.allow_mismatch)
    series = rate_series(ctx.runs)
    require_sweep(series, NAME)
    names = labels([g for g, _ in series], ignore=("workload.rate",))
    rows = []
    for name, (_, points) in sorted(zip(names, series, strict=True), key=lambda x: x[0]):
        sat = saturation(points)
        top = points[-1].rate
        if sat.point is None:
            rows.append({"config": name, "rates": f"{points[0].rate:g}–{top:g}",
                         "point": f"not reached (> {top:g})", "throughput": None, "p99": None,
                         "reason": "–"})
        else:
            rows.append({"config": name, "rates": f"{points[0].rate:g}–{top:g}",
                         "point": sat.point.rate, "throughput": sat.point.throughput,
                         "p99": sat.point.p99, "reason": sat.reason})
    return Table(
        name=NAME,
        caption="Saturation point per configuration.",
        columns=[Column("config", "Configuration"), Column("rates", "Offered rates (req/s)"),
                 Column("point", "Saturation point (req/s)", 1),
                 Column("throughput", "Throughput at saturation (req/s)", 1),
                 Column("p99", "p99 E2E at saturation (ms)", 1), Column("reason", "Criterion")],
        rows=rows, run_ids=[r.id for r in ctx.runs], footnotes=footnotes, notes=[RULE_TEXT],
    )
