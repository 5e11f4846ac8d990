"""Grouping runs into configurations (repetitions of one config) and naming them.

Why: a table row or figure point is one configuration; its repetitions (runs
whose config_hash is equal — the store hashes the config minus seed and
repetition) become a mean ± CI. Labels name only what differs between groups.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from exports.errors import ExportError
from exports.model import RunView
from exports.stats import Estimate, estimate

# Keys that never distinguish configurations.
IGNORED_KEYS = ("run.seed", "run.engine_seed", "run.repetition", "run.name", "run.repetitions",
                "run.tags", "workload.seed")


@dataclass(frozen=True)
class Group:
    """Repetitions of one configuration."""

    runs: tuple[RunView, ...]

    @property
    def first(self) -> RunView:
        return self.runs[0]

    @property
    def run_ids(self) -> list[int]:
        return [r.id for r in self.runs]

    def estimate(self, value: Callable[[RunView], float | None], what: str) -> Estimate:
        """Mean ± CI of `value` over the repetitions; a run missing it is an error naming it."""
        values = []
        for r in self.runs:
            v = value(r)
            if v is None:
                raise ExportError(f"run {r.id} ({r.name}) has no {what}")
            values.append(float(v))
        return estimate(values)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become canonical JSON text."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, list):
            out[key] = json.dumps(v, sort_keys=True)
        else:
            out[key] = v
    return out


def _identity(run: RunView) -> str:
    if run.config_hash:
        return run.config_hash
    flat = flatten(run.config)
    return json.dumps({k: v for k, v in flat.items() if k not in IGNORED_KEYS}, sort_keys=True)


def group_runs(runs: Iterable[RunView]) -> list[Group]:
    """Runs grouped by configuration, in order of each group's first run id."""
    groups: dict[str, list[RunView]] = {}
    for r in sorted(runs, key=lambda r: r.id):
        groups.setdefault(_identity(r), []).append(r)
    return [Group(tuple(v)) for v in groups.values()]


def differences(runs: Iterable[RunView], ignore: tuple[str, ...] = ()) -> dict[str, list[Any]]:
    """Config keys whose values differ among `runs` -> their distinct values."""
    flats = [flatten(r.config) for r in runs]
    keys = sorted(set().union(*flats)) if flats else []
    out = {}
    for k in keys:
        if k in IGNORED_KEYS or k in ignore:
            continue
        values = []
        for f in flats:
            v = f.get(k)
            if v not in values:
                values.append(v)
        if len(values) > 1:
            out[k] = values
    return out


def short_value(key: str, value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if key == "backends" and isinstance(value, str):
        items = json.loads(value)
        kinds = sorted({"/".join(str(x) for x in (b.get("kind", "?"), b.get("device", "?"),
                                                  b.get("preset") or b.get("model")) if x)
                        for b in items})
        return f"{len(items)}×{'+'.join(kinds)}"
    return str(value)


def labels(groups: list[Group], ignore: tuple[str, ...] = ()) -> list[str]:
    """A short label per group naming only the config keys that vary between them.

    When the suite part varies, keys that follow from the part (its arrival settings, say)
    are left out: the part's name says it.
    """
    diff = differences([g.first for g in groups], ignore)
    if "run.part" in diff:
        flats = [flatten(g.first.config) for g in groups]
        for k in [k for k in diff if k != "run.part"]:
            by_part: dict[Any, set[str]] = {}
            for f in flats:
                by_part.setdefault(f.get("run.part"), set()).add(json.dumps(f.get(k), default=str))
            if all(len(v) == 1 for v in by_part.values()):
                del diff[k]
    out = []
    for g in groups:
        flat = flatten(g.first.config)
        parts = [f"{k.split('.')[-1]}={short_value(k, flat.get(k))}" for k in diff]
        out.append(", ".join(parts) or "this configuration")
    return out


def keyed(groups: list[Group], key: Callable[[RunView], Any], what: str) -> dict[Any, Group]:
    """Groups by a table's row key; two configurations under one key is an error listing why."""
    out: dict[Any, Group] = {}
    for g in groups:
        k = key(g.first)
        if k in out:
            diff = differences([out[k].first, g.first])
            listed = "; ".join(f"{p}: {' vs '.join(short_value(p, x) for x in v)}" for p, v in diff.items())
            raise ExportError(
                f"{what}: runs {out[k].run_ids} and {g.run_ids} share the row {k!r} but differ "
                f"in {listed or 'config hash'}; narrow the selection (--where, --runs)"
            )
        out[k] = g
    return out
