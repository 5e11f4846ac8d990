"""What the Launch screen needs without textual: built-in configs, overrides, validation.

Why validate here first: a TOML that fails validation must be reported in the
dashboard (naming the file and field) before a child process is started.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sagetui
from sagetui.config import ConfigError, Experiment, load_experiment

_PKG = Path(sagetui.__file__).resolve().parent
SUITE_DIRS = (_PKG / "suites", _PKG.parent / "examples")

# Launch form field -> config path passed as `--set path=value`.
FIELDS = {
    "policy": "control_plane.policy",
    "rate": "workload.rate",
    "duration": "workload.duration_s",
    "repetitions": "run.repetitions",
}


def builtin_configs() -> list[tuple[str, Path]]:
    """(label, path) of the suites shipped with sagetui and the example configs."""
    found = []
    for folder in SUITE_DIRS:
        if folder.is_dir():
            kind = "suite" if folder.name == "suites" else "example"
            found += [(f"{kind}: {p.stem}", p) for p in sorted(folder.glob("*.toml"))]
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


def build_sets(form: dict[str, str], config_path: str) -> dict[str, str]:
    """The `--set` overrides for the form's non-empty fields (mode, backends, extra too)."""
    sets: dict[str, str] = {}
    for name, path in FIELDS.items():
        value = form.get(name, "").strip()
        if value:
            sets[path] = value
    mode = form.get("mode", "").strip()
    if mode:
        sets["run.mode"] = mode
    for item in form.get("extra", "").split():
        if "=" not in item:
            raise ConfigError(f"more overrides: {item!r}: expected path=value")
        key, value = item.split("=", 1)
        sets[key.strip()] = value
    keep = [b.strip() for b in form.get("backends", "").split(",") if b.strip()]
    if keep:
        exp = load_experiment(config_path)
        specs = {b.name: b for b in exp.runs[0].backends}
        unknown = [b for b in keep if b not in specs]
        if unknown:
            raise ConfigError(f"backends: {', '.join(unknown)} not in {config_path} "
                              f"(it has {', '.join(specs)})")
        sets["backends"] = toml_inline(
            [specs[b].model_dump(mode="json", exclude_none=True) for b in keep])
    return sets


def validate(config_path: str, sets: dict[str, str]) -> Experiment:
    """Load and validate exactly what the child will run; ConfigError names file and field."""
    return load_experiment(config_path, overrides=[f"{k}={v}" for k, v in sets.items()])
