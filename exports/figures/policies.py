"""Per-policy figures: latency CDFs and wait-time distributions (histograms), queue depth over time."""

from __future__ import annotations

import plotly.graph_objects as go

from exports.accessors import POLICY_ORDER, order_of, pattern_label
from exports.baseline import enforce
from exports.context import ExportContext
from exports.errors import ExportError
from exports.figures.base import FigureResult
from exports.figures.style import DASHES, color, new_figure
from exports.groups import Group, group_runs, labels
from store.histograms import percentile_ms


def _policy_groups(ctx: ExportContext) -> list[tuple[str, Group]]:
    """One series per configuration, named by what differs (usually the policy), policies in order."""
    groups = group_runs(ctx.runs)
    names = labels(groups)

    def key(item: tuple[str, Group]) -> tuple:
        pol = item[1].first.section("control_plane").get("policy", "")
        return (pattern_label(item[1].first), order_of(str(pol), POLICY_ORDER), item[0])

    return sorted(zip(names, groups, strict=True), key=key)


def _histogram(ctx: ExportContext, g: Group, metric: str, cls: str, what: str):
    h = ctx.histogram(g.run_ids, metric, cls)
    if h is None or h.get_total_count() == 0:
        raise ExportError(f"{what}: runs {g.run_ids} have no {metric} histogram for class {cls!r}")
    return h


def latency_cdf(ctx: ExportContext) -> FigureResult:
    footnotes = enforce(ctx.runs, "latency_cdf", ctx.allow_mismatch)
    fig = new_figure("single")
    data = []
    for i, (name, g) in enumerate(_policy_groups(ctx)):
        h = _histogram(ctx, g, "ttft", "chat", "latency_cdf")
        total = h.get_total_count()
        xs, ys, seen = [], [], 0
        for item in h.get_recorded_iterator():
            seen += item.count_added_in_this_iter_step
            xs.append(h.get_highest_equivalent_value(item.value_iterated_to) / 1000.0)
            ys.append(seen / total)
        fig.add_trace(go.Scatter(x=xs, y=ys, name=name, mode="lines", line_shape="hv",
                                 line=dict(color=color(i), dash=DASHES[i % len(DASHES)], width=1.2)))
        data += [{"series": name, "ttft_ms": x, "cdf": y, "runs": " ".join(map(str, g.run_ids))}
                 for x, y in zip(xs, ys, strict=True)]
    fig.update_xaxes(title_text="Chat TTFT (ms)", type="log")
    fig.update_yaxes(title_text="Fraction of requests", range=[0, 1.02])
    return FigureResult(
        "latency_cdf", fig, data,
        "CDF of chat time to first token per policy, from HDR histograms (3 significant digits) "
        "merged over repetitions.",
        [r.id for r in ctx.runs], footnotes=footnotes, error_bars=False,
    )


def wait_distribution(ctx: ExportContext) -> FigureResult:
    footnotes = enforce(ctx.runs, "wait_distribution", ctx.allow_mismatch)
    fig = new_figure("single")
    data = []
    for i, (name, g) in enumerate(_policy_groups(ctx)):
        h = _histogram(ctx, g, "queue_wait", "all", "wait_distribution")
        q = {p: percentile_ms(h, p) for p in (1, 25, 50, 75, 99)}
        fig.add_trace(go.Box(
            x=[name], q1=[q[25]], median=[q[50]], q3=[q[75]], lowerfence=[q[1]], upperfence=[q[99]],
            name=name, marker_color=color(i), line=dict(width=1), showlegend=False,
        ))
        data.append({"series": name, "p1_ms": q[1], "p25_ms": q[25], "p50_ms": q[50],
                     "p75_ms": q[75], "p99_ms": q[99], "count": h.get_total_count(),
                     "runs": " ".join(map(str, g.run_ids))})
    fig.update_yaxes(title_text="Queue wait (ms)")
    fig.update_xaxes(title_text="Policy")
    return FigureResult(
        "wait_distribution", fig, data,
        "Wait-time distribution per policy (arrival at the control plane to dispatch): boxes span "
        "p25–p75 with the median, whiskers p1 and p99, from HDR histograms merged over repetitions.",
        [r.id for r in ctx.runs], footnotes=footnotes, error_bars=False,
    )


def queue_depth(ctx: ExportContext) -> FigureResult:
    footnotes = enforce(ctx.runs, "queue_depth", ctx.allow_mismatch)
    fig = new_figure("double")
    data = []
    for i, (name, g) in enumerate(_policy_groups(ctx)):
        by_t: dict[float, list[int]] = {}
        for r in g.runs:
            for s in ctx.samples(r.id):
                by_t.setdefault(s.t_s, []).append(s.queue_depth)
        if not by_t:
            raise ExportError(f"queue_depth: runs {g.run_ids} have no samples")
        ts = sorted(by_t)
        ys = [sum(by_t[t]) / len(by_t[t]) for t in ts]
        fig.add_trace(go.Scatter(x=ts, y=ys, name=name, mode="lines",
                                 line=dict(color=color(i), dash=DASHES[i % len(DASHES)], width=1.2)))
        data += [{"series": name, "t_s": t, "queue_depth": y, "runs": len(by_t[t])}
                 for t, y in zip(ts, ys, strict=True)]
    fig.update_xaxes(title_text="Time since start (s)")
    fig.update_yaxes(title_text="Queue depth (requests)")
    return FigureResult(
        "queue_depth", fig, data,
        "Control-plane queue depth over time per policy (all classes, per-second samples, mean "
        "over repetitions; warm-up included).",
        [r.id for r in ctx.runs], width="double", footnotes=footnotes, error_bars=False,
    )
