"""Repetition statistics: mean with a Student-t 95% confidence interval, Welch differences.

Why t and not normal: papers run 3-5 repetitions; with so few samples a normal
interval is too narrow. The method string goes into every caption.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as _st

CI_METHOD = (
    "Mean over repetitions (runs differing only in seed) with a two-sided 95% "
    "Student-t confidence interval (mean ± t(0.975, n-1)·s/√n); n=1 shows the value alone."
)


@dataclass(frozen=True)
class Estimate:
    """A mean over n repetitions and its 95% CI half-width (0 when n == 1)."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def estimate(values: Sequence[float]) -> Estimate:
    """Mean and 95% t-interval half-width of `values` (at least one)."""
    if not values:
        raise ValueError("estimate() needs at least one value")
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return Estimate(mean, 0.0, 1)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(_st.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return Estimate(mean, half, n)


def difference(a: Sequence[float], b: Sequence[float]) -> Estimate:
    """mean(a) - mean(b) with a Welch 95% interval; half-width is NaN when either n < 2."""
    ea, eb = estimate(a), estimate(b)
    diff = ea.mean - eb.mean
    if ea.n < 2 or eb.n < 2:
        return Estimate(diff, math.nan, min(ea.n, eb.n))
    va = math.fsum((x - ea.mean) ** 2 for x in a) / (ea.n - 1) / ea.n
    vb = math.fsum((x - eb.mean) ** 2 for x in b) / (eb.n - 1) / eb.n
    se = math.sqrt(va + vb)
    if se == 0:
        return Estimate(diff, 0.0, min(ea.n, eb.n))
    df = (va + vb) ** 2 / (va**2 / (ea.n - 1) + vb**2 / (eb.n - 1))
    return Estimate(diff, float(_st.t.ppf(0.975, df)) * se, min(ea.n, eb.n))
