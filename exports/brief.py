"""The results brief: quantitative claims computed from the data, honest when they fail.

Each claim compares repetition groups with a Welch 95% interval on the
difference of means, names the runs behind it and says whether it holds; with a
single run per side it is reported as untested.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from exports import brief_agents
from exports.accessors import (
    baseline,
    latency,
    load_label,
    need_summary,
    overhead_pct,
    pattern_label,
    policy,
    pool_label,
    slo_pct,
    workload_label,
)
from exports.context import ExportContext
from exports.errors import ExportError
from exports.figures.base import FigureResult
from exports.goodput import attainment_of, per_seed
from exports.groups import Group, group_runs, keyed, labels
from exports.model import RunView
from exports.saturation import rate_series, require_sweep, saturation
from exports.stats import CI_METHOD, difference, estimate
from exports.table import Table
from exports.tables.heterogeneous import throughput_per_dollar_hour

MAIN_PAPER = {"effectiveness", "policies", "scalability", "latency_vs_rate",
              "throughput_vs_backends", "latency_cdf"}
OVERHEAD_LIMIT_PCT = 1.0
LINEAR_EFFICIENCY = 0.9


@dataclass(frozen=True)
class Claim:
    text: str
    holds: bool | None  # None: cannot be tested (one run per side) or informational
    runs: list[int]
    info: bool = False  # a figure stated for reference, not a claim: printed without a mark


def _values(g: Group, fn: Callable[[RunView], float]) -> list[float]:
    return [fn(r) for r in g.runs]


def compare(better: str, g_new: Group, base: str, g_base: Group, fn: Callable[[RunView], float],
            metric: str, where: str, lower_is_better: bool) -> Claim:
    """"`better` improves `metric` against `base`": relative change with its 95% CI."""
    a, b = _values(g_new, fn), _values(g_base, fn)
    d = difference(a, b)
    ref = estimate(b).mean
    pct = 100.0 * d.mean / ref if ref else math.nan
    verb = "lowers" if lower_is_better else "raises"
    improved = d.mean < 0 if lower_is_better else d.mean > 0
    size = abs(pct)
    if math.isnan(d.half_width):
        # One run per side: no interval, so the claim is untested whatever the direction.
        text = (f"{better} changes {metric} by {pct:+.1f}% against {base} {where} "
                "(no CI: one run per side)")
        return Claim(text, None, g_new.run_ids + g_base.run_ids)
    else:
        half = 100.0 * d.half_width / ref if ref else math.nan
        ci = f"95% CI of the change {pct - half:+.1f}% to {pct + half:+.1f}%"
        significant = (d.high < 0) if lower_is_better else (d.low > 0)
        holds = significant
    text = f"{better} {verb} {metric} by {size:.1f}% against {base} {where} ({ci})"
    if not improved:
        text = (f"{better} does not {verb.rstrip('s')} {metric} against {base} {where}: it "
                f"changes it by {pct:+.1f}% ({ci})")
        holds = False
    return Claim(text, holds, g_new.run_ids + g_base.run_ids)


def _policy_claims(ctx: ExportContext) -> list[Claim]:
    by = keyed(group_runs(ctx.runs), lambda r: (pattern_label(r), load_label(r), policy(r)),
               "brief: policies")
    claims = []
    for (pat, load, pol), g in sorted(by.items()):
        base = by.get((pat, load, "fifo"))
        if pol == "fifo" or base is None:
            continue
        where = f"under {pat}" + (f" at {load}" if load else "")
        claims.append(compare(pol, g, "fifo", base, lambda r: latency(r, "chat", "ttft", "p99"),
                              "chat p99 TTFT", where, True))
        claims.append(compare(pol, g, "fifo", base, slo_pct, "SLO attainment", where, False))
    return claims


def _pipe(what: str) -> Callable[[RunView], float]:
    """A run's pipeline-jobs summary value: E2E p99 (ms), attainment or throughput."""
    if what == "p99":
        return lambda r: latency(r, "pipeline", "e2e", "p99")
    return lambda r: float(getattr(need_summary(r, "pipeline"), what))


