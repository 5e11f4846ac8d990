"""Policy comparison: fifo / priority / slo / hybrid × traffic pattern."""

from __future__ import annotations

from exports import slo
from exports.accessors import (
    POLICY_ORDER,
    latency,
    load_label,
    load_order,
    order_of,
    pattern_label,
    policy,
)
from exports.baseline import enforce
from exports.context import ExportContext
from exports.errors import ExportError
from exports.groups import group_runs, keyed
from exports.model import RunView
from exports.table import Column, Table

NAME = "policies"
DESCRIPTION = ("Scheduling policies × traffic pattern: chat TTFT/E2E, SLO attainment (all, per class, "
               "per tier), rejected or shed, queue depth, wait time p50/p99")


def mean_queue_depth(ctx: ExportContext, run: RunView) -> float:
    """Mean total queue depth over the measurement window (warm-up samples excluded)."""
    samples = [s for s in ctx.samples(run.id) if s.t_s >= run.warmup_s]
    if not samples:
        raise ExportError(f"run {run.id} ({run.name}) has no samples after warm-up (queue depth)")
    return sum(s.queue_depth for s in samples) / len(samples)


def build(ctx: ExportContext) -> Table:
    footnotes = enforce(ctx.runs, NAME, ctx.allow_mismatch)
    rows_by = keyed(group_runs(ctx.runs),
                    lambda r: (pattern_label(r), load_order(r), load_label(r), policy(r)), NAME)
    cols = [
        Column("pattern", "Traffic pattern"), Column("load", "Offered load"),
        Column("policy", "Policy"),
        Column("ttft_p50", "Chat TTFT p50 (ms)", group="Chat TTFT (ms)", sub="p50"),
        Column("ttft_p99", "Chat TTFT p99 (ms)", group="Chat TTFT (ms)", sub="p99"),
        Column("e2e_p99", "Chat E2E p99 (ms)"), *slo.columns(ctx.runs),
        Column("queue", "Mean queue depth (req)"),
        Column("wait_p50", "Wait p50 (ms)", 2, group="Wait (ms)", sub="p50"),
        Column("wait_p99", "Wait p99 (ms)", 2, group="Wait (ms)", sub="p99"),
    ]
    rows = []
    for (pat, _, load, pol), g in sorted(
            rows_by.items(), key=lambda kv: (kv[0][0], kv[0][1], order_of(kv[0][3], POLICY_ORDER))):
        rows.append({
            "pattern": pat, "load": load, "policy": pol,
            "ttft_p50": g.estimate(lambda r: latency(r, "chat", "ttft", "p50"), "chat ttft.p50"),
            "ttft_p99": g.estimate(lambda r: latency(r, "chat", "ttft", "p99"), "chat ttft.p99"),
            "e2e_p99": g.estimate(lambda r: latency(r, "chat", "e2e", "p99"), "chat e2e.p99"),
            **slo.cells(g, ctx.runs),
            "queue": g.estimate(lambda r: mean_queue_depth(ctx, r), "queue depth"),
            "wait_p50": g.estimate(lambda r: latency(r, "all", "queue_wait", "p50"), "queue_wait.p50"),
            "wait_p99": g.estimate(lambda r: latency(r, "all", "queue_wait", "p99"), "queue_wait.p99"),
        })
    return Table(
        name=NAME,
        caption="Scheduling policies under each traffic pattern.",
        columns=cols, rows=rows, run_ids=[r.id for r in ctx.runs], footnotes=footnotes,
        notes=[slo.NOTE,
               "Wait = time from arrival at the control plane to dispatch to a backend; queue "
               "depth is the mean of per-second samples of all control-plane queues after warm-up."],
    )
