"""Throughput vs number of backends, with the ideal linear line."""

from __future__ import annotations

import plotly.graph_objects as go

from exports.accessors import need_summary
from exports.baseline import enforce
from exports.context import ExportContext
from exports.errors import ExportError
from exports.figures.base import FigureResult
from exports.figures.style import color, error_y, new_figure
from exports.groups import group_runs, keyed


def throughput_vs_backends(ctx: ExportContext) -> FigureResult:
    footnotes = enforce(ctx.runs, "throughput_vs_backends", ctx.allow_mismatch)
    by_n = keyed(group_runs(ctx.runs), lambda r: r.n_backends, "throughput_vs_backends")
    if len(by_n) < 2:
        raise ExportError(f"throughput_vs_backends: needs runs with at least two numbers of backends; found {sorted(by_n)}")
    if 1 not in by_n:
        raise ExportError(f"throughput_vs_backends: the ideal line needs a 1-backend run; found {sorted(by_n)}")
    ns = sorted(by_n)
    ests = [by_n[n].estimate(lambda r: need_summary(r, "all").throughput_rps, "throughput") for n in ns]
    base = ests[0].mean
    fig = new_figure("single")
    fig.add_trace(go.Scatter(x=ns, y=[base * n for n in ns], name="ideal (linear)", mode="lines",
                             line=dict(color="black", dash="dash", width=1)))
    fig.add_trace(go.Scatter(x=ns, y=[e.mean for e in ests], error_y=error_y(ests), name="measured",
                             mode="lines+markers", line=dict(color=color(0), width=1.5),
                             marker=dict(size=5)))
    fig.update_xaxes(title_text="Backends", tickvals=ns)
    fig.update_yaxes(title_text="Throughput (req/s)")
    data = [{"backends": n, "throughput_rps": e.mean, "ci95_half": e.half_width, "n": e.n,
             "ideal_rps": base * n, "runs": " ".join(map(str, by_n[n].run_ids))}
            for n, e in zip(ns, ests, strict=True)]
    return FigureResult(
        "throughput_vs_backends", fig, data,
        "Throughput vs number of backends; the dashed line is ideal linear scaling from the "
        "1-backend throughput.",
        [r.id for r in ctx.runs], footnotes=footnotes,
    )
