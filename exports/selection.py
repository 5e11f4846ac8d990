"""Which runs an export reads: --suite, --experiment, --runs and --where.

`--where` clauses are the store's (store.queries.parse_where, as in `sagetui runs
list`): `PATH OP VALUE` over the resolved config, e.g. `control_plane.policy=hybrid`,
`workload.rate>=100`, `run.part=backends`; repeat the option to combine clauses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from exports.errors import ExportError


@dataclass(frozen=True)
class Selection:
    suite: str | None = None
    experiment: str | None = None  # name or id
    run_ids: tuple[int, ...] = ()
    where: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = []
        if self.suite:
            parts.append(f"--suite {self.suite}")
        if self.experiment:
            parts.append(f"--experiment {self.experiment}")
        if self.run_ids:
            parts.append("--runs " + ",".join(map(str, self.run_ids)))
        parts += [f"--where {w}" for w in self.where]
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
