"""Pipeline latency as stacked stages per policy (docs/pipelines.md)."""

from __future__ import annotations

import plotly.graph_objects as go

from exports.accessors import load_label, need_summary, order_of
from exports.baseline import enforce
from exports.context import ExportContext
from exports.errors import ExportError
from exports.figures.base import FigureResult
from exports.figures.style import color, new_figure
from exports.groups import group_runs, labels
from exports.tables.pipelines import PIPELINE_POLICY_ORDER


def _stage_means(g) -> dict[str, dict[str, float]]:
    """kind -> stage -> mean stage time (ms) over the group's repetitions."""
    acc: dict[str, dict[str, list[float]]] = {}
    for r in g.runs:
        kinds = need_summary(r, "pipeline").extra.get("pipelines")
        if not kinds:
            raise ExportError(f"run {r.id} ({r.name}) has no per-stage breakdown "
                              "(summary extra.pipelines)")
        for kind, v in kinds.items():
            for stage, s in v["stages"].items():
                acc.setdefault(kind, {}).setdefault(stage, []).append(s["mean_ms"])
    return {k: {s: sum(x) / len(x) for s, x in st.items()} for k, st in acc.items()}


def one_load(runs: list) -> list:
    """The runs at the highest offered load below capacity (the busiest load every
    policy can still carry), else at the lowest load: one bar set per policy and
    kind, instead of one per load. Runs without a probed capacity are kept."""
    fracs = {r.load_fraction for r in runs if r.load_fraction is not None}
    if not fracs:
        return runs
    below = [f for f in fracs if f < 1.0]
    pick = max(below) if below else min(fracs)
    return [r for r in runs if r.load_fraction is None or r.load_fraction == pick]


def pipeline_stages(ctx: ExportContext) -> FigureResult:
    runs = one_load(ctx.runs)
    footnotes = enforce(runs, "pipeline_stages", ctx.allow_mismatch)
    groups = group_runs(runs)
    named = sorted(zip(labels(groups), groups, strict=True), key=lambda it: (order_of(
        str(it[1].first.section("control_plane").get("policy", "")), PIPELINE_POLICY_ORDER),
        it[0]))
    bars: dict[str, tuple[list[str], list[str], list[float]]] = {}  # stage -> (kind, series, ms)
    data = []
    for name, g in named:
        for kind, stages in sorted(_stage_means(g).items()):
            for stage, ms in stages.items():
                xs = bars.setdefault(stage, ([], [], []))
                xs[0].append(kind)
                xs[1].append(name)
                xs[2].append(ms)
                data.append({"series": name, "pipeline": kind, "stage": stage, "mean_ms": ms,
                             "runs": " ".join(map(str, g.run_ids))})
    loads = sorted({load_label(r) for r in runs} - {""})
    at = f" at {', '.join(loads)}" if loads else ""
    fig = new_figure("double")
    for i, (stage, (kinds, series, heights)) in enumerate(bars.items()):
        fig.add_trace(go.Bar(x=[kinds, series], y=heights, name=stage, marker_color=color(i)))
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title_text="Mean stage time (ms)")
    fig.update_xaxes(title_text="Pipeline kind (policy)")
    return FigureResult(
        "pipeline_stages", fig, data,
        f"Pipeline latency as stacked stages{at}: each stage's mean time from its release to "
        "its end, over completed jobs, per pipeline kind and policy (mean over repetitions). "
        "Parallel branches are stacked too, so a bar can exceed the job's E2E.",
        [r.id for r in runs], width="double", footnotes=footnotes, error_bars=False,
    )
