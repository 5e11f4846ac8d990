"""Arrival times: clock-free arrays of intended send times in [0, end).

Why separate from the schedule: these are the distributions the KS tests
check, and the simulator and the live runner both consume their output.
Non-homogeneous processes (on/off, ramp) use time rescaling of a unit-rate
Poisson process through the inverse cumulative intensity, so they are exact.
"""

from __future__ import annotations

import math

import numpy as np

from .spec import Constant, Gamma, OnOff, Poisson, Ramp


def _renewal(rng: np.random.Generator, end: float, mean_gap: float, draw) -> np.ndarray:
    """Cumulative sums of gaps drawn in chunks until `end` is passed."""
    out: list[np.ndarray] = []
    t = 0.0
    n = max(16, int(end / mean_gap * 1.1) + 16)
    while True:
        gaps = draw(n)
        times = t + np.cumsum(gaps)
        out.append(times)
        t = float(times[-1])
        if t >= end:
            break
    all_t = np.concatenate(out)
    return all_t[all_t < end]


def constant(rate: float, end: float) -> np.ndarray:
    """Evenly spaced, first at t = 0."""
    return np.arange(0.0, end, 1.0 / rate)


def poisson(rng: np.random.Generator, rate: float, end: float) -> np.ndarray:
    return _renewal(rng, end, 1 / rate, lambda n: rng.exponential(1 / rate, n))


def gamma(rng: np.random.Generator, rate: float, cv: float, end: float) -> np.ndarray:
    """Gamma gaps with mean 1/rate and coefficient of variation cv (shape 1/cv²)."""
    shape = 1 / cv**2
    scale = 1 / (rate * shape)
    return _renewal(rng, end, 1 / rate, lambda n: rng.gamma(shape, scale, n))


def _rescale(rng: np.random.Generator, total: float, inverse) -> np.ndarray:
    """Unit-rate Poisson points in [0, total) of cumulative intensity, mapped back."""
    if total <= 0:
        return np.empty(0)
    u = poisson(rng, 1.0, total)
    return inverse(u)


def onoff(rng: np.random.Generator, rate: float, a: OnOff, end: float) -> np.ndarray:
    """Rate × factor during each on period, rate during each off period."""
    period = a.on_s + a.off_s
    n_periods = math.ceil(end / period) + 1
    knots_t = [0.0]
    knots_l = [0.0]
    for _ in range(n_periods):
        for length, r in ((a.on_s, rate * a.factor), (a.off_s, rate)):
            knots_t.append(knots_t[-1] + length)
            knots_l.append(knots_l[-1] + length * r)
    kt, kl = np.array(knots_t), np.array(knots_l)
    total = float(np.interp(end, kt, kl))
    times = _rescale(rng, total, lambda u: np.interp(u, kl, kt))
    return times[times < end]


def ramp(rng: np.random.Generator, a: Ramp, end: float) -> np.ndarray:
    """Rate linear from a.start to a.end over [0, end)."""
    s, e = a.start, a.end
    slope = (e - s) / end
    total = s * end + slope * end * end / 2

    def inverse(u: np.ndarray) -> np.ndarray:
        if abs(slope) < 1e-12:
            return u / s
        # solve slope/2 t² + s t − u = 0 for t ≥ 0
        return (-s + np.sqrt(s * s + 2 * slope * u)) / slope

    times = _rescale(rng, total, inverse)
    return times[times < end]


def times_for(arrival, rng: np.random.Generator, rate: float, end: float) -> np.ndarray:
    """Intended times for the simple arrival kinds (not trace or adversarial)."""
    if isinstance(arrival, Constant):
        return constant(rate, end)
    if isinstance(arrival, Poisson):
        return poisson(rng, rate, end)
    if isinstance(arrival, Gamma):
        assert arrival.cv is not None  # Gamma's validator derives it from burstiness
        return gamma(rng, rate, arrival.cv, end)
    if isinstance(arrival, OnOff):
        return onoff(rng, rate, arrival, end)
    if isinstance(arrival, Ramp):
        return ramp(rng, arrival, end)
    raise ValueError(f"arrival kind {arrival.kind!r} has no simple time process")
