"""Which runs an export reads: --suite, --experiment, --runs and --where.

`--where` is a comma-separated list of clauses `PATH OP VALUE` (OP one of
= != < <= > >=) that must all hold. PATH is a dotted path into the run's
resolved config (`control_plane.policy`, `workload.rate`) or one of the run
fields `id`, `name`, `mode`, `seed`, `repetition`, `experiment`, `suite`,
`backends` (their number). Numbers compare as numbers, the rest as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exports.errors import ExportError

if TYPE_CHECKING:
    from exports.model import RunView

_CLAUSE = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(!=|<=|>=|=|<|>)\s*(.*?)\s*$")
_RUN_FIELDS = ("id", "name", "mode", "seed", "repetition", "experiment", "suite")


@dataclass(frozen=True)
class Clause:
    path: str
    op: str
    value: str


@dataclass(frozen=True)
class Selection:
    suite: str | None = None
    experiment: str | None = None
    run_ids: tuple[int, ...] = ()
    where: tuple[Clause, ...] = ()

    def describe(self) -> str:
        parts = []
        if self.suite:
            parts.append(f"--suite {self.suite}")
        if self.experiment:
            parts.append(f"--experiment {self.experiment}")
        if self.run_ids:
            parts.append("--runs " + ",".join(map(str, self.run_ids)))
        if self.where:
            parts.append("--where " + ",".join(f"{c.path}{c.op}{c.value}" for c in self.where))
        return " ".join(parts) or "the store (no selection given)"


def parse_run_ids(text: str) -> tuple[int, ...]:
    """`1,2,5-8` -> (1, 2, 5, 6, 7, 8)."""
    ids: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ExportError(f"--runs: {part!r} is not a run id or a range like 5-8")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ExportError(f"--runs: range {part!r} runs backwards")
        ids.extend(range(lo, hi + 1))
    if not ids:
        raise ExportError("--runs: no run ids given")
    return tuple(ids)


def parse_where(text: str) -> tuple[Clause, ...]:
    clauses = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = _CLAUSE.match(part)
        if not m or not m.group(3):
            raise ExportError(f"--where: cannot read {part!r}; expected PATH OP VALUE, e.g. workload.rate>=10")
        clauses.append(Clause(*m.groups()))
    if not clauses:
        raise ExportError("--where: empty expression")
    return tuple(clauses)


def lookup(run: RunView, path: str) -> Any:
    """The value at `path` for `run` (see module doc), or None when absent."""
    if path in _RUN_FIELDS:
        return getattr(run, path)
    if path == "backends":
        return run.n_backends
    node: Any = run.config
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _compare(actual: Any, op: str, wanted: str) -> bool:
    if actual is None:
        return op == "!="
    try:
        a: Any = float(actual)
        w: Any = float(wanted)
    except (TypeError, ValueError):
        a, w = str(actual).lower() if isinstance(actual, bool) else str(actual), wanted
    return {
        "=": a == w, "!=": a != w, "<": a < w, "<=": a <= w, ">": a > w, ">=": a >= w,
    }[op]


def matches_where(run: RunView, clauses: tuple[Clause, ...]) -> bool:
    return all(_compare(lookup(run, c.path), c.op, c.value) for c in clauses)