def _pipeline_claims(ctx: ExportContext) -> list[Claim]:
    """Pipeline-aware policies against per-call fifo (below capacity: the pipeline
    tail; past it: deadline attainment) and against staggered admission (tail and
    pipeline throughput), at the highest load below capacity and the lowest above:
    suite P's acceptance loads (docs/experiments.md)."""
    runs = [r for r in ctx.runs if r.summary("pipeline") is not None]
    if not runs:
        raise ExportError("brief: pipelines needs runs with pipeline jobs")
    fracs = {r.load_fraction for r in runs if r.load_fraction is not None}
    keep = {max((f for f in fracs if f < 1.0), default=None),
            min((f for f in fracs if f >= 1.0), default=None)} - {None}
    by = keyed(group_runs([r for r in runs if r.load_fraction in keep or not fracs]),
               lambda r: (pattern_label(r), r.load_fraction or 0.0, load_label(r), policy(r)),
               "brief: pipelines")
    claims = []
    for (pat, frac, load, pol), g in sorted(by.items()):
        if not pol.startswith("pipeline-"):
            continue
        where = f"under {pat}" + (f" at {load}" if load else "")
        fifo, stag = by.get((pat, frac, load, "fifo")), by.get((pat, frac, load, "staggered"))
        if fifo is not None and frac < 1.0:
            claims.append(compare(pol, g, "fifo", fifo, _pipe("p99"), "pipeline E2E p99", where,
                                  True))
        if fifo is not None and frac >= 1.0:
            claims.append(_attainment_claim(pol, g, "fifo", fifo, where))
        if stag is not None:
            claims.append(compare(pol, g, "staggered", stag, _pipe("p99"), "pipeline E2E p99",
                                  where, True))
            claims.append(compare(pol, g, "staggered", stag, _pipe("throughput_rps"),
                                  "pipelines/s", where, False))
    return claims


def _attainment_claim(better: str, g_new: Group, base: str, g_base: Group, where: str) -> Claim:
    """"`better` raises deadline attainment against `base`" as an absolute difference
    (suite P's target is one: +0.3 takes 0.40 to 0.70), the relative change beside it."""
    a, b = _values(g_new, _pipe("slo_attainment")), _values(g_base, _pipe("slo_attainment"))
    d, ref, new = difference(a, b), estimate(b).mean, estimate(a).mean
    rel = f"{100.0 * d.mean / ref:+.1f}% relative" if ref else "no relative change: base 0"
    change = f"{d.mean:+.3f} absolute ({ref:.3f} → {new:.3f}; {rel})"
    runs = g_new.run_ids + g_base.run_ids
    if math.isnan(d.half_width):
        return Claim(f"{better} changes deadline attainment by {change} against {base} {where} "
                     "(no CI: one run per side)", None, runs)
    ci = f"95% CI of the difference {d.low:+.3f} to {d.high:+.3f}"
    if d.mean <= 0:
        return Claim(f"{better} does not raise deadline attainment against {base} {where}: it "
                     f"changes it by {change} ({ci})", False, runs)
    return Claim(f"{better} raises deadline attainment by {change} against {base} {where} ({ci})",
                 d.low > 0, runs)


def _effectiveness_claims(ctx: ExportContext) -> list[Claim]:
    by = keyed(group_runs(ctx.runs), lambda r: (workload_label(r), baseline(r)), "brief: effectiveness")
    claims = []
    for (wl, system), g in sorted(by.items()):
        sage = by.get((wl, "sage"))
        if system == "sage" or sage is None:
            continue
        claims.append(compare("SAGE", sage, system, g, lambda r: latency(r, "chat", "ttft", "p99"),
                              "chat p99 TTFT", f"on {wl}", True))
        claims.append(compare("SAGE", sage, system, g, slo_pct, "SLO attainment", f"on {wl}", False))
    return claims


GOODPUT_AIM = 1.2  # the control plane should carry this much more load on time


