"""Figures over offered load: latency vs rate (with saturation) and SLO attainment vs load."""

from __future__ import annotations

import plotly.graph_objects as go

from exports.accessors import slo_pct
from exports.baseline import enforce
from exports.context import ExportContext
from exports.figures.base import FigureResult
from exports.figures.style import DASHES, color, error_y, new_figure
from exports.groups import labels
from exports.saturation import (
    LOAD_KEYS,
    RULE_TEXT,
    RatePoint,
    capacity_note,
    rate_series,
    require_sweep,
    saturation,
)


def latency_vs_rate(ctx: ExportContext) -> FigureResult:
    footnotes = enforce(ctx.runs, "latency_vs_rate", ctx.allow_mismatch)
    series = rate_series(ctx.runs)
    require_sweep(series, "latency_vs_rate")
    names = labels([g for g, _ in series], ignore=LOAD_KEYS)
    fig = new_figure("single")
    data = []
    # Colour = configuration, dash = percentile; the legend lists each once (compact for 3.5 in).
    for dash, stat in zip(DASHES, ("p50", "p95", "p99"), strict=False):
        fig.add_trace(_legend_entry(stat, dict(color="black", dash=dash, width=1.2), "lines"))
    if len(series) > 1:
        for i, name in enumerate(names):
            fig.add_trace(_legend_entry(name, dict(color=color(i), width=3), "lines"))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="saturation",
                             marker=dict(symbol="x", size=7, color="black")))
    for i, (name, (_, points)) in enumerate(zip(names, series, strict=True)):
        rates = [p.rate for p in points]
        for dash, stat in zip(DASHES, ("p50", "p95", "p99"), strict=False):
            ests = [getattr(p, stat) for p in points]
            fig.add_trace(go.Scatter(
                x=rates, y=[e.mean for e in ests], error_y=error_y(ests), name=f"{name} {stat}",
                mode="lines+markers", line=dict(color=color(i), dash=dash, width=1.2),
                marker=dict(size=4), showlegend=False, **_hover(points),
            ))
        sat = saturation(points)
        for p in points:
            data.append({"series": name, "offered_rps": p.rate, "throughput_rps": p.throughput.mean,
                         "p50_ms": p.p50.mean, "p95_ms": p.p95.mean, "p99_ms": p.p99.mean,
                         "p99_ci95_half_ms": p.p99.half_width, "n": p.p99.n,
                         "saturation": sat.point is p, **_load_cols(p),
                         "runs": " ".join(map(str, p.group.run_ids))})
        if sat.point is not None:
            fig.add_vline(x=sat.point.rate, line=dict(color=color(i), dash="dot", width=1))
            fig.add_trace(go.Scatter(
                x=[sat.point.rate], y=[sat.point.p99.mean], mode="markers", showlegend=False,
                marker=dict(symbol="x", size=9, color=color(i)), name=f"{name} saturation",
            ))
    fig.update_xaxes(title_text="Offered load (req/s)")
    fig.update_yaxes(title_text="E2E latency (ms)", type="log")
    return FigureResult(
        "latency_vs_rate", fig, data,
        "Latency vs Request Rate: p50, p95 and p99 end-to-end latency (measured from the "
        "intended send time) of all requests; the cross and dotted line mark the saturation point. "
        + RULE_TEXT + _capacity_text(names, series),
        [r.id for r in ctx.runs], footnotes=footnotes,
    )


def _load_cols(p: RatePoint) -> dict:
    """The figure data's × capacity columns, present only when the runs carry a capacity."""
    if p.capacity is None:
        return {}
    return {"capacity_rps": p.capacity, "load_x_capacity": p.load}


def _hover(points: list[RatePoint]) -> dict:
    """Hover text giving each point's offered load in req/s and × capacity (when probed)."""
    if all(p.capacity is None for p in points):
        return {}
    return {"text": [f"{p.rate:g} req/s = {p.load:.2f}× capacity ({p.capacity:.1f} req/s)"
                     if p.capacity is not None else f"{p.rate:g} req/s" for p in points],
            "hoverinfo": "text+y"}


def _capacity_text(names, series) -> str:
    """Caption: each configuration's measured capacity (the x axis stays in req/s)."""
    note = capacity_note(names, series)
    return f" Offered load in req/s; {note}" if note else ""


def _legend_entry(name: str, line: dict, mode: str) -> go.Scatter:
    """A trace that only draws its legend item."""
    return go.Scatter(x=[None], y=[None], mode=mode, name=name, line=line)


def slo_vs_load(ctx: ExportContext) -> FigureResult:
    footnotes = enforce(ctx.runs, "slo_vs_load", ctx.allow_mismatch)
    series = rate_series(ctx.runs)
    require_sweep(series, "slo_vs_load")
    names = labels([g for g, _ in series], ignore=LOAD_KEYS)
    fig = new_figure("single")
    data = []
    for i, (name, (_, points)) in enumerate(zip(names, series, strict=True)):
        ests = [p.group.estimate(slo_pct, "SLO attainment") for p in points]
        fig.add_trace(go.Scatter(
            x=[p.rate for p in points], y=[e.mean for e in ests], error_y=error_y(ests),
            name=name, mode="lines+markers", line=dict(color=color(i), width=1.2),
            marker=dict(size=4), **_hover(points),
        ))
        data += [{"series": name, "offered_rps": p.rate, **_load_cols(p),
                  "slo_attainment_pct": e.mean, "ci95_half": e.half_width, "n": e.n,
                  "runs": " ".join(map(str, p.group.run_ids))}
                 for p, e in zip(points, ests, strict=True)]
    fig.update_xaxes(title_text="Offered load (req/s)")
    fig.update_yaxes(title_text="SLO attainment (%)", range=[0, 105])
    return FigureResult(
        "slo_vs_load", fig, data,
        "SLO attainment vs offered load: requests that met every SLO they carry over requests "
        "issued (failures and rejections count as misses)." + _capacity_text(names, series),
        [r.id for r in ctx.runs], footnotes=footnotes,
    )
