"""Run configuration: TOML in, a validated and fully resolved config out.

Why here: a run config composes the sections each package owns — `[workload]`
(loadgen), `[control_plane]` (scheduler), `[[backends]]` (engine) — plus what
only the orchestrator knows (`[run]`, `[[faults]]`, `[sweep]`). Everything is
validated before anything starts, and the resolved config (every default
filled in) is what the run stores.
"""

from __future__ import annotations

import copy
import itertools
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.cluster.spec import ClusterSpec
from engine.spec import BackendSpec
from loadgen.spec import WorkloadSpec
from scheduler.config import ControlPlaneConfig

from .errors import ConfigError


class RunSection(BaseModel):
    """`[run]`: identity and repetition of the run."""

    model_config = ConfigDict(extra="forbid")

    name: str = "run"
    mode: Literal["sim", "live"] = "sim"
    seed: int = Field(default=1, ge=0)
    repetitions: int = Field(default=1, ge=1, le=100)
    tags: list[str] = Field(default_factory=list)
    raw: bool = False  # keep per-request records in the store
    experiment: str | None = None  # experiment name; defaults to the run name
    part: str = ""  # the suite part this run belongs to (set by suites)
    # Live runs: cores the measuring process (load generator and in-process gateway)
    # runs on, e.g. keep it off the embedding engine's core on a small machine.
    # Empty: wherever the OS puts it. Restored when the run ends.
    cpus: list[int] = Field(default_factory=list)
    # Live runs: load-generator processes sharing one schedule (loadgen.runner). One
    # Python process with the in-process gateway beside it sent only 568-678 of 800
    # req/s on a 16-core GPU host (docs/gpu.md, suite D): raise it for high rates.
    load_workers: int = Field(default=1, ge=1, le=64)
    # Sim runs: the seed of the simulated engines' measured noise (a calibrated preset's
    # front-end delay, decode stalls and embedding pass times). Unset: the workload's
    # seed, so each repetition draws new noise with its new workload. Set it to draw
    # new noise over the same workload (the fidelity suite's repeated sim runs).
    engine_seed: int | None = Field(default=None, ge=0)
    # Suites with `relative_load` (sagetui/suites/relative.py): the configuration's
    # capacity (req/s of workload.rate) measured by the sim probe before the run, the
    # fraction of it this run offers (workload.rate = load_fraction × capacity_rps) and
    # how the capacity was obtained. Set by the expansion, never by hand; exports read
    # them to show offered load as × capacity.
    capacity_rps: float | None = Field(default=None, gt=0)
    load_fraction: float | None = Field(default=None, gt=0)
    capacity_basis: str = ""
    # Dotted overrides of the configuration whose capacity sets the rates, e.g.
    # {"control_plane.policy" = "fifo"}: every policy of a comparison then offers the
    # same load (fractions of the reference's capacity), as a policy study must.
    # Empty: each configuration's own capacity.
    capacity_reference: dict[str, Any] = Field(default_factory=dict)
    # The class the relative load is of, e.g. "chat": its capacity is probed with that
    # class as the only traffic, the fraction sets that class's rate, and the other
    # classes keep their configured rates (workload.rate × their share of workload.mix),
    # so a sweep can hold embedding traffic at 400 req/s while chat goes past capacity.
    # Empty: the fraction scales the whole workload.rate, mix unchanged.
    load_class: Literal["", "chat", "completion", "embedding"] = ""


class FaultSpec(BaseModel):
    """`[[faults]]`: kill or pause one engine at a run-relative time."""

    model_config = ConfigDict(extra="forbid")

    at_s: float = Field(ge=0)
    backend: str
    action: Literal["kill", "pause"] = "kill"
    duration_s: float = Field(default=5.0, gt=0)  # pause only: how long until resumed


