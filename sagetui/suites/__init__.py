"""Built-in suites: the paper's experiments as declarative TOML files.

A suite file (one per experiment category, shipped in this folder) has:

- `[suite]` name, category, title, description, and `[[suite.exports]]`
  entries saying which table or figure is built from which parts;
- `[base]` a run config (the same tables as examples/*.toml) shared by all parts;
- `[[parts]]` each with a `name`, optional `set` (dotted overrides), `sweep`
  (dotted path → values) and `backends` (replaces the base's); `--backends FILE`
  replaces them per part (sagetui/suites/backends_file.py);
- `[quick]` the CI-sized version: `set` for every part, `sweep` axes that
  replace the same axes in every part, and optionally `parts` to keep;
- `relative_load = [fractions]` in a part, `[base]` or `[quick]`: offered load as
  fractions of each configuration's capacity, probed in simulation before the
  runs (sagetui/suites/relative.py, capacity.py) instead of a `workload.rate` sweep.

A suite becomes ONE experiment in the store (kind "suite"); each run carries
its part in `run.part`, and the stored experiment spec is the suite file, so
exports can find which runs feed which table.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..config import ConfigError, Experiment, RunConfig, _set_path, expand_raw, read_toml
from .backends_file import read_backends_file
from .estimate import LIVE_ENGINE_START_S, estimate_seconds  # noqa: F401 - re-exported
from .relative import KEY as REL_KEY
from .relative import expand_fractions, fractions_for, strip_key


@dataclass
class Suite:
    name: str
    category: str
    title: str
    description: str
    path: str
    text: str
    raw: dict
    exports: list[dict] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """`sweeps` (parts × sweeps), `fidelity` (profile, calibrate, compare) or
        `agents` (the agent benchmark, sagetui/agents)."""
        return self.raw["suite"].get("kind", "sweeps")

    @property
    def parts(self) -> list[str]:
        return [p["name"] for p in self.raw.get("parts", [])]


def suite_dir() -> Path:
    return Path(str(resources.files("sagetui.suites")))


def list_suites() -> list[Suite]:
    return [load_suite(p) for p in sorted(suite_dir().glob("*.toml"))]


def find_suite(name: str) -> Suite:
    """A built-in suite by name, or a suite file by path."""
    path = Path(name)
    if path.suffix == ".toml" and path.exists():
        return load_suite(path)
    known = {s.name: s for s in list_suites()}
    if name not in known:
        raise ConfigError(f"suite: unknown suite {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


def load_suite(path: str | Path) -> Suite:
    raw, text = read_toml(path)
    head = raw.get("suite")
    if not isinstance(head, dict) or not head.get("name"):
        raise ConfigError(f"{path}: suite.name: a suite file needs a [suite] table with a name")
    for key in raw:
        if key not in ("suite", "base", "parts", "quick", "fidelity", "agents"):
            raise ConfigError(f"{path}: {key}: unknown section; a suite has "
                              "[suite], [base], [[parts]] and [quick]")
    if not raw.get("parts"):
        raise ConfigError(f"{path}: parts: a suite needs at least one [[parts]]")
    names = [p.get("name") for p in raw["parts"]]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise ConfigError(f"{path}: parts.name: every part needs a unique name, got {names}")
    for entry in head.get("exports", []):
        unknown = set(entry.get("parts", [])) - set(names)
        if unknown:
            raise ConfigError(f"{path}: suite.exports: unknown parts {sorted(unknown)}")
    return Suite(name=head["name"], category=head.get("category", ""),
                 title=head.get("title", ""), description=head.get("description", ""),
                 path=str(path), text=text, raw=raw, exports=head.get("exports", []))


def expand_suite(suite: Suite, *, quick: bool = False, mode: str | None = None,
                 overrides: list[str] = (), backends_file: str | None = None) -> Experiment:
    """Every run of the suite, validated, as one Experiment (nothing runs yet)."""
    raw = suite.raw
    quick_t = raw.get("quick", {}) if quick else {}
    keep = quick_t.get("parts")
    user = read_backends_file(backends_file, suite.parts) if backends_file else None
    runs: list[RunConfig] = []
    sweep_all: dict = {}
    base, base_rel = strip_key(raw.get("base"))
    for part in raw["parts"]:
        if keep and part["name"] not in keep:
            continue
        cfg = copy.deepcopy(base)
        if "backends" in part:
            cfg["backends"] = copy.deepcopy(part["backends"])
        where = f"{suite.path} [part {part['name']}]"
        if user is not None:
            cfg["backends"] = copy.deepcopy(user.for_part(part["name"]))
            where = f"{suite.path} [part {part['name']}, backends from {backends_file}]"
        for dotted, value in {**part.get("set", {}), **quick_t.get("set", {})}.items():
            _set_path(cfg, dotted, copy.deepcopy(value), where, what="set")
        sweep = dict(part.get("sweep", {}))
        for dotted, values in quick_t.get("sweep", {}).items():
            if dotted in sweep:
                sweep[dotted] = values
        cfg["sweep"] = sweep
        run_t = cfg.setdefault("run", {})
        run_t["part"] = part["name"]
        run_t["name"] = f"{suite.name}/{part['name']}"
        run_t.setdefault("tags", [])
        run_t["tags"] = [*run_t["tags"], f"suite:{suite.name}"] + (["quick"] if quick else [])
        fractions = fractions_for(part, base_rel, quick_t, overrides, where,
                                  str(cfg.get("run", {}).get("load_class") or ""))
        exp = expand_raw(cfg, source=where, spec_text="", overrides=overrides, mode=mode)
        runs.extend(expand_fractions(exp.runs, fractions) if fractions else exp.runs)
        sweep_all.update({f"{part['name']}:{k}": v for k, v in exp.sweep.items()})
        if fractions:
            sweep_all[f"{part['name']}:{REL_KEY}"] = fractions
    if not runs:
        raise ConfigError(f"{suite.path}: quick.parts: no part selected")
    from .budget import check_suite  # refuse unequal budgets / impossible baselines now
    check_suite(suite, runs)
    return Experiment(name=suite.name + (" (quick)" if quick else ""), source=suite.path,
                      spec_text=suite.text, runs=runs, sweep=sweep_all)


def _read_backends(path: str) -> list[dict]:
    """The file's default [[backends]] list, for suites without parts to choose by
    (fidelity, agents)."""
    bf = read_backends_file(path)
    if bf.parts:
        raise ConfigError(f"{path}: parts.{next(iter(bf.parts))}: this suite takes only a "
                          "default [[backends]] list, not per-part ones")
    default = bf.default
    if default is None:
        raise ConfigError(f"{path}: backends: expected one or more [[backends]] tables "
                          "(this suite reads only the default list)")
    return default
