"""Confidence intervals and Welch differences on samples with known answers."""

from __future__ import annotations

import math

import pytest

from exports.stats import difference, estimate


def test_t_interval_on_known_sample():
    # mean 3, s = sqrt(2.5), t(0.975, 4) = 2.7764451, half = t*s/sqrt(5)
    e = estimate([1, 2, 3, 4, 5])
    assert e.mean == 3
    assert e.n == 5
    assert e.half_width == pytest.approx(2.7764451 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    assert e.half_width == pytest.approx(1.963243, rel=1e-5)


def test_two_repetitions_use_t_with_one_degree_of_freedom():
    e = estimate([10.0, 12.0])  # s = sqrt(2), t(0.975, 1) = 12.7062047
    assert e.half_width == pytest.approx(12.7062047 * math.sqrt(2) / math.sqrt(2), rel=1e-6)
    assert (e.low, e.high) == pytest.approx((11 - 12.7062047, 11 + 12.7062047), rel=1e-6)


def test_single_value_has_no_interval():
    e = estimate([7.5])
    assert (e.mean, e.half_width, e.n) == (7.5, 0.0, 1)
    with pytest.raises(ValueError):
        estimate([])


def test_welch_difference_matches_scipy():
    from scipy import stats

    a, b = [10.0, 11.0, 12.5, 9.5], [14.0, 15.5, 13.0]
    d = difference(a, b)
    res = stats.ttest_ind(a, b, equal_var=False)
    lo, hi = res.confidence_interval(0.95)
    assert d.mean == pytest.approx(sum(a) / 4 - sum(b) / 3)
    assert (d.low, d.high) == pytest.approx((lo, hi), rel=1e-9)
    assert math.isnan(difference([1.0], [2.0, 3.0]).half_width)
