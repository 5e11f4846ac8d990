"""HDR histograms for latencies: one layout everywhere, stored as standard V2 blobs.

Why: percentiles must merge across time windows and repetitions without bias,
and the blobs must be readable by HdrHistogram in other languages. We store the
raw *compressed V2* bytes (cookie 0x1c849314, zlib payload) — exactly what
Java's `Histogram.decodeFromCompressedByteBuffer` and HdrHistogram_c's
`hdr_decode_compressed` read. `hdrhistogram`'s own `encode()` returns the same
payload base64-wrapped (the ".hlog" text form); we strip that wrapper.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

import numpy as np
from hdrh.histogram import HdrHistogram

from store.errors import StoreError

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour in microseconds
SIGNIFICANT_DIGITS = 3

# Percentiles every summary carries (key -> percentile).
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def new_histogram() -> HdrHistogram:
    """An empty latency histogram: 1 µs .. 1 h, 3 significant digits."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def record_us(h: HdrHistogram, value_us: float) -> None:
    """Record one latency in µs, clamped into the trackable range [1 µs, 1 h].

    Clamping is explicit and documented: a 0.3 µs decision time is recorded as
    1 µs (the resolution floor); anything above one hour is out of range and
    raises, since no run here measures hour-long requests.
    """
    v = int(round(value_us))
    if v > HIGHEST_US:
        raise StoreError(f"histogram value {value_us} µs exceeds the 1 h limit")
    h.record_value(max(v, LOWEST_US))


def encode(h: HdrHistogram) -> bytes:
    """Compressed V2 bytes (not base64) of a histogram."""
    return base64.b64decode(h.encode())


def decode(blob: bytes | bytearray | memoryview) -> HdrHistogram:
    """A histogram from compressed V2 bytes (base64-wrapped input accepted too)."""
    if not blob:
        raise StoreError("histogram blob is empty")
    wrapped = blob if blob[:4] == b"HIST" else base64.b64encode(bytes(blob))
    try:
        return HdrHistogram.decode(wrapped)
    except Exception as exc:  # hdrh raises cookie/length errors, zlib and base64 errors
        raise StoreError(f"histogram blob is not a V2 HdrHistogram: {exc}") from exc


def merge(histograms: Iterable[HdrHistogram | bytes]) -> HdrHistogram:
    """One histogram holding every value of the inputs (windows or repetitions)."""
    out = new_histogram()
    for h in histograms:
        out.add(decode(h) if isinstance(h, bytes | bytearray | memoryview) else h)
    return out


def percentile_ms(h: HdrHistogram, pct: float) -> float | None:
    """The value at a percentile in milliseconds, None for an empty histogram."""
    if h.get_total_count() == 0:
        return None
    return h.get_value_at_percentile(pct) / 1000.0


def mean_value(h: HdrHistogram) -> float:
    """Mean in recorded units, as HdrHistogram defines it (median-equivalent value of
    each bucket), computed in numpy over the non-empty buckets: the library's
    get_mean_value walks every bucket in Python (~0.1 s per call)."""
    n = h.get_total_count()
    if n == 0:
        return 0.0
    counts = np.ctypeslib.as_array(h.counts, shape=(h.counts_len,))
    idx = np.flatnonzero(counts)
    # hdrh's get_value_from_index and median-equivalent value, vectorised.
    bucket = (idx >> h.sub_bucket_half_count_magnitude) - 1
    sub = (idx & (h.sub_bucket_half_count - 1)) + h.sub_bucket_half_count
    first = bucket < 0
    sub[first] -= h.sub_bucket_half_count
    bucket[first] = 0
    shift = bucket + h.unit_magnitude
    median_equiv = (sub << shift) + ((1 << shift) >> 1)
    return float(median_equiv.astype(np.float64) @ counts[idx].astype(np.float64)) / n


def distribution_ms(h: HdrHistogram) -> dict:
    """The summary shape of one metric (see Summary.metrics_json): ms, plus count."""
    n = h.get_total_count()
    out: dict = {k: percentile_ms(h, p) for k, p in PERCENTILES.items()}
    out["mean"] = mean_value(h) / 1000.0 if n else None
    out["max"] = h.get_max_value() / 1000.0 if n else None
    out["count"] = n
    return out


def stats(h: HdrHistogram) -> tuple[int, int, int, float]:
    """count, min_us, max_us, mean_us — the histogram table's plain columns."""
    n = h.get_total_count()
    if n == 0:
        return 0, 0, 0, 0.0
    return n, h.get_min_value(), h.get_max_value(), mean_value(h)
