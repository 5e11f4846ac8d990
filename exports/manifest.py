"""Which runs of a suite feed which table or figure: the suite's `[[suite.exports]]`.

Why: a built-in suite is ONE experiment whose runs carry their part in
`run.part` (sagetui/suites); its stored spec (the suite TOML) says, e.g.,
`table = "scalability", parts = ["backends"]`. Exports follow that map instead
of guessing, so `--table scalability --suite scalability` reads only the
backends sweep.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

from exports.errors import ExportError
from exports.model import RunView


@dataclass(frozen=True)
class Entry:
    kind: str  # table | figure
    name: str
    parts: tuple[str, ...]


def entries(spec: str, experiment: str) -> list[Entry]:
    """The `[[suite.exports]]` entries of an experiment's stored spec (empty when none)."""
    if "[[suite.exports]]" not in spec:
        return []
    try:
        raw = tomllib.loads(spec)
    except tomllib.TOMLDecodeError as exc:
        raise ExportError(f"experiment {experiment!r}: stored suite spec is not TOML ({exc})") from exc
    out = []
    for i, e in enumerate(raw.get("suite", {}).get("exports", [])):
        kind = "table" if "table" in e else "figure" if "figure" in e else None
        if kind is None or not isinstance(e.get("parts", []), list):
            raise ExportError(f"experiment {experiment!r}: suite.exports[{i}] needs table or figure "
                              "and a list of parts")
        out.append(Entry(kind, str(e[kind]), tuple(map(str, e.get("parts", [])))))
    return out


def runs_for(runs: list[RunView], kind: str, name: str) -> tuple[list[RunView], str | None]:
    """The runs a suite manifest names for this table/figure, and a note saying so.

    Runs of experiments whose manifest does not mention it are kept as they are.
    """
    keep: list[RunView] = []
    used: list[str] = []
    by_exp: dict[str, list[RunView]] = {}
    for r in runs:
        by_exp.setdefault(r.experiment, []).append(r)
    for exp, exp_runs in by_exp.items():
        parts = {p for e in entries(exp_runs[0].experiment_spec, exp)
                 if e.kind == kind and e.name == name for p in e.parts}
        if parts:
            keep += [r for r in exp_runs if r.part in parts]
            used.append(f"{exp}: parts {', '.join(sorted(parts))}")
        else:
            keep += exp_runs
    if not keep:
        raise ExportError(f"{kind} {name}: the suite manifest names parts with no completed runs "
                          f"in this selection ({'; '.join(used)})")
    note = f"{kind} {name} from the suite manifest's runs ({'; '.join(used)})" if used else None
    return keep, note