def _goodput_claims(ctx: ExportContext) -> list[Claim]:
    """For every baseline: SAGE's goodput capacity against it, per seed, with a Welch
    interval on the difference (DistServe's headline, exports/goodput.py)."""
    series = rate_series(ctx.runs)
    require_sweep(series, "brief: goodput capacity")
    values: dict[str, list[tuple]] = {}
    for g, points in series:
        per = per_seed(points, attainment_of("all"))
        if per:
            values.setdefault(baseline(g.first), []).append((g, points, list(per.values())))
    sage = values.get("sage", [])
    if len(sage) != 1:
        raise ExportError("brief: goodput capacity needs exactly one sage configuration in a "
                          "rate sweep")
    _, s_points, s_vals = sage[0]
    claims = []
    for system, entries in sorted(values.items()):
        if system == "sage":
            continue
        for _, points, vals in entries:
            runs = sorted(r for p in s_points + points for r in p.group.run_ids)
            claims.append(_goodput_claim(s_vals, system, vals, runs))
    return claims


def _goodput_claim(sage: list[float], system: str, base: list[float],
                   runs: list[int]) -> Claim:
    d = difference(sage, base)
    ms, mb = estimate(sage).mean, estimate(base).mean
    ratio = ms / mb if mb else math.inf
    ci = ("no CI: one seed per side" if math.isnan(d.half_width)
          else f"95% CI of the difference {d.low:+.1f} to {d.high:+.1f} req/s")
    holds = None if math.isnan(d.half_width) else d.low > 0
    lead = "carries" if ms > mb else "does not carry"
    text = (f"SAGE {lead} more load on time: its goodput capacity is {ratio:.2f}× "
            f"{system}'s ({ms:.1f} against "
            f"{mb:.1f} req/s; {ci}; the aim is ≥ {GOODPUT_AIM:g}×")
    if ratio < GOODPUT_AIM:
        text += (": not reached. Past 1/0.9 ≈ 1.11× the throughput capacity no scheduler can "
                 "serve 90% on time, so the aim needs a baseline that misses SLOs below its "
                 "capacity")
    return Claim(text + ")", holds, runs)


def _scalability_claims(ctx: ExportContext) -> list[Claim]:
    by = keyed(group_runs(ctx.runs), lambda r: r.n_backends, "brief: scalability")
    if 1 not in by or len(by) < 2:
        raise ExportError("brief: scalability needs a 1-backend run and at least one more size")
    top = max(by)
    thr = {n: estimate(_values(g, lambda r: need_summary(r, "all").throughput_rps)) for n, g in by.items()}
    eff = thr[top].mean / thr[1].mean / top
    over = estimate([v for g in by.values() for v in _values(g, overhead_pct)])
    runs = sorted(r for g in by.values() for r in g.run_ids)
    return [
        Claim(f"Throughput scales near-linearly: {top} backends reach {thr[top].mean / thr[1].mean:.2f}× "
              f"the 1-backend throughput (parallel efficiency {eff:.2f}; claim needs ≥ {LINEAR_EFFICIENCY})",
              eff >= LINEAR_EFFICIENCY, runs),
        Claim(f"Control-plane overhead stays below {OVERHEAD_LIMIT_PCT:g}% of mean E2E latency: mean "
              f"{over.mean:.2f}% (95% CI upper bound {over.high:.2f}%, over all backend counts)",
              over.high < OVERHEAD_LIMIT_PCT, runs),
    ]


def _saturation_claims(ctx: ExportContext) -> list[Claim]:
    series = rate_series(ctx.runs)
    require_sweep(series, "brief")
    names = labels([g for g, _ in series], ignore=("workload.rate",))
    claims = []
    for name, (_, points) in zip(names, series, strict=True):
        sat = saturation(points)
        runs = sorted(r for p in points for r in p.group.run_ids)
        if sat.point is None:
            claims.append(Claim(f"{name}: no saturation up to {points[-1].rate:g} req/s", None, runs))
        else:
            claims.append(Claim(f"{name}: saturates at {sat.point.rate:g} req/s ({sat.reason} criterion; "
                                f"p99 E2E {sat.point.p99.mean:.1f} ms there)", None, runs))
    return claims


