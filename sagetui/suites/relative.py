"""`relative_load`: sweep offered load as fractions of each configuration's measured capacity.

Why: a sweep of absolute rates chosen by hand says little when the systems
compared have different capacities (most points can sit past one system's
saturation). A suite part (or `[base]`, or `[quick]` for the CI-sized list) gives
`relative_load = [0.3, 0.5, ...]` instead of sweeping `workload.rate`; expansion
makes one run per fraction with `run.load_fraction` set (name label `load=F`),
and before anything runs each configuration's capacity is probed in simulation
(sagetui/suites/capacity.py) and the run's rate becomes fraction × capacity, with
`run.capacity_rps` and `run.capacity_basis` stored in its config for the exports.
With `run.load_class` (say "chat") the fraction is of that class alone: its capacity
is probed with it as the only traffic, and the run offers fraction × capacity of it
beside the other classes' configured rates (`offered`).

Which list a part gets: its own `relative_load`, else `[base]`'s; `[quick]`'s
replaces it in quick runs. A part that sweeps or sets `workload.rate` itself keeps
its rates (inherited `relative_load` is ignored; its own is a conflict) unless it
names a `run.load_class`, whose rate sweep then sets the other classes' rates;
`--set workload.rate=X` pins the rate everywhere (relative loads dropped).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

from loadgen.spec import WorkloadSpec

from ..config import (
    ConfigError,
    Experiment,
    RunConfig,
    _expand_replicas,
    _fill_preset_defaults,
    _set_path,
)
from .capacity import CapacityResult, ProbeError, probe_capacity

KEY = "relative_load"
LABEL = "load"


def fractions_for(part: dict, base: list | None, quick_t: dict, overrides, where: str,
                  load_class: str = "") -> list[float] | None:
    """The part's relative loads (None: it sweeps absolute rates), checked. With a load
    class a rate sweep is no conflict: it sets the other classes' rates."""
    own = part.get(KEY)
    fractions = own if own is not None else base
    if fractions is None or _pins_rate(overrides):
        return None
    if _sets_rate(part) and not load_class:
        if own is not None:
            raise ConfigError(f"{where}: {KEY}: the part also sweeps or sets workload.rate; "
                              "give one of them")
        return None
    if KEY in quick_t:
        fractions = quick_t[KEY]
    if (not isinstance(fractions, list) or not fractions
            or not all(isinstance(f, int | float) and not isinstance(f, bool) and f > 0
                       for f in fractions)):
        raise ConfigError(f"{where}: {KEY}: must be a non-empty list of positive numbers "
                          f"(fractions of the measured capacity), got {fractions!r}")
    return [float(f) for f in fractions]


def _sets_rate(part: dict) -> bool:
    axes = [p.strip() for k in part.get("sweep", {}) for p in k.split("+")]
    return "workload.rate" in axes or "workload.rate" in part.get("set", {})


def _pins_rate(overrides) -> bool:
    paths = [o.split("=", 1)[0].strip() for o in overrides]
    return any(p in ("workload.rate", "sweep.workload.rate") for p in paths)


def expand_fractions(runs: list[RunConfig], fractions: list[float]) -> list[RunConfig]:
    """Each sweep point's repetitions once per fraction (point by point), unprobed:
    `run.load_fraction` set, the rate still the configured one until the probe."""
    points: dict[str, list[RunConfig]] = {}
    for cfg in runs:
        points.setdefault(cfg.run.name, []).append(cfg)
    out = []
    for reps in points.values():
        for f in fractions:
            for cfg in reps:
                c = cfg.model_copy(deep=True)
                c.run.load_fraction = f
                c.run.name = _labelled(cfg.run.name, f"{LABEL}={f:g}")
                out.append(c)
    return out


def _labelled(name: str, label: str) -> str:
    """`x` -> `x[load=0.5]`; `x[policy=fifo]` -> `x[policy=fifo,load=0.5]`."""
    return f"{name[:-1]},{label}]" if name.endswith("]") else f"{name}[{label}]"


def needs_probe(cfg: RunConfig) -> bool:
    return cfg.run.load_fraction is not None and cfg.run.capacity_rps is None


def probe_key(cfg: RunConfig) -> str:
    """Runs of one configuration share a probe: the config without rate, fraction, seed
    and name (every repetition offers the same rate, so they stay one group)."""
    d = cfg.resolved()
    for key in ("name", "load_fraction", "capacity_rps", "capacity_basis"):
        d["run"].pop(key, None)
    d["workload"].pop("rate", None)
    d["workload"].pop("seed", None)
    d.pop("repetition", None)
    return json.dumps(d, sort_keys=True)


def basis(cfg: RunConfig, probed: RunConfig, res: CapacityResult) -> str:
    """How the capacity was obtained, for the stored config and the captions."""
    how = (f"probed in simulation (bisection on workload.rate, seed {probed.run.seed}): the "
           f"highest rate with {res.criterion.text()}")
    if cfg.run.load_class:
        how += (f"; of {cfg.run.load_class} traffic alone (the other classes are offered "
                "at their configured rates beside it)")
    if cfg.run.capacity_reference:
        ref = ", ".join(f"{k} = {_shown(k, v)}" for k, v in cfg.run.capacity_reference.items())
        how += f"; of the reference configuration ({ref}), shared by every one compared"
    if cfg.run.mode == "live":
        same = probed.backends == cfg.backends
        how += ("; live runs are not probed: the capacity of the same configuration in "
                "simulation" if same else "; live runs are not probed: the capacity of the "
                "suite's simulated engines for this part, not of the live backends")
    return how


