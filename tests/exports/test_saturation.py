"""The documented saturation rule on hand-made sweeps."""

from __future__ import annotations

from exports.groups import Group
from exports.saturation import RatePoint, saturation
from exports.stats import Estimate


def point(rate: float, thr: float, p99: float) -> RatePoint:
    e = Estimate(p99, 0.0, 1)
    return RatePoint(rate, Group(()), Estimate(thr, 0.0, 1), e, e, e)


def test_throughput_criterion_takes_the_lowest_rate():
    pts = [point(10, 10, 50), point(20, 19.5, 60), point(40, 37.9, 70), point(80, 40, 80)]
    s = saturation(pts)
    assert s.point is pts[2] and s.reason == "throughput"  # 37.9 < 0.95 * 40 = 38


def test_latency_criterion_is_five_times_the_lowest_load_p99():
    pts = [point(10, 10, 50), point(20, 20, 250), point(40, 40, 251)]
    s = saturation(pts)
    assert s.point is pts[2] and s.reason == "latency"  # 250 is not > 5 x 50


def test_both_criteria_and_not_reached():
    assert saturation([point(10, 10, 1), point(20, 5, 100)]).reason == "both"
    s = saturation([point(10, 10, 1), point(20, 20, 2)])
    assert s.point is None