def _heterogeneous_claims(ctx: ExportContext) -> list[Claim]:
    by = keyed(group_runs(ctx.runs), pool_label, "brief: heterogeneous")
    if "mixed" not in by or len(by) < 2:
        raise ExportError("brief: heterogeneous needs a mixed pool and another pool")
    return [compare("the mixed pool", by["mixed"], pool, g, throughput_per_dollar_hour,
                    "throughput per dollar-hour", "for embeddings", False)
            for pool, g in sorted(by.items()) if pool != "mixed"]


def _agent_claims(ctx: ExportContext) -> list[Claim]:
    """Suite E: the fusion against its parts; timing beside BFCL's published figures."""
    return [Claim(*line) for line in brief_agents.claims(ctx)]


SECTIONS = (
    ("Control-plane effectiveness", _effectiveness_claims),
    ("Goodput capacity", _goodput_claims),
    ("Scheduling policies", _policy_claims),
    ("Pipelines", _pipeline_claims),
    ("Scalability", _scalability_claims),
    ("Saturation", _saturation_claims),
    ("Heterogeneous hardware", _heterogeneous_claims),
    ("Agent tool retrieval (BFCL)", _agent_claims),
)


def _mark(holds: bool | None) -> str:
    return {True: "HOLDS", False: "DOES NOT HOLD", None: "UNTESTED"}[holds]


def _line(c: Claim) -> str:
    runs = f" Runs: {', '.join(map(str, c.runs))}." if c.runs else ""
    if c.info:
        return f"- {c.text}.{runs}"
    return f"- **{_mark(c.holds)}** — {c.text}.{runs}"


def claims(ctx: ExportContext) -> tuple[list[str], list[str]]:
    """Markdown lines of the claims these runs support, and why the other sections are absent."""
    lines: list[str] = []
    missing: list[str] = []
    for title, fn in SECTIONS:
        try:
            found = fn(ctx)
        except ExportError as exc:
            missing.append(f"- {title}: {exc}")
            continue
        if not found:
            missing.append(f"- {title}: no comparable configurations")
            continue
        lines += [f"### {title}", ""]
        lines += [_line(c) for c in found]
        lines.append("")
    return lines, missing


def render(title: str, claim_sets: list[tuple[str, ExportContext]],
           items: list[tuple[str, dict[str, Table | str], dict[str, FigureResult | str]]]) -> str:
    """One brief: claims per run set, then a caption and placement for every output.

    `items` maps, per unit label, table/figure names to the built item or why it was not built.
    """
    run_ids = sorted({r.id for _, ctx in claim_sets for r in ctx.runs})
    lines = [f"# Results brief: {title}", "",
             f"Computed from {len(run_ids)} runs (ids {', '.join(map(str, run_ids))}). Claims compare "
             "repetition means; a claim holds when the 95% Welch interval of the difference "
             "excludes zero in the claimed direction; with one run per side it is untested. "
             + CI_METHOD, ""]
    missing_all: list[str] = []
    for label, ctx in claim_sets:
        found, missing = claims(ctx)
        if found:
            lines += [f"## Claims: {label}", "", *found]
        missing_all += [m.replace("- ", f"- {label} — ", 1) for m in missing]
    lines += ["## Candidate captions and placement", ""]
    for label, tables, figures in items:
        for kind, group in (("Table", tables), ("Figure", figures)):
            for name, item in group.items():
                place = "main paper" if name in MAIN_PAPER else "appendix"
                if isinstance(item, str):
                    lines.append(f"- {kind} `{name}` ({label}) — not produced: {item}")
                else:
                    lines.append(f"- {kind} `{name}` ({label}, {place}): {item.full_caption()}")
    if missing_all:
        lines += ["", "## Claims not computed from these runs", "", *missing_all]
    return "\n".join(lines) + "\n"