class RunConfig(BaseModel):
    """One fully specified run (one sweep point, one repetition)."""

    model_config = ConfigDict(extra="forbid")

    run: RunSection = Field(default_factory=RunSection)
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec)
    control_plane: ControlPlaneConfig = Field(default_factory=ControlPlaneConfig)
    backends: list[BackendSpec] = Field(min_length=1)
    faults: list[FaultSpec] = Field(default_factory=list)
    # Live runs: which launcher starts the engines (local processes or a Ray cluster)
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)
    repetition: int = 0  # filled by expansion; 0-based

    @model_validator(mode="after")
    def _cross_checks(self) -> RunConfig:
        names = [b.name for b in self.backends]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"backends: duplicate backend names {dupes}")
        for i, fault in enumerate(self.faults):
            if fault.backend not in names:
                raise ValueError(
                    f"faults.{i}.backend: unknown backend {fault.backend!r}; known: {names}")
        self.cluster.check_backends(self.backends)
        if self.run.load_class and not self.workload.mix.get(self.run.load_class):
            raise ValueError(f"run.load_class: {self.run.load_class!r} has no weight in "
                             "workload.mix; the relative load sets that class's rate")
        capable = {c for b in self.backends for c in b.capabilities}
        for cls in _classes_used(self.workload):
            needs = {"pipeline": {"chat", "embedding"}}.get(cls, {cls})
            missing = needs - capable
            if missing:
                raise ValueError(
                    f"workload.mix.{cls}: no backend can serve {sorted(missing)}; "
                    f"backends offer {sorted(capable)}")
        if "pipeline" in _classes_used(self.workload):
            _check_retrieval(self.workload)
        return self

    def resolved(self) -> dict[str, Any]:
        """The JSON-ready config with every default filled in (what the store keeps).

        The relative-load fields and a `[cluster]` that launches locally are left
        out while unset, so a run without them keeps the config (and config hash)
        it had before they existed.
        """
        out = json.loads(self.model_dump_json())
        for key in _UNSET_OMITTED:
            if out["run"].get(key) in (None, "", {}):
                out["run"].pop(key, None)
        if self.cluster == ClusterSpec():  # local engines, as before the section existed
            out.pop("cluster", None)
        return out


_UNSET_OMITTED = ("capacity_rps", "load_fraction", "capacity_basis", "capacity_reference",
                  "load_class")


def corpus_passages(workload: WorkloadSpec) -> list[str] | None:
    """The passages of `[workload.pipeline] corpus_file` (engine.retrieval.read_corpus:
    JSON lines with `text`, or plain lines), None without a file; a missing or
    malformed file is an error naming it and the line."""
    path = workload.pipeline.corpus_file
    if path is None:
        return None
    from engine.retrieval import read_corpus

    try:
        return read_corpus(path)
    except ValueError as e:
        raise ValueError(f"workload.pipeline.corpus_file: {e}") from None


def _check_retrieval(workload: WorkloadSpec) -> None:
    """Refuse, before anything runs or is stored, a corpus file that cannot be read and a
    retrieve stage whose index would not fit this machine's memory (a simulated run
    builds the index too, to time its searches)."""
    from engine.retrieval import IndexTooLarge, check_fits

    passages = corpus_passages(workload)
    n = len(passages) if passages is not None else workload.pipeline.corpus_size
    for i, p in enumerate(workload.pipeline_kinds()):
        for s in p.stages:
            if s.kind == "retrieve":
                try:
                    check_fits(n, EMBED_DIM, s.index)
                except IndexTooLarge as e:
                    raise ValueError(f"workload.pipelines.{i}: pipeline {p.name!r}, stage "
                                     f"{s.name!r}, field `index`: {e}") from None


EMBED_DIM = 384  # the retrieve stages' vectors: all-MiniLM-L6-v2


def _classes_used(workload: WorkloadSpec) -> list[str]:
    """Request classes the workload can issue (weight > 0 in the mix)."""
    mix = workload.mix
    items = mix.items() if isinstance(mix, dict) else mix.model_dump().items()
    return [cls for cls, weight in items if weight and weight > 0]


class Experiment(BaseModel):
    """A config file expanded: its name, source text and every run to do."""

    name: str
    source: str
    spec_text: str
    runs: list[RunConfig]
    sweep: dict[str, list[Any]]


# -- loading ------------------------------------------------------------------

