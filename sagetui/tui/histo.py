"""HDR histogram helpers for the plots (decode, bins, CDF) — no textual.

Why here: the store keeps V2-encoded blobs in microseconds; plots want
milliseconds as (value, count) points.
"""

from __future__ import annotations

import numpy as np
from hdrh.histogram import HdrHistogram

from store.histograms import decode

__all__ = ["bins_ms", "cdf_ms", "decode", "points_ms"]


def points_ms(h: HdrHistogram) -> list[tuple[float, int]]:
    """Recorded (value in ms, count) pairs, ascending.

    Reads the counts array with numpy: hdrh's recorded iterator steps through
    every sub-bucket in Python (~0.3 s per histogram), too slow for a UI.
    Values are each bucket's highest equivalent value, as the iterator gives.
    """
    counts = np.ctypeslib.as_array(h.counts)[: h.counts_len]
    return [(h.get_highest_equivalent_value(h.get_value_from_index(int(i))) / 1000.0,
             int(counts[i])) for i in np.flatnonzero(counts)]


def cdf_ms(h: HdrHistogram) -> tuple[list[float], list[float]]:
    """Cumulative fraction at each recorded value (ms)."""
    total = h.get_total_count()
    xs, ys, acc = [], [], 0
    for value, count in points_ms(h):
        acc += count
        xs.append(value)
        ys.append(acc / total)
    return xs, ys


def bins_ms(h: HdrHistogram, nbins: int = 30) -> tuple[list[float], list[int]]:
    """Counts in `nbins` equal-width bins between the p0 and p99.9 values."""
    pts = points_ms(h)
    if not pts:
        return [], []
    lo = pts[0][0]
    hi = max(h.get_value_at_percentile(99.9) / 1000.0, lo)
    width = (hi - lo) / nbins or 1.0
    counts = [0] * nbins
    for value, count in pts:
        counts[min(int((value - lo) / width), nbins - 1)] += count
    return [lo + (i + 0.5) * width for i in range(nbins)], counts
