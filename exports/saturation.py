"""The saturation point of a rate sweep, as documented in docs/exports.md.

Definition: the lowest offered rate at which achieved throughput falls below
95% of the offered rate, or p99 E2E latency exceeds 5x its value at the lowest
offered rate. Means over repetitions are compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from exports.accessors import latency, need_summary
from exports.errors import ExportError
from exports.groups import IGNORED_KEYS, Group, flatten, group_runs
from exports.model import RunView
from exports.stats import Estimate

THROUGHPUT_FRACTION = 0.95
LATENCY_FACTOR = 5.0
RULE_TEXT = (
    "Saturation point: the lowest offered rate at which achieved throughput falls below 95% "
    "of the offered rate, or p99 E2E latency exceeds 5× its value at the lowest offered rate."
)


@dataclass(frozen=True)
class RatePoint:
    rate: float
    group: Group
    throughput: Estimate
    p99: Estimate
    p95: Estimate
    p50: Estimate


@dataclass(frozen=True)
class Saturation:
    point: RatePoint | None  # None: not reached within the sweep
    reason: str  # "throughput" | "latency" | "both" | ""


def _offered(run: RunView) -> float:
    rate = run.offered_rate
    if rate is None:
        raise ExportError(f"run {run.id} ({run.name}) has no offered rate (workload.rate)")
    return rate


def rate_series(runs: list[RunView], cls: str = "all") -> list[tuple[Group, list[RatePoint]]]:
    """Rate sweeps: configurations equal but for workload.rate, each sorted by rate.

    The first group of each series stands for the series (for labels).
    """
    series: dict[str, list[Group]] = {}
    for g in group_runs(runs):
        flat = flatten(g.first.config)
        key = json.dumps(
            {k: v for k, v in flat.items() if k not in IGNORED_KEYS and k != "workload.rate"},
            sort_keys=True, default=str,
        )
        series.setdefault(key, []).append(g)
    out = []
    for groups in series.values():
        points = []
        for g in groups:
            rate = _offered(g.first)
            points.append(RatePoint(
                rate=rate, group=g,
                throughput=g.estimate(lambda r: need_summary(r, cls).throughput_rps, "throughput"),
                p99=g.estimate(lambda r: latency(r, cls, "e2e", "p99"), f"{cls} e2e.p99"),
                p95=g.estimate(lambda r: latency(r, cls, "e2e", "p95"), f"{cls} e2e.p95"),
                p50=g.estimate(lambda r: latency(r, cls, "e2e", "p50"), f"{cls} e2e.p50"),
            ))
        points.sort(key=lambda p: p.rate)
        out.append((points[0].group, points))
    return out


def require_sweep(series: list[tuple[Group, list[RatePoint]]], what: str) -> None:
    """Refuse outputs over load when no configuration was run at two or more rates."""
    if all(len(points) < 2 for _, points in series):
        raise ExportError(f"{what}: no rate sweep in these runs (no configuration run at 2+ "
                          "values of workload.rate)")


def saturation(points: list[RatePoint]) -> Saturation:
    """Apply the documented rule to one sweep's points (sorted by rate)."""
    if not points:
        raise ValueError("saturation() needs at least one point")
    base = points[0].p99.mean
    for p in points:
        slow = p.throughput.mean < THROUGHPUT_FRACTION * p.rate
        late = p.p99.mean > LATENCY_FACTOR * base
        if slow or late:
            return Saturation(p, "both" if slow and late else "throughput" if slow else "latency")
    return Saturation(None, "")