def read_toml(path: str | Path) -> tuple[dict, str]:
    """Parse a TOML file; errors name the file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_experiment(path: str | Path, *, overrides: list[str] = (), mode: str | None = None
                    ) -> Experiment:
    """Read a TOML config, apply `--set` overrides and `--mode`, expand the sweep.

    Every point of the sweep is validated here, before anything runs.
    """
    raw, text = read_toml(path)
    return expand_raw(raw, source=str(path), spec_text=text, overrides=overrides, mode=mode)


def expand_raw(raw: dict, *, source: str, spec_text: str, overrides: list[str] = (),
               mode: str | None = None, name: str | None = None) -> Experiment:
    """A parsed config (dict) → an Experiment with every sweep point × repetition."""
    raw = copy.deepcopy(raw)
    sweep = raw.pop("sweep", {}) or {}
    if not isinstance(sweep, dict):
        raise ConfigError(f"{source}: sweep: must be a table of 'path = [values]'")
    for item in overrides:
        path_s, value = _parse_override(item, source)
        if path_s.startswith("sweep."):  # --set sweep.workload.rate=[10,100]
            sweep[path_s.removeprefix("sweep.").strip('"')] = value
            continue
        sweep.pop(path_s, None)  # pinning a swept field replaces its sweep
        _set_path(raw, path_s, value, source, what="--set")
    if mode is not None:
        raw.setdefault("run", {})["mode"] = mode
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: sweep.{key}: must be a non-empty list of values")
    keys = list(sweep)
    runs: list[RunConfig] = []
    presets: dict = {}  # simulator presets, read from disk once per expansion
    for combo in itertools.product(*(sweep[k] for k in keys)) if keys else [()]:
        point = copy.deepcopy(raw)
        labels = []
        for key, value in zip(keys, combo, strict=True):
            for path_s, v in _axis_values(key, value, source):
                _set_path(point, path_s, v, source, what=f"sweep.{key}")
                labels.append(f"{path_s.rsplit('.', 1)[-1]}={v}")
        label = ",".join(labels)
        _expand_replicas(point, source)
        _fill_preset_defaults(point, presets)
        cfg = _validate(point, source)
        if label:
            cfg.run.name = f"{cfg.run.name}[{label}]"
        for rep in range(cfg.run.repetitions):
            workload = cfg.workload.model_copy(update={"seed": cfg.run.seed + rep})
            runs.append(cfg.model_copy(update={"repetition": rep, "workload": workload},
                                       deep=True))
    run_section = raw.get("run", {}) or {}
    name = name or run_section.get("experiment") or run_section.get("name") or Path(source).stem
    return Experiment(name=name, source=source, spec_text=spec_text, runs=runs, sweep=sweep)


def _axis_values(key: str, value: Any, source: str) -> list[tuple[str, Any]]:
    """A sweep axis is one path, or paths joined by `+` swept together (zipped):
    `"backends.0.replicas+workload.rate" = [[1, 150], [2, 300]]`."""
    paths = [p.strip() for p in key.split("+")]
    if len(paths) == 1:
        return [(paths[0], value)]
    if not isinstance(value, list) or len(value) != len(paths):
        raise ConfigError(f"{source}: sweep.{key}: each value must be a list of {len(paths)} "
                          f"items (one per path), got {value!r}")
    return list(zip(paths, value, strict=True))


def _expand_replicas(data: dict, source: str) -> None:
    """`replicas = N` in a [[backends]] entry stands for N identical backends
    named NAME0..NAME{N-1} (how scalability sweeps vary the pool size)."""
    backends = data.get("backends")
    if not isinstance(backends, list):
        return
    out = []
    for i, b in enumerate(backends):
        if not isinstance(b, dict) or "replicas" not in b:
            out.append(b)
            continue
        n = b["replicas"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(f"{source}: backends.{i}.replicas: must be an integer >= 1, "
                              f"got {n!r}")
        base = {k: v for k, v in b.items() if k != "replicas"}
        for j in range(n):
            out.append({**copy.deepcopy(base), "name": f"{base.get('name', 'b')}{j}"})
    data["backends"] = out


def _fill_preset_defaults(data: dict, presets: dict) -> None:
    """A simulated backend without a price or device kind takes its preset's, so
    cost-aware routing and cost tables see real prices; an explicit value wins.
    `presets` is a cache the caller keeps across sweep points (filled on first use)."""
    from engine.sim.presets import get_preset

    for b in data.get("backends") or []:
        if not isinstance(b, dict) or b.get("kind") != "sim" or not b.get("preset"):
            continue
        name = b["preset"]
        if name not in presets:
            try:
                presets[name] = get_preset(str(name))
            except (KeyError, ValueError):
                presets[name] = None  # validation names the unknown or broken preset
        preset = presets[name]
        if preset is None:
            continue
        b.setdefault("price_per_hour", preset.price_per_hour)
        b.setdefault("device_kind", preset.device_kind)


def _validate(data: dict, source: str) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: `file: dotted.field: message`."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {loc}: {msg}")
    return "\n".join(lines)


def _parse_override(item: str, source: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected PATH=VALUE, e.g. workload.rate=200")
    path_s, value_s = item.split("=", 1)
    path_s = path_s.strip()
    try:
        value = tomllib.loads(f"v = {value_s}")["v"]
    except tomllib.TOMLDecodeError:
        value = value_s  # a bare word is a string: policy=hybrid
    return path_s, value


def _set_path(data: dict, dotted: str, value: Any, source: str, *, what: str) -> None:
    """Set `a.b.0.c` in nested dicts/lists; unknown fields are caught by validation."""
    parts = dotted.split(".")
    if not dotted or any(not p for p in parts):
        raise ConfigError(f"{source}: {what} {dotted!r}: empty path segment")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{source}: {what} {dotted!r}: no list item {part!r}")
            node = node[int(part)]
            continue
        if part not in node:
            node[part] = [] if nxt.isdigit() else {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"{source}: {what} {dotted!r}: no list item {last!r}")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"{source}: {what} {dotted!r}: {parts[-2]!r} is not a table")
