"""The table registry: name -> (description, builder). Each module builds one table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exports.context import ExportContext
from exports.table import Table
from exports.tables import (
    agents,
    effectiveness,
    fidelity,
    goodput_capacity,
    heterogeneous,
    pipelines,
    placement,
    policies,
    reproducibility,
    saturation,
    scalability,
)


@dataclass(frozen=True)
class TableSpec:
    name: str
    description: str
    build: Callable[[ExportContext], Table]


TABLES: dict[str, TableSpec] = {
    m.NAME: TableSpec(m.NAME, m.DESCRIPTION, m.build)
    for m in (effectiveness, policies, scalability, saturation, goodput_capacity, heterogeneous,
              placement, agents, fidelity, reproducibility, pipelines)
}
