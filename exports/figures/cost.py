"""Cost-performance bars per hardware pool."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from exports.accessors import pool_label
from exports.baseline import enforce
from exports.context import ExportContext
from exports.figures.base import FigureResult
from exports.figures.style import TEMPLATE, color, error_y, size_px
from exports.groups import group_runs, keyed
from exports.tables.heterogeneous import POOL_ORDER, cost_per_million, throughput_per_dollar_hour


def cost_performance(ctx: ExportContext) -> FigureResult:
    footnotes = enforce(ctx.runs, "cost_performance", ctx.allow_mismatch)
    by_pool = keyed(group_runs(ctx.runs), pool_label, "cost_performance")
    pools = sorted(by_pool, key=POOL_ORDER.index)
    per_dollar = [by_pool[p].estimate(throughput_per_dollar_hour, "throughput per $/h") for p in pools]
    cost = [by_pool[p].estimate(cost_per_million, "cost per 1M requests") for p in pools]
    w, h = size_px("double")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.14)
    fig.update_layout(template=TEMPLATE, width=w, height=h, showlegend=False)
    colors = [color(i) for i in range(len(pools))]
    fig.add_trace(go.Bar(x=pools, y=[e.mean for e in per_dollar], error_y=error_y(per_dollar),
                         marker_color=colors), row=1, col=1)
    fig.add_trace(go.Bar(x=pools, y=[e.mean for e in cost], error_y=error_y(cost),
                         marker_color=colors), row=1, col=2)
    fig.update_xaxes(title_text="Hardware pool")
    fig.update_yaxes(title_text="Throughput per $/h (req/s)", row=1, col=1)
    fig.update_yaxes(title_text="Cost per 1M requests ($)", row=1, col=2)
    data = [{"pool": p, "throughput_per_dollar_hour": a.mean, "tpd_ci95_half": a.half_width,
             "cost_per_million_usd": c.mean, "cost_ci95_half": c.half_width, "n": a.n,
             "runs": " ".join(map(str, by_pool[p].run_ids))}
            for p, a, c in zip(pools, per_dollar, cost, strict=True)]
    return FigureResult(
        "cost_performance", fig, data,
        "Cost-performance of hardware pools: throughput per dollar-hour (left, higher is better) "
        "and cost per million requests (right, lower is better), from configured backend prices.",
        [r.id for r in ctx.runs], width="double", footnotes=footnotes,
    )
