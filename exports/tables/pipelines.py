"""Pipeline policies × traffic pattern × load: pipeline E2E percentiles, deadline attainment, goodput."""

from __future__ import annotations

from functools import partial

from exports.accessors import (
    load_label,
    load_order,
    need_summary,
    order_of,
    pattern_label,
    policy,
)
from exports.baseline import enforce
from exports.context import ExportContext
from exports.groups import group_runs, keyed
from exports.model import RunView
from exports.table import Column, Table

NAME = "pipelines"
DESCRIPTION = ("Pipeline policies × load: pipeline E2E p50/p95/p99, deadline attainment, "
               "pipeline throughput and goodput (docs/pipelines.md)")
# Per-call baselines first, then the pipeline-aware policies.
PIPELINE_POLICY_ORDER = ("fifo", "priority", "slo", "hybrid", "staggered", "pipeline-las",
                         "pipeline-fcfs", "pipeline-hybrid", "pipeline-slack")


def _pipe(run: RunView, what: str):
    s = need_summary(run, "pipeline")
    if what in ("throughput_rps", "goodput_rps", "slo_attainment"):
        return getattr(s, what)
    return s.latency("e2e", what)


def build(ctx: ExportContext) -> Table:
    footnotes = enforce(ctx.runs, NAME, ctx.allow_mismatch)
    rows_by = keyed(group_runs(ctx.runs), lambda r: (pattern_label(r), load_order(r),
                                                     load_label(r), policy(r)), NAME)
    cols = [
        Column("pattern", "Traffic pattern"), Column("load", "Offered load"),
        Column("policy", "Policy"),
        Column("p50", "Pipeline E2E p50 (ms)", group="Pipeline E2E (ms)", sub="p50"),
        Column("p95", "Pipeline E2E p95 (ms)", group="Pipeline E2E (ms)", sub="p95"),
        Column("p99", "Pipeline E2E p99 (ms)", group="Pipeline E2E (ms)", sub="p99"),
        Column("attain", "Deadline attainment", 3),
        Column("thr", "Pipelines/s", 2), Column("good", "Pipeline goodput (/s)", 2),
    ]
    rows = []
    for (pat, _, load, pol), g in sorted(rows_by.items(), key=lambda kv: (
            kv[0][0], kv[0][1], order_of(kv[0][3], PIPELINE_POLICY_ORDER))):
        rows.append({
            "pattern": pat, "load": load, "policy": pol,
            **{p: g.estimate(partial(_pipe, what=p), f"pipeline e2e.{p}")
               for p in ("p50", "p95", "p99")},
            "attain": g.estimate(lambda r: _pipe(r, "slo_attainment"), "deadline attainment"),
            "thr": g.estimate(lambda r: _pipe(r, "throughput_rps"), "pipeline throughput"),
            "good": g.estimate(lambda r: _pipe(r, "goodput_rps"), "pipeline goodput"),
        })
    return Table(
        name=NAME,
        caption="Pipeline jobs under per-call and pipeline-aware policies, per traffic pattern and offered load.",
        columns=cols, rows=rows, run_ids=[r.id for r in ctx.runs], footnotes=footnotes,
        notes=["E2E = from the job's intended start to its last stage's end; deadline "
               "attainment = jobs issued in the window that completed within their "
               "end-to-end deadline over jobs issued (failures and rejections are misses); "
               "goodput = such jobs completed in the window per second."],
    )
