"""Percentile bootstrap intervals over items (the agent suite's accuracies).

Why not the Student-t interval of exports.stats: an agent run is one pass over
hundreds of items, each right or wrong; the uncertainty is over which items the
benchmark holds, so the items are resampled (with replacement, a fixed seed so
an export is reproducible) and the statistic recomputed each time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
SEED = 0
BOOTSTRAP_METHOD = (f"95% CI: percentile bootstrap over items ({RESAMPLES} resamples, "
                    f"seed {SEED}).")


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float
    n: int


def mean_of(values) -> Callable[[np.ndarray], float]:
    v = np.asarray(values, dtype=float)
    return lambda idx: float(v[idx].mean())


def balanced_of(correct, labels) -> Callable[[np.ndarray], float]:
    """Mean of the accuracy on each label's items (labels absent from a resample skipped)."""
    c, y = np.asarray(correct, dtype=float), np.asarray(labels, dtype=bool)

    def stat(idx: np.ndarray) -> float:
        cc, yy = c[idx], y[idx]
        parts = [cc[yy].mean() if yy.any() else np.nan, cc[~yy].mean() if (~yy).any() else np.nan]
        return float(np.nanmean(parts))

    return stat


def bootstrap(n: int, stat: Callable[[np.ndarray], float], *, resamples: int = RESAMPLES,
              seed: int = SEED) -> Interval:
    """stat(all items) and the 2.5/97.5 percentiles of stat over resampled item indices."""
    if n < 1:
        raise ValueError("bootstrap() needs at least one item")
    value = stat(np.arange(n))
    rng = np.random.default_rng(seed)
    draws = np.array([stat(rng.integers(0, n, n)) for _ in range(resamples)])
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return Interval(value, float(low), float(high), n)
