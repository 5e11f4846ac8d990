"""`--backends FILE` for suites: your own engines, per part where the parts differ.

Why per part: a suite's parts often compare pools (suite D's GPU-only / CPU-only /
mixed, suite A's baselines); one list for every part would make them the same
experiment. The file holds an optional default list and optional per-part lists:

    [[backends]]                   # default: every part without its own entry
    name = "gpu0" ...

    [[parts.cpu-only.backends]]    # only part `cpu-only`
    name = "cpu0" ...

A part with no entry uses the default; with neither, the file is refused (the
suite's own backends would silently mix with yours). Format in docs/experiments.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..config import ConfigError, read_toml


@dataclass(frozen=True)
class BackendsFile:
    path: str
    default: list[dict] | None
    parts: dict[str, list[dict]] = field(default_factory=dict)

    def for_part(self, part: str) -> list[dict]:
        """The part's own list, else the default; an error naming the file if neither."""
        if part in self.parts:
            return self.parts[part]
        if self.default is None:
            raise ConfigError(f"{self.path}: parts.{part}: no backends for part {part!r} and no "
                              "default [[backends]] list; add one of them")
        return self.default


def _backend_list(value, path: str, where: str) -> list[dict]:
    if not isinstance(value, list) or not value or not all(isinstance(b, dict) for b in value):
        raise ConfigError(f"{path}: {where}: expected one or more [[{where}]] tables")
    return value


def read_backends_file(path: str, parts: Sequence[str] | None = None) -> BackendsFile:
    """Parse and check FILE's shape; `parts` (the suite's part names) checks per-part tables.

    The backends themselves are validated with the run config (engine.spec.BackendSpec),
    with the file named in the error.
    """
    raw, _ = read_toml(path)
    extra = sorted(set(raw) - {"backends", "parts"})
    if extra:
        raise ConfigError(f"{path}: {extra[0]}: a backends file holds [[backends]] and "
                          "[parts.<name>] tables only")
    default = _backend_list(raw["backends"], path, "backends") if "backends" in raw else None
    per_part: dict[str, list[dict]] = {}
    table = raw.get("parts", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: parts: expected [parts.<part name>] tables")
    for name, entry in table.items():
        if parts is not None and name not in parts:
            raise ConfigError(f"{path}: parts.{name}: the suite has no part {name!r}; "
                              f"its parts: {', '.join(parts)}")
        if not isinstance(entry, dict) or set(entry) != {"backends"}:
            keys = sorted(entry) if isinstance(entry, dict) else entry
            raise ConfigError(f"{path}: parts.{name}: expected only a backends list, got {keys}")
        per_part[name] = _backend_list(entry["backends"], path, f"parts.{name}.backends")
    if default is None and not per_part:
        raise ConfigError(f"{path}: backends: expected one or more [[backends]] tables "
                          "(or [[parts.<name>.backends]])")
    return BackendsFile(str(path), default, per_part)
