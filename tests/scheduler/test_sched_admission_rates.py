"""The decayed arrival rates admission reads, at a live clock's times (monotonic time
is thousands of seconds, not 0 as in simulation)."""

from __future__ import annotations

import pytest

from scheduler.admission import _RATE_TAU_S, _Rates


@pytest.mark.parametrize("t0", [0.0, 7213.47, 1e7])
def test_a_steady_stream_reads_its_rate_at_any_clock(t0):
    r = _Rates()
    for i in range(4000):  # 100 /s for 40 s (8 time constants)
        r.tick(1 if i % 4 else 0, t0 + i * 0.01)
    now = t0 + 40.0
    assert r.total(now) == pytest.approx(100.0, rel=0.05)
    assert r.below(1, now) == pytest.approx(25.0, rel=0.1)  # key 0: every fourth
    assert r.total(now + 100 * _RATE_TAU_S) < 1e-30  # long quiet: decayed, no overflow
    assert r.total(now + 1e6) == 0.0
