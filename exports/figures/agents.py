"""Accuracy vs latency of the agent strategies (suite E), one panel per category."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from exports.baseline import enforce
from exports.bootstrap import BOOTSTRAP_METHOD
from exports.context import ExportContext
from exports.errors import ExportError
from exports.figures.base import FigureResult
from exports.figures.style import TEMPLATE, color, size_px
from exports.tables.agents import dataset_note, has_items, item_rows

# Each category's headline metric (the table's label).
PANELS = (("selection", "top-1 function (candidates)", "Selection: top-1"),
          ("selection_pool", "top-1 of all functions", "Pool: top-1"),
          ("timing", "call / no call, balanced accuracy", "Timing: balanced acc."),
          ("planning", "exact plan (function names)", "Planning: exact"))


def accuracy_latency(ctx: ExportContext) -> FigureResult:
    name = "agent_accuracy_latency"
    footnotes = enforce(ctx.runs, name, ctx.allow_mismatch)
    if not ctx.runs or not all(has_items(r) for r in ctx.runs):
        raise ExportError(f"{name}: needs agent runs with per-item outcomes (suite E's "
                          "extra_json.agent.items)")
    rows = item_rows(ctx.runs)
    panels = [p for p in PANELS if any(r["category"] == p[0] and r["metric"] == p[1]
                                       for r in rows)]
    strategies = sorted({r["strategy"] for r in rows})
    w, h = size_px("double")
    fig = make_subplots(rows=1, cols=len(panels), horizontal_spacing=0.07,
                        subplot_titles=[p[2] for p in panels])
    fig.update_layout(template=TEMPLATE, width=w, height=h + 30)
    data = []
    for col, (cat, metric, _) in enumerate(panels, 1):
        for i, strategy in enumerate(strategies):
            r = next((x for x in rows if x["category"] == cat and x["metric"] == metric
                      and x["strategy"] == strategy), None)
            if r is None or r["p50_ms"] is None:
                continue
            x = max(r["p50_ms"], 0.01)
            fig.add_trace(go.Scatter(
                x=[x], y=[r["value"]], mode="markers", name=strategy, legendgroup=strategy,
                showlegend=col == 1, marker=dict(color=color(i), size=7, symbol=i),
                error_y=dict(type="data", symmetric=False, array=[r["ci_high"] - r["value"]],
                             arrayminus=[r["value"] - r["ci_low"]], thickness=1),
                error_x=dict(type="data", symmetric=False,
                             array=[max(r["p99_ms"] - x, 0.0)], arrayminus=[0.0],
                             thickness=1)), row=1, col=col)
            data.append({"category": cat, "metric": metric, "strategy": strategy,
                         "accuracy_pct": r["value"], "ci_low_pct": r["ci_low"],
                         "ci_high_pct": r["ci_high"], "p50_ms": r["p50_ms"],
                         "p99_ms": r["p99_ms"], "n": r["n"], "runs": r["runs"]})
        fig.update_xaxes(type="log", title_text="latency p50 → p99 (ms)", row=1, col=col)
    for col in range(1, len(panels) + 1):
        fig.update_yaxes(title_text="Accuracy (%)" if col == 1 else "(%)", range=[0, 100],
                         row=1, col=col)
    fig.update_annotations(font_size=9)
    return FigureResult(
        name, fig, data,
        "Agent strategies: accuracy per category against the latency of an item's pipeline "
        "through the gateway (marker at p50, bar to p99; log scale). " + BOOTSTRAP_METHOD
        + " " + dataset_note(ctx.runs),
        [r.id for r in ctx.runs], width="double", footnotes=footnotes, error_bars=False)
