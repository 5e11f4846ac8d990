"""Side-by-side comparison rows for the Compare screen (no textual).

Why a test, not just a ratio: latency percentiles of two runs always differ a
little. Each latency metric is marked with the two-sided Mann-Whitney U test
on the runs' whole-window distributions (rebuilt from their HDR histograms):
`*` p < 0.05, `**` p < 0.01, `***` p < 0.001, blank otherwise. Counts are
scaled down to at most MAX_SAMPLE values per run so the test stays fast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from scipy.stats import mannwhitneyu

from sagetui.tui.histo import decode, points_ms

MAX_SAMPLE = 20_000
PERCENTILES = ("p50", "p95", "p99")
SCALARS = ("throughput_rps", "goodput_rps", "slo_attainment")


@dataclass(frozen=True, slots=True)
class CompareRow:
    cls: str
    metric: str  # e.g. "ttft p99" or "throughput_rps"
    values: tuple[float | None, ...]  # one per run, baseline first
    changes: tuple[float | None, ...]  # relative change vs baseline (0.1 = +10%)
    marks: tuple[str, ...]  # per run: significance vs baseline ("" if none/untested)


def sample_ms(encoded: bytes) -> np.ndarray:
    """Values of a histogram in ms, counts scaled to at most MAX_SAMPLE."""
    pts = points_ms(decode(encoded))
    if not pts:
        return np.empty(0)
    values = np.array([v for v, _ in pts])
    counts = np.array([c for _, c in pts], dtype=float)
    total = counts.sum()
    if total > MAX_SAMPLE:
        counts = np.maximum(np.round(counts * MAX_SAMPLE / total), 0)
    return np.repeat(values, counts.astype(int))


def significance_mark(a: bytes | None, b: bytes | None) -> str:
    if not a or not b:
        return ""
    xa, xb = sample_ms(a), sample_ms(b)
    if len(xa) < 2 or len(xb) < 2:
        return ""
    p = mannwhitneyu(xa, xb, alternative="two-sided").pvalue
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def _change(base: float | None, value: float | None) -> float | None:
    if base is None or value is None or base == 0:
        return None
    return (value - base) / base


def compare_rows(summaries: dict[int, list], run_ids: list[int],
                 histograms: dict[tuple[int, str, str], bytes]) -> list[CompareRow]:
    """Rows per class: scalars, then p50/p95/p99 of every latency metric present.

    `summaries` maps run id -> Summary rows; `histograms` maps
    (run id, metric, class) -> encoded whole-run histogram.
    """
    by_run = {rid: {s.request_class: s for s in summaries.get(rid, [])} for rid in run_ids}
    classes = sorted({c for per in by_run.values() for c in per},
                     key=lambda c: (c == "all", c))
    rows: list[CompareRow] = []
    base_id = run_ids[0]
    for cls in classes:
        sums = [by_run[rid].get(cls) for rid in run_ids]
        for attr in SCALARS:
            vals = tuple(getattr(s, attr) if s is not None else None for s in sums)
            rows.append(CompareRow(cls, attr, vals,
                                   tuple(_change(vals[0], v) for v in vals),
                                   ("",) * len(run_ids)))
        metrics = [json.loads(s.metrics_json or "{}") if s is not None else {} for s in sums]
        names = sorted({m for per in metrics for m in per})
        for metric in names:
            marks = ("",) + tuple(significance_mark(histograms.get((base_id, metric, cls)),
                                                    histograms.get((rid, metric, cls)))
                                  for rid in run_ids[1:])
            for p in PERCENTILES:
                vals = tuple(_num(per.get(metric, {}).get(p)) for per in metrics)
                rows.append(CompareRow(cls, f"{metric} {p}", vals,
                                       tuple(_change(vals[0], v) for v in vals), marks))
    return rows


def _num(value) -> float | None:
    return float(value) if isinstance(value, int | float) else None
