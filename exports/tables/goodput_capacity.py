"""Goodput capacity per configuration: all requests and each class, in req/s and × capacity."""

from __future__ import annotations

from exports.baseline import enforce
from exports.context import ExportContext
from exports.goodput import RULE_TEXT, goodput_capacity
from exports.groups import labels
from exports.saturation import LOAD_KEYS, capacity_note, rate_series, rates_text, require_sweep
from exports.slo import CLASS_ORDER
from exports.table import Column, Table

NAME = "goodput_capacity"
DESCRIPTION = ("Per configuration: the highest offered rate at which >= 90% of requests met all "
               "their SLOs (all and per class; mean over seeds), also × measured capacity")


def _classes(ctx: ExportContext) -> list[str]:
    present = {c for r in ctx.runs for c in r.summaries}
    return [c for c in CLASS_ORDER if c in present]


def build(ctx: ExportContext) -> Table:
    footnotes = enforce(ctx.runs, NAME, ctx.allow_mismatch)
    series = rate_series(ctx.runs)
    require_sweep(series, NAME)
    named = sorted(zip(labels([g for g, _ in series], ignore=LOAD_KEYS), series, strict=True),
                   key=lambda x: x[0])
    classes = _classes(ctx)
    relative = any(pts[0].capacity is not None for _, (_, pts) in named)
    rows = []
    for name, (_, pts) in named:
        row = {"config": name, "rates": rates_text(pts), "capacity": pts[0].capacity,
               "all": goodput_capacity(pts), "all_x": goodput_capacity(pts, relative=True)}
        row |= {c: goodput_capacity(pts, c) for c in classes}
        rows.append(row)
    cols = [Column("config", "Configuration"), Column("rates", "Offered rates (req/s)")]
    if relative:
        cols += [Column("capacity", "Measured capacity (req/s)", 1),
                 Column("all_x", "Goodput capacity, all (× capacity)", 2)]
    cols += [Column("all", "Goodput capacity, all (req/s)", 1)]
    cols += [Column(c, f"Goodput capacity, {c} (req/s)", 1) for c in classes]
    keys = {c.key for c in cols}
    note = capacity_note([n for n, _ in named], [s for _, s in named])
    return Table(
        name=NAME, caption="Goodput capacity per configuration.", columns=cols,
        rows=[{k: v for k, v in r.items() if k in keys} for r in rows],
        run_ids=[r.id for r in ctx.runs], footnotes=footnotes,
        notes=[RULE_TEXT, "A class column applies the 90% bar to that class's requests alone.",
               *([note] if note else [])],
    )
