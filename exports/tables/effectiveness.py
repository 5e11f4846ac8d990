"""Control-plane effectiveness: SAGE vs vLLM-only vs separate services, per workload."""

from __future__ import annotations

from exports import slo
from exports.accessors import (
    BASELINE_ORDER,
    arrival_label,
    baseline,
    latency,
    need_summary,
    order_of,
    workload_label,
)
from exports.baseline import enforce
from exports.context import ExportContext
from exports.errors import ExportError
from exports.groups import group_runs, keyed
from exports.model import RunView
from exports.table import Column, Table

NAME = "effectiveness"
DESCRIPTION = ("SAGE vs vLLM-only vs separate services per workload: chat TTFT/E2E and embedding E2E "
               "percentiles, throughput, SLO attainment (all, per class, per tier), rejected or shed")
RELATIVE_NOTE = ("A load of F× capacity offers F times the highest rate the system's "
                 "configuration sustained in the capacity probe (run.capacity_rps); the offered "
                 "column gives that rate in req/s.")


def _lat(cls: str, metric: str, stat: str):
    return lambda r: latency(r, cls, metric, stat)


def workload_order(run: RunView) -> tuple:
    """Named workloads by name, then loads by arrival and numeric rate: a label such as
    "poisson 100 req/s" must come after "poisson 25 req/s", which text order gets wrong."""
    if run.section("workload").get("name") or run.offered_rate is None:
        return (0, workload_label(run), 0.0)
    if run.load_fraction is not None:
        return (1, arrival_label(run), run.load_fraction)
    return (1, arrival_label(run), run.offered_rate)


def _offered(run: RunView) -> float:
    rate = run.offered_rate
    if rate is None:
        raise ExportError(f"{NAME}: run {run.id} ({run.name}) has no offered rate")
    return rate


def build(ctx: ExportContext) -> Table:
    footnotes = enforce(ctx.runs, NAME, ctx.allow_mismatch)
    rows_by = keyed(group_runs(ctx.runs), lambda r: (workload_label(r), baseline(r)), NAME)
    cols = [Column("workload", "Workload"), Column("system", "System")]
    specs = []
    for cls, metric, label in (("chat", "ttft", "Chat TTFT"), ("chat", "e2e", "Chat E2E"),
                               ("embedding", "e2e", "Embed E2E")):
        for stat in ("p50", "p95", "p99"):
            key = f"{cls}_{metric}_{stat}"
            cols.append(Column(key, f"{label} {stat} (ms)", 1, group=f"{label} (ms)", sub=stat))
            specs.append((key, cls, metric, stat))
    relative = any(r.load_fraction is not None for r in ctx.runs)
    if relative:  # the row says × capacity; this column says what that was in req/s
        cols.insert(2, Column("offered", "Offered load (req/s)", 1))
    cols += [Column("throughput", "Throughput (req/s)", 1), *slo.columns(ctx.runs)]
    rows = []
    ordered = sorted(rows_by.items(), key=lambda kv: (workload_order(kv[1].first),
                                                      order_of(kv[0][1], BASELINE_ORDER)))
    for (wl, system), g in ordered:
        row = {"workload": wl, "system": system}
        if relative:
            row["offered"] = g.estimate(_offered, "offered rate")
        for key, cls, metric, stat in specs:
            # A workload without a class (no embeddings issued) shows a dash, not a zero.
            if g.first.summary(cls) is None:
                row[key] = None
            else:
                row[key] = g.estimate(_lat(cls, metric, stat), f"{cls} {metric}.{stat}")
        row["throughput"] = g.estimate(lambda r: need_summary(r, "all").throughput_rps, "throughput")
        row.update(slo.cells(g, ctx.runs))
        rows.append(row)
    return Table(
        name=NAME,
        caption="Control-plane effectiveness: SAGE (one control plane for LLM and embedding "
                "traffic) against the baselines on the same hardware budget, per workload.",
        columns=cols, rows=rows, run_ids=[r.id for r in ctx.runs], footnotes=footnotes,
        notes=["Latencies are measured from the intended send time (no coordinated omission); "
               "throughput counts completions per second of the measurement window; a dash "
               "means the workload issued no such requests.", slo.NOTE,
               *([RELATIVE_NOTE] if relative else [])],
    )
