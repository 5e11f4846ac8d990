"""Sampling request sizes and priorities from their spec distributions."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .spec import Dist, PriorityDist, read_empirical


@lru_cache(maxsize=64)
def _empirical(path: str) -> np.ndarray:
    return np.asarray(read_empirical(path), dtype=float)


def sample(d: Dist, rng: np.random.Generator, n: int) -> np.ndarray:
    """n integer sizes, rounded and clamped to [d.min, d.max]."""
    # Each kind's parameters are set (Dist's validator checks them); the asserts say so.
    if d.kind == "fixed":
        x = np.full(n, d.value, dtype=float)
    elif d.kind == "uniform":
        assert d.low is not None and d.high is not None
        x = rng.integers(round(d.low), round(d.high), size=n, endpoint=True).astype(float)
    elif d.kind == "normal":
        assert d.mean is not None and d.std is not None
        x = rng.normal(d.mean, d.std, n)
    elif d.kind == "lognormal":
        assert d.mean is not None and d.sigma is not None
        x = rng.lognormal(np.log(d.mean), d.sigma, n)
    elif d.kind == "empirical":
        assert d.file is not None
        x = rng.choice(_empirical(d.file), size=n, replace=True)
    else:  # the spec's Literal makes this unreachable; keep the error explicit
        raise ValueError(f"unknown distribution {d.kind!r}")
    return np.clip(np.rint(x), d.min, d.max).astype(np.int64)


def sample_priorities(p: PriorityDist, rng: np.random.Generator, n: int) -> np.ndarray:
    w = np.asarray(p.weights, dtype=float)
    return rng.choice(5, size=n, p=w / w.sum()).astype(np.int64)
