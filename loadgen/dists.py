"""Size distributions and the strict base model every workload table shares.

Why a module of its own: the workload spec (spec.py) holds pipeline
declarations (dag.py), whose stages draw their sizes from these same
distributions; both import them from here, so neither imports the other
half-built.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- sizes


def read_empirical(path: str) -> list[float]:
    """Numbers from a file, one per line (first CSV column); errors name file:line."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"empirical file {path}: not found")
    values: list[float] = []
    for lineno, line in enumerate(p.read_text().splitlines(), start=1):
        text = line.split(",")[0].strip()
        if not text or text.startswith("#"):
            continue
        try:
            v = float(text)
        except ValueError:
            if not values and lineno == 1:
                continue  # a header line
            raise ValueError(f"empirical file {path}, line {lineno}: not a number: {text!r}") from None
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"empirical file {path}, line {lineno}: must be a finite number >= 0")
        values.append(v)
    if not values:
        raise ValueError(f"empirical file {path}: no values")
    return values


class Dist(_Strict):
    """A distribution of a non-negative integer size (tokens, texts).

    fixed(value) | uniform(low, high) inclusive | normal(mean, std) |
    lognormal(mean, sigma) where `mean` is the median (exp(mu)) |
    empirical(file) sampled with replacement. Samples are rounded and clamped
    to [min, max].
    """

    kind: Literal["fixed", "uniform", "normal", "lognormal", "empirical"] = "fixed"
    value: float | None = None
    low: float | None = None
    high: float | None = None
    mean: float | None = None
    std: float | None = None
    sigma: float | None = None
    file: str | None = None
    min: int = 1
    max: int = 1_000_000

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, bool):
            raise ValueError("expected a number or a table with `kind`")
        if isinstance(data, int | float):
            return {"kind": "fixed", "value": data}
        return data

    @model_validator(mode="after")
    def _check(self) -> Dist:
        need = {
            "fixed": ("value",),
            "uniform": ("low", "high"),
            "normal": ("mean", "std"),
            "lognormal": ("mean", "sigma"),
            "empirical": ("file",),
        }[self.kind]
        for name in need:
            if getattr(self, name) is None:
                raise ValueError(f"{self.kind} distribution needs `{name}`")
        for name in ("value", "low", "high", "mean", "std", "sigma"):
            v = getattr(self, name)
            if v is not None and (not math.isfinite(v) or v < 0):
                raise ValueError(f"`{name}` must be a finite number >= 0, got {v}")
        # (each kind's parameters are set: checked just above)
        if self.kind == "uniform" and self.low is not None and self.high is not None \
                and self.low > self.high:
            raise ValueError("`low` must be <= `high`")
        if self.kind == "lognormal" and self.mean is not None and self.mean <= 0:
            raise ValueError("lognormal `mean` (the median) must be > 0")
        if self.min < 0 or self.min > self.max:
            raise ValueError("need 0 <= `min` <= `max`")
        if self.kind == "empirical" and self.file is not None:
            read_empirical(self.file)
        return self


def _dist(v: float) -> Dist:
    return Dist(kind="fixed", value=v)
