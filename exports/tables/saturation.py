"""Saturation: per configuration, the saturation point of its rate sweep and latency there,
with its goodput capacity; offered load also as × capacity when the runs carry one."""

from __future__ import annotations

from exports.baseline import enforce
from exports.context import ExportContext
from exports.goodput import RULE_TEXT as GOODPUT_RULE
from exports.goodput import goodput_capacity
from exports.groups import labels
from exports.saturation import (
    LOAD_KEYS,
    RULE_TEXT,
    capacity_note,
    rate_series,
    rates_text,
    require_sweep,
    saturation,
)
from exports.table import Column, Table

NAME = "saturation"
DESCRIPTION = ("Per configuration: saturation point of the rate sweep, throughput and p99 E2E "
               "there, goodput capacity (offered load also × measured capacity when probed)")


def _row(name: str, points) -> dict:
    sat = saturation(points)
    top = points[-1].rate
    row = {"config": name, "rates": rates_text(points), "capacity": points[0].capacity,
           "goodput": goodput_capacity(points),
           "goodput_x": goodput_capacity(points, relative=True)}
    if sat.point is None:
        return row | {"point": f"not reached (> {top:g})", "point_x": None, "throughput": None,
                      "p99": None, "reason": "–"}
    return row | {"point": sat.point.rate, "point_x": sat.point.load,
                  "throughput": sat.point.throughput, "p99": sat.point.p99,
                  "reason": sat.reason}


def build(ctx: ExportContext) -> Table:
    footnotes = enforce(ctx.runs, NAME, ctx.allow_mismatch)
    series = rate_series(ctx.runs)
    require_sweep(series, NAME)
    names = labels([g for g, _ in series], ignore=LOAD_KEYS)
    rows = [_row(name, points) for name, (_, points)
            in sorted(zip(names, series, strict=True), key=lambda x: x[0])]
    relative = any(r["capacity"] is not None for r in rows)
    cols = [Column("config", "Configuration"), Column("rates", "Offered rates (req/s)")]
    cols += [Column("capacity", "Measured capacity (req/s)", 1)] if relative else []
    cols += [Column("point", "Saturation point (req/s)", 1)]
    cols += [Column("point_x", "Saturation point (× capacity)", 2)] if relative else []
    cols += [Column("throughput", "Throughput at saturation (req/s)", 1),
             Column("p99", "p99 E2E at saturation (ms)", 1), Column("reason", "Criterion"),
             Column("goodput", "Goodput capacity (req/s)", 1)]
    cols += [Column("goodput_x", "Goodput capacity (× capacity)", 2)] if relative else []
    keys = {c.key for c in cols}
    note = capacity_note(sorted(names), [s for _, s in sorted(zip(names, series, strict=True),
                                                             key=lambda x: x[0])])
    return Table(
        name=NAME,
        caption="Saturation point and goodput capacity per configuration.",
        columns=cols, rows=[{k: v for k, v in r.items() if k in keys} for r in rows],
        run_ids=[r.id for r in ctx.runs], footnotes=footnotes,
        notes=[RULE_TEXT, GOODPUT_RULE, *([note] if note else [])],
    )
