"""What the Launch screen needs without textual: targets, overrides, validation, argv.

Why validate here first: a suite or TOML that fails validation must be
reported in the dashboard (naming the file and field) before a child process
is started. Validation uses the very loaders the child will use
(`sagetui.config.load_experiment`, `sagetui.suites.expand_suite`).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sagetui
from sagetui.config import ConfigError, load_experiment
from sagetui.suites import expand_suite, find_suite, list_suites

_PKG = Path(sagetui.__file__).resolve().parent
CONFIG_DIRS = (_PKG / "configs", _PKG.parent / "examples")

# Launch form field -> config path passed as `--set path=value`.
FIELDS = {
    "policy": "control_plane.policy",
    "rate": "workload.rate",
    "duration": "workload.duration_s",
    "repetitions": "run.repetitions",
}


@dataclass
class Plan:
    """A validated launch: what to run, how, and a one-line description."""

    kind: str  # "suite" | "config"
    target: str  # suite name or config path
    sets: dict[str, str] = field(default_factory=dict)
    mode: str = ""
    quick: bool = False
    backends_file: str = ""
    description: str = ""
    runs: int | None = None  # how many runs it will make (None: decided by the run itself)

    def argv(self, db_path: str | os.PathLike[str]) -> list[str]:
        """`python -m sagetui --db DB run CONFIG …` or `… suite run NAME …`."""
        argv = [sys.executable, "-m", "sagetui", "--db", str(db_path)]
        argv += ["run", self.target] if self.kind == "config" else ["suite", "run", self.target]
        if self.mode:
            argv += ["--mode", self.mode]
        if self.quick:
            argv.append("--quick")
        if self.backends_file:
            argv += ["--backends", self.backends_file]
        for key, value in self.sets.items():
            argv += ["--set", f"{key}={value}"]
        return argv


def builtin_targets() -> list[tuple[str, str]]:
    """(label, value) of the built-in suites (`suite:NAME`) and shipped configs (`file:PATH`)."""
    found = [(f"suite: {s.name} — {s.title}", f"suite:{s.name}") for s in list_suites()]
    for folder in CONFIG_DIRS:
        if folder.is_dir():
            found += [(f"config: {p.stem}", f"file:{p}") for p in sorted(folder.glob("*.toml"))]
    return found


def toml_inline(value: Any) -> str:
    """A Python value as an inline TOML value (for `--set backends=[...]`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        items = [f"{json.dumps(str(k))} = {toml_inline(v)}" for k, v in value.items()
                 if v is not None]
        return "{" + ", ".join(items) + "}"
    raise ConfigError(f"cannot write {value!r} as TOML")


def _sets(form: dict[str, str]) -> dict[str, str]:
    sets: dict[str, str] = {}
    for name, path in FIELDS.items():
        value = form.get(name, "").strip()
        if value:
            sets[path] = value
    for item in form.get("extra", "").split():
        if "=" not in item:
            raise ConfigError(f"more --set: {item!r}: expected path=value")
        key, value = item.split("=", 1)
        sets[key.strip()] = value
    return sets


def plan(target: str, form: dict[str, str], quick: bool = False) -> Plan:
    """Validate the form against the target (`suite:NAME`, `file:PATH` or a path).

    `backends`: for a config, names of its backends to keep (comma-separated);
    for a suite, a TOML file of [[backends]] replacing the suite's (`--backends`).
    """
    target = target.strip()
    if not target:
        raise ConfigError("choose a built-in suite or config, or give a TOML file path")
    sets, mode = _sets(form), form.get("mode", "").strip()
    backends = form.get("backends", "").strip()
    if target.startswith("suite:"):
        suite = find_suite(target.removeprefix("suite:"))
        p = Plan("suite", suite.name, sets, mode, quick)
        if backends:
            if not Path(backends).is_file():
                raise ConfigError(f"backends: {backends}: for a suite, give a TOML file of "
                                  "[[backends]] (it replaces the suite's)")
            p.backends_file = backends
        if suite.kind != "sweeps":
            p.description = (f"suite {suite.name} ({suite.kind}): validated by the run "
                             "itself when it starts")
            return p
        exp = expand_suite(suite, quick=quick, mode=mode or None, overrides=_as_list(sets),
                           backends_file=p.backends_file or None)
        p.description = _describe(f"suite {suite.name}{' (quick)' if quick else ''}", exp)
        p.runs = len(exp.runs)
        return p
    path = target.removeprefix("file:")
    if quick:
        raise ConfigError("quick: only built-in suites have a quick version")
    p = Plan("config", path, sets, mode)
    if backends:
        specs = {b.name: b for b in load_experiment(path).runs[0].backends}
        keep = [b.strip() for b in backends.split(",") if b.strip()]
        unknown = [b for b in keep if b not in specs]
        if unknown:
            raise ConfigError(f"backends: {', '.join(unknown)} not in {path} "
                              f"(it has {', '.join(specs)})")
        p.sets["backends"] = toml_inline(
            [specs[b].model_dump(mode="json", exclude_none=True) for b in keep])
    exp = load_experiment(path, overrides=_as_list(p.sets), mode=mode or None)
    p.description = _describe(exp.name, exp)
    p.runs = len(exp.runs)
    return p


def _as_list(sets: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in sets.items()]


def _describe(name: str, exp) -> str:
    first = exp.runs[0]
    modes = "/".join(sorted({c.run.mode for c in exp.runs}))
    return (f"{name}: {len(exp.runs)} run(s), mode {modes}, policy "
            f"{first.control_plane.policy}, rate {first.workload.rate:g} r/s, "
            f"{first.workload.duration_s:g} s")
