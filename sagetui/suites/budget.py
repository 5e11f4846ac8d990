"""One hardware budget per comparison: a suite whose compared parts differ in
hardware cost is refused before anything runs.

A fair comparison gives every configuration the same hardware: a baseline with
two extra CPU nodes can win on machines, not scheduling. A configuration's
budget is the sum of its backends' price per hour (`price_per_hour`, or the
simulator preset's when 0) with its GPU and CPU-node counts
(exports.baseline.Budget). Parts that feed one `[[suite.exports]]` table or
figure together are compared (hardware tables, which compare budgets on
purpose, excepted, also in the figures of the parts they compare); `[suite] budget_check = false` turns the check off. Also
refused here: a baseline its backends cannot be (scheduler.baselines).
"""

from __future__ import annotations

from collections import defaultdict

from engine.spec import BackendSpec
from exports.baseline import (
    HARDWARE_TABLES,
    Budget,
    hardware_part_sets,
    machines_budget,
    part_budget_gaps,
)
from scheduler.baselines import check_baseline

from ..config import ConfigError, RunConfig


def _price(b: BackendSpec) -> float:
    """The backend's price per hour; a simulated one without a price costs its preset's."""
    if b.price_per_hour or b.kind != "sim" or not b.preset:
        return b.price_per_hour
    from engine.sim.presets import get_preset

    return get_preset(b.preset).price_per_hour


def budget_of(backends: list[BackendSpec]) -> Budget:
    """A configuration's hardware budget: USD per hour, GPUs (`gpus`, or the tensor
    parallel degree when larger) and CPU nodes; backends that name one `host` are
    one machine (exports.baseline.machines_budget)."""
    return machines_budget((b.host, b.device, _price(b), max(b.gpus, b.tensor_parallel))
                           for b in backends)


def _compared(suite) -> list[list[str]]:
    """The part lists of the suite's exports that compare configurations."""
    return [list(e.get("parts", [])) for e in suite.exports
            if (e.get("table") or e.get("figure")) not in HARDWARE_TABLES]


def check_suite(suite, runs: list[RunConfig]) -> None:
    """Refuse, before running, a baseline its backends cannot be and parts compared on
    different budgets (ConfigError naming the parts and the difference)."""
    for cfg in runs:
        try:
            check_baseline(cfg.control_plane.baseline, cfg.backends)
        except ValueError as exc:
            raise ConfigError(f"{suite.path} [part {cfg.run.part}]: control_plane.{exc}") from None
    flag = suite.raw["suite"].get("budget_check", True)
    if not isinstance(flag, bool):
        raise ConfigError(f"{suite.path}: suite.budget_check: must be true or false, got {flag!r}")
    if not flag:
        return
    budgets: dict[str, set[Budget]] = defaultdict(set)
    for cfg in runs:
        budgets[cfg.run.part].add(budget_of(cfg.backends))
    hardware = hardware_part_sets(suite.text, suite.name)
    for parts in _compared(suite):
        gaps = part_budget_gaps({p: sorted(budgets[p]) for p in parts if p in budgets},
                                hardware)
        if gaps:
            raise ConfigError(f"suite {suite.name}: {gaps[0]}; give them the same hardware or "
                              "set `[suite] budget_check = false`")