def _shown(key: str, value) -> str:
    """A reference override as the basis names it: a backends list by name, preset and
    replicas (its whole tables would drown the sentence)."""
    if key == "backends" and isinstance(value, list):
        return "[" + ", ".join(
            f"{b.get('name')} ({b.get('preset') or b.get('kind')} x{b.get('replicas', 1)})"
            for b in value if isinstance(b, dict)) + "]"
    return str(value)


def resolve(exp: Experiment, *, twins: list[RunConfig] | None = None,
            probe: Callable[[RunConfig], CapacityResult] = probe_capacity,
            on_probe: Callable[[RunConfig, CapacityResult | ProbeError], None] | None = None
            ) -> tuple[Experiment, dict[int, str]]:
    """Probe each configuration once and set its runs' rates; returns the experiment and,
    by run index, why a run cannot be made (its configuration's probe failed).

    `twins` (same length and order as exp.runs): the configs to probe instead, e.g.
    the suite's own simulated engines when live runs use a backends file."""
    if twins is not None and len(twins) != len(exp.runs):
        raise ConfigError(f"{exp.source}: {KEY}: the simulated twin of this suite has "
                          f"{len(twins)} runs, the suite {len(exp.runs)}")
    cache: dict[str, CapacityResult | ProbeError] = {}
    runs, failed = [], {}
    for i, cfg in enumerate(exp.runs):
        if not needs_probe(cfg):
            runs.append(cfg)
            continue
        target = _probe_target(cfg, twins[i] if twins is not None else None)
        key = probe_key(target)
        if key not in cache:
            cache[key] = _probe_one(target, probe)
            if on_probe:
                on_probe(cfg, cache[key])
        res = cache[key]
        if isinstance(res, ProbeError):
            failed[i] = f"capacity probe failed: {res}"
            runs.append(cfg)
            continue
        runs.append(_with_capacity(cfg, target, res))
    return exp.model_copy(update={"runs": runs}), failed


def _probe_target(cfg: RunConfig, twin: RunConfig | None) -> RunConfig:
    """What to simulate: the twin when the run's own engines are not simulated, else the
    run itself; always in sim mode at the first repetition's seed; with a load class,
    that class alone, from its configured rate."""
    src = twin if twin is not None and any(b.kind != "sim" for b in cfg.backends) else cfg
    src = src.model_copy(deep=True)
    cls = cfg.run.load_class
    if cls:  # before the reference's overrides, so a reference may drop the other engines
        alone = {c: float(c == cls) for c in src.workload.mix}
        src.workload = src.workload.model_copy(
            update={"mix": alone, "rate": class_rates(src.workload)[cls]})
    target = _reference(src) if src.run.capacity_reference else src
    target.run.mode = "sim"
    target.run.part = cfg.run.part
    return target


def class_rates(w: WorkloadSpec) -> dict[str, float]:
    """Offered req/s of each class: workload.rate split by the mix's weights."""
    total = sum(w.mix.values())
    return {c: w.rate * m / total for c, m in w.mix.items()}


def offered(w: WorkloadSpec, load_class: str, rate: float) -> WorkloadSpec:
    """The workload offering `rate` req/s: as workload.rate (no load class), or as the load
    class's rate beside the other classes' configured ones (mix then in req/s)."""
    if not load_class:
        return w.model_copy(update={"rate": round(rate, 3)})
    rates = {c: round(r, 3) for c, r in class_rates(w).items()}
    rates[load_class] = round(rate, 3)
    return w.model_copy(update={"rate": round(sum(rates.values()), 3), "mix": rates})


def _reference(cfg: RunConfig) -> RunConfig:
    """The configuration `run.capacity_reference` names: this one with its overrides
    (checked like any config; errors name the field)."""
    data = cfg.resolved()
    for path, value in cfg.run.capacity_reference.items():
        _set_path(data, path, value, cfg.run.name, what="run.capacity_reference")
    data["run"]["capacity_reference"] = {}
    # backends given here are read as in a config file: `replicas`, preset prices
    _expand_replicas(data, f"{cfg.run.name}: run.capacity_reference")
    _fill_preset_defaults(data, {})
    try:
        return RunConfig.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"{cfg.run.name}: run.capacity_reference: {exc}") from None


def _probe_one(target: RunConfig, probe) -> CapacityResult | ProbeError:
    try:
        return probe(target)
    except ProbeError as exc:
        return exc


def _with_capacity(cfg: RunConfig, target: RunConfig, res: CapacityResult) -> RunConfig:
    c = cfg.model_copy(deep=True)
    c.run.capacity_rps = round(res.capacity_rps, 3)
    c.run.capacity_basis = basis(cfg, target, res)
    c.workload = offered(c.workload, c.run.load_class, c.run.load_fraction * c.run.capacity_rps)
    return c


def probe_plan(exp: Experiment) -> dict[str, list[float]]:
    """Parts with relative loads and their fractions (for `suite show`)."""
    out: dict[str, list[float]] = {}
    for cfg in exp.runs:
        if cfg.run.load_fraction is not None:
            fs = out.setdefault(cfg.run.part, [])
            if cfg.run.load_fraction not in fs:
                fs.append(cfg.run.load_fraction)
    return out


def strip_key(raw_section: dict | None) -> tuple[dict, list | None]:
    """A `[base]` table without `relative_load` (not a run-config field) and the list."""
    section = copy.deepcopy(raw_section or {})
    return section, section.pop(KEY, None)
