"""Histograms: V2 bytes round-trip, merge across windows/repetitions, percentiles."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import latency_hist

from store import StoreError
from store import histograms as hg

# HdrHistogram's V2 cookies (Java: V2CompressedEncodingCookieBase, V2EncodingCookieBase),
# with the 8-byte word-size flag 0x10 that every implementation writes.
V2_COMPRESSED_COOKIE = 0x1C849304 | 0x10
V2_PAYLOAD_COOKIE = 0x1C849303 | 0x10


def test_blob_is_standard_compressed_v2():
    blob = hg.encode(latency_hist([5, 500, 50_000]))
    cookie, length = struct.unpack(">ii", blob[:8])
    assert cookie == V2_COMPRESSED_COOKIE and len(blob) == 8 + length
    inner = zlib.decompress(blob[8:8 + length])
    assert struct.unpack(">i", inner[:4])[0] == V2_PAYLOAD_COOKIE
    # hdrhistogram's text form is exactly base64 of our bytes.
    assert base64.b64decode(latency_hist([5, 500, 50_000]).encode()) == blob


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=hg.HIGHEST_US), min_size=1, max_size=300))
def test_roundtrip_preserves_distribution(values):
    h = latency_hist(values)
    back = hg.decode(hg.encode(h))
    assert back.get_total_count() == len(values)
    for p in (50, 90, 99, 99.9, 100):
        assert back.get_value_at_percentile(p) == h.get_value_at_percentile(p)
    assert back.get_min_value() == h.get_min_value()
    assert hg.mean_value(back) == pytest.approx(h.get_mean_value(), rel=1e-12)
    # 3 significant digits: the p100 is within 0.1% of the true max.
    assert abs(back.get_max_value() - max(values)) <= max(values) * 1e-3 + 1


def test_merge_windows_equals_whole():
    a, b = list(range(100, 10_000, 7)), list(range(50_000, 90_000, 11))
    merged = hg.merge([hg.encode(latency_hist(a)), latency_hist(b)])
    whole = latency_hist(a + b)
    assert merged.get_total_count() == len(a) + len(b)
    for p in (1, 50, 75, 99):
        assert merged.get_value_at_percentile(p) == whole.get_value_at_percentile(p)


def test_distribution_ms_and_limits():
    h = latency_hist(range(1000, 101_000, 1000))  # 1 ms .. 100 ms
    d = hg.distribution_ms(h)
    assert d["count"] == 100 and d["p50"] == pytest.approx(50, rel=1e-2)
    assert d["p99"] == pytest.approx(99, rel=1e-2) and d["max"] == pytest.approx(100, rel=1e-2)
    assert hg.distribution_ms(hg.new_histogram())["p50"] is None
    h2 = hg.new_histogram()
    hg.record_us(h2, 0.2)  # below resolution: recorded at the 1 µs floor
    assert h2.get_min_value() == 1
    with pytest.raises(StoreError, match="1 h"):
        hg.record_us(h2, hg.HIGHEST_US * 2)


def test_decode_garbage_is_a_store_error():
    with pytest.raises(StoreError, match="V2"):
        hg.decode(b"\x00\x01garbage")
    with pytest.raises(StoreError, match="empty"):
        hg.decode(b"")
