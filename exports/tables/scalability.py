"""Throughput vs number of backends, in the paper's format.

Columns: Backends | Throughput (req/s) | Speedup | Control Plane Overhead (%).
"""

from __future__ import annotations

from exports.accessors import need_summary, overhead_pct
from exports.baseline import enforce
from exports.context import ExportContext
from exports.errors import ExportError
from exports.groups import group_runs, keyed
from exports.model import RunView
from exports.table import Column, Table

NAME = "scalability"
DESCRIPTION = "Throughput vs number of backends: throughput, speedup over 1 backend, control-plane overhead"


def build(ctx: ExportContext) -> Table:
    footnotes = enforce(ctx.runs, NAME, ctx.allow_mismatch)
    by_n = keyed(group_runs(ctx.runs), lambda r: r.n_backends, NAME)
    if len(by_n) < 2:
        raise ExportError(f"{NAME}: needs runs with at least two numbers of backends; found {sorted(by_n)}")
    if 1 not in by_n:
        raise ExportError(f"{NAME}: speedup needs a run with 1 backend; found {sorted(by_n)}")
    thr = {n: g.estimate(lambda r: need_summary(r, "all").throughput_rps, "throughput")
           for n, g in by_n.items()}
    rows = [{
        "backends": n,
        "throughput": thr[n],
        "speedup": thr[n].mean / thr[1].mean,
        "overhead": by_n[n].estimate(overhead_pct, "control-plane overhead"),
    } for n in sorted(by_n)]
    return Table(
        name=NAME,
        caption="Throughput vs Number of Backends.",
        columns=[Column("backends", "Backends"), Column("throughput", "Throughput (req/s)", 1),
                 Column("speedup", "Speedup", 2, "×"),
                 Column("overhead", "Control Plane Overhead (%)", 2)],
        rows=rows, run_ids=[r.id for r in ctx.runs], footnotes=footnotes,
        notes=["Speedup = mean throughput over the mean 1-backend throughput; overhead = "
               "control-plane time per request as a percentage of mean E2E latency: "
               + _overhead_source(ctx.runs)],
    )


def _overhead_source(runs: list[RunView]) -> str:
    """Which control-plane time the overhead column counts, from the runs' configs."""
    costs = sorted({float(r.section("control_plane").get("gateway_us_per_request") or 0)
                    for r in runs if r.mode == "sim"})
    live = any(r.mode != "sim" for r in runs)
    if live and not costs:
        return "the live gateway's own time per request (measured)."
    if not costs or costs == [0.0]:
        return ("the core's decision time only (measured); the gateway is not modelled, "
                "so this is the core's cost, not the serving path's.")
    us = ", ".join(f"{c:g}" for c in costs if c)
    return (f"the core's decision time (measured) plus the gateway, modelled as one process "
            f"spending {us} us of CPU per request (the live gateway's measured cost, "
            "benches/bench_gateway.py) with requests queueing for it past its capacity.")
