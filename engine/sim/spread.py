"""Draws from a measured distribution, given as its quantiles.

Why a module of its own: calibration keeps several live spreads the step and
batch models cannot carry (the front end's delay, decode stalls, embedding
pass times), and each simulated engine draws from them the same way: by
inverse CDF from its own seeded generator, so a run stays reproducible and
adding one spread never moves another's draws.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np


class Spread:
    """Quantiles at evenly spaced probabilities 0 … 1, drawn by inverse CDF from their
    own generator seeded with `seed`. Empty quantiles: falsy, never drawn."""

    def __init__(self, name: str, quantiles: Sequence[float], seed: int):
        if any(q < 0 for q in quantiles) or list(quantiles) != sorted(quantiles):
            raise ValueError(f"{name}: must be >= 0 and ascending")
        if len(quantiles) == 1:
            raise ValueError(f"{name}: need at least 2 (for probabilities 0 and 1)")
        self._q = np.asarray(quantiles, dtype=float)
        self._p = np.linspace(0.0, 1.0, len(self._q))
        self._rng = random.Random(seed)

    def __bool__(self) -> bool:
        return bool(self._q.size)

    def draw(self) -> float:
        return float(np.interp(self._rng.random(), self._p, self._q))
