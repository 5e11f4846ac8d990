"""Per-client latency and Jain fairness vs number of clients.

Reads what loadgen.metrics.aggregate writes into summary 'all' extra_json:
`clients` {client_id: {"issued", "completed", "e2e_p50_ms", "e2e_p99_ms", ...}} and
`fairness_jain` (Jain's index over completed requests per client).
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from exports.baseline import enforce
from exports.context import ExportContext
from exports.errors import ExportError
from exports.figures.base import FigureResult
from exports.figures.style import TEMPLATE, color, error_y, size_px
from exports.groups import group_runs, keyed
from exports.model import RunView


def per_client(run: RunView) -> dict[str, dict]:
    s = run.summary("all")
    block = s.extra.get("clients") if s else None
    if not isinstance(block, dict) or not block:
        raise ExportError(f"run {run.id} ({run.name}): summary 'all' has no extra_json.clients")
    return block


def jain(run: RunView) -> float:
    s = run.summary("all")
    value = s.extra.get("fairness_jain") if s else None
    if not isinstance(value, int | float):
        raise ExportError(f"run {run.id} ({run.name}): summary 'all' has no extra_json.fairness_jain")
    return float(value)


def fairness(ctx: ExportContext) -> FigureResult:
    footnotes = enforce(ctx.runs, "fairness", ctx.allow_mismatch)
    by_n = keyed(group_runs(ctx.runs), lambda r: len(per_client(r)), "fairness")
    ns = sorted(by_n)
    w, h = size_px("double")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12)
    fig.update_layout(template=TEMPLATE, width=w, height=h, showlegend=False)
    data = []
    for n in ns:
        g = by_n[n]
        lat = [c["e2e_p50_ms"] for r in g.runs for c in per_client(r).values()
               if c.get("e2e_p50_ms") is not None]
        fig.add_trace(go.Box(x=[n] * len(lat), y=lat, marker_color=color(0), boxpoints="all",
                             jitter=0.4, pointpos=0, marker=dict(size=3), line=dict(width=1)),
                      row=1, col=1)
        for r in g.runs:
            data += [{"clients": n, "run": r.id, "client": cid, "e2e_p50_ms": c.get("e2e_p50_ms"),
                      "e2e_p99_ms": c.get("e2e_p99_ms"), "completed": c.get("completed")}
                     for cid, c in per_client(r).items()]
    ests = [by_n[n].estimate(jain, "Jain fairness") for n in ns]
    fig.add_trace(go.Scatter(x=ns, y=[e.mean for e in ests], error_y=error_y(ests), mode="lines+markers",
                             line=dict(color=color(1), width=1.5), marker=dict(size=5)), row=1, col=2)
    data += [{"clients": n, "jain_fairness": e.mean, "ci95_half": e.half_width, "n": e.n}
             for n, e in zip(ns, ests, strict=True)]
    fig.update_xaxes(title_text="Clients", tickvals=ns, row=1, col=1)
    fig.update_xaxes(title_text="Clients", tickvals=ns, row=1, col=2)
    fig.update_yaxes(title_text="Per-client median E2E (ms)", row=1, col=1)
    fig.update_yaxes(title_text="Jain fairness index", range=[0, 1.05], row=1, col=2)
    return FigureResult(
        "fairness", fig, data,
        "Left: median end-to-end latency of each client (one point per client and run). Right: "
        "Jain's fairness index over completed requests per client, (Σx)²/(n·Σx²), 1 = perfectly fair.",
        [r.id for r in ctx.runs], width="double", footnotes=footnotes,
    )
