"""Goodput capacity: the highest offered rate at which ≥ 90 % of requests met all their SLOs.

Why: DistServe's headline number. Throughput past saturation still grows while
most requests miss their SLOs, and a latency percentile at one rate says nothing
about how much load a system takes; goodput capacity is the load a system
carries while still serving (almost) everyone on time. Computed per seed (the
runs of a rate sweep that share a workload seed), then averaged over seeds with
the same Student-t interval as every other repetition mean (exports/stats.py).
Attainment is the summaries' `slo_attainment` (class `all`, or one class).
"""

from __future__ import annotations

from collections.abc import Callable

from exports.model import RunView
from exports.saturation import RatePoint
from exports.stats import Estimate, estimate

GOODPUT_SLO = 0.9
RULE_TEXT = (
    "Goodput capacity: the highest offered rate of the sweep at which at least 90% of the "
    "requests issued in the measurement window met every SLO they carry, found per seed and "
    "averaged over seeds (0 when no rate of the sweep reaches 90%; equal to the highest "
    "offered rate when even that one does, so the sweep did not find the limit)."
)


def attainment_of(cls: str) -> Callable[[RunView], float | None]:
    """SLO attainment (0–1) of one class (`all` = every request); None when not issued."""
    def value(run: RunView) -> float | None:
        s = run.summary(cls)
        return None if s is None else s.slo_attainment
    return value


def per_seed(points: list[RatePoint], attainment: Callable[[RunView], float | None],
             scale: Callable[[RatePoint], float | None] = lambda p: p.rate) -> dict[int, float]:
    """Seed -> the highest `scale(point)` among points whose run of that seed met the
    90 % bar (0.0 when none did); seeds whose runs carry no such attainment are absent."""
    out: dict[int, float] = {}
    for p in points:
        x = scale(p)
        for r in p.group.runs:
            a = attainment(r)
            if a is None or x is None:
                continue
            best = out.setdefault(r.seed, 0.0)
            if a >= GOODPUT_SLO:
                out[r.seed] = max(best, x)
    return out


def goodput_capacity(points: list[RatePoint], cls: str = "all", *,
                     relative: bool = False) -> Estimate | None:
    """Mean over seeds (95 % CI) of the goodput capacity in req/s, or in × the
    configuration's capacity with `relative`; None when no run has the figure."""
    scale = (lambda p: p.load) if relative else (lambda p: p.rate)
    values = per_seed(points, attainment_of(cls), scale)
    return estimate(list(values.values())) if values else None
