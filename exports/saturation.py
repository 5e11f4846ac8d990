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


# Config keys that follow from the offered load of a relative-load sweep: a series is
# the configurations equal but for these (and workload.rate), and labels leave them out.
LOAD_KEYS = ("workload.rate", "run.load_fraction", "run.capacity_rps", "run.capacity_basis")


@dataclass(frozen=True)
class RatePoint:
    rate: float
    group: Group
    throughput: Estimate
    p99: Estimate
    p95: Estimate
    p50: Estimate

    @property
    def capacity(self) -> float | None:
        """The probed capacity of the configuration (req/s), None without one."""
        return self.group.first.capacity_rps

    @property
    def load(self) -> float | None:
        """Offered load as × capacity, None when the runs carry no capacity."""
        return self.group.first.load_fraction


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
            {k: v for k, v in flat.items() if k not in IGNORED_KEYS
             and k not in ("workload.rate", "run.load_fraction")},
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


def rates_text(points: list[RatePoint]) -> str:
    """`25–125`, and `(0.3–1.5×)` after it when the runs carry a capacity."""
    text = f"{_short(points[0].rate)}–{_short(points[-1].rate)}"
    lo, hi = points[0].load, points[-1].load
    return text + (f" ({lo:.2g}–{hi:.2g}×)" if lo is not None and hi is not None else "")


def _short(rate: float) -> str:
    """A whole rate as it is, a probed one (fraction × capacity) to 4 significant digits."""
    return f"{rate:g}" if rate == round(rate) else f"{rate:.4g}"


def capacity_note(names: list[str], series: list[tuple[Group, list[RatePoint]]]) -> str | None:
    """A sentence naming each configuration's probed capacity and how it was obtained."""
    caps = [(n, pts[0].capacity, pts[0].group.first) for n, (_, pts) in zip(names, series, strict=True)
            if pts[0].capacity is not None]
    if not caps:
        return None
    basis = {str(r.section("run").get("capacity_basis") or "") for _, _, r in caps} - {""}
    listed = "; ".join(f"{n}: {c:.1f} req/s" for n, c, _ in caps)
    return (f"× capacity = offered rate / the configuration's measured capacity ({listed}); "
            + (" / ".join(sorted(basis)) if basis else "capacity as stored in run.capacity_rps")
            + ".")
