"""What exports read: whole rows of the selected runs, as the schema's classes.

Why a module of its own: a paper table needs every column of a run, its
experiment, hardware, backends and summaries at once, for hundreds of runs;
the CLI's `store.queries` returns flattened dicts for one run at a time.
Exports turn these rows into their typed views (exports/model.py) and never
see a session or SQL. Every function takes an open Store.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from store.db import Store
from store.schema import Backend, Experiment, Hardware, Run, Sample, Summary

CHUNK = 500  # ids per IN (...): well under SQLite's bound-parameter limit


def _chunks(ids: list[int], size: int = CHUNK) -> Iterator[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def live_run_statuses(store: Store, run_ids: list[int]) -> dict[int, str]:
    """{id: status} of the non-deleted runs among `run_ids` (missing ids are absent)."""
    with Session(store.engine) as s:
        stmt = select(Run).where(col(Run.id).in_(run_ids), Run.deleted == False)  # noqa: E712
        return {r.id: r.status for r in s.exec(stmt) if r.id is not None}


def experiment_ids(store: Store, name_or_id: str) -> list[int]:
    """Ids of the experiments named `name_or_id`, or with that id when it is a number."""
    wanted_id = int(name_or_id) if name_or_id.isdigit() else -1
    with Session(store.engine) as s:
        q = select(Experiment.id).where((Experiment.name == name_or_id)
                                        | (Experiment.id == wanted_id))
        return [i for i in s.exec(q) if i is not None]


@dataclass
class RunRows:
    """The rows behind a set of runs; `runs` ordered by id, the rest keyed by id."""

    runs: list[tuple[Run, Experiment | None]]
    hardware: dict[int, Hardware]
    backends: dict[int, list[Backend]] = field(default_factory=dict)  # in id order
    summaries: dict[int, list[Summary]] = field(default_factory=dict)  # one per class


def run_rows(store: Store, run_ids: list[int]) -> RunRows:
    """Every row the exports need for `run_ids`, read in one session."""
    runs: list[tuple[Run, Experiment | None]] = []
    backends: dict[int, list[Backend]] = defaultdict(list)
    summaries: dict[int, list[Summary]] = defaultdict(list)
    with Session(store.engine) as s:
        for chunk in _chunks(run_ids):
            q = select(Run, Experiment).join(Experiment, isouter=True).where(
                col(Run.id).in_(chunk))
            runs += [(r, e) for r, e in s.exec(q)]
        runs.sort(key=lambda pair: pair[0].id or 0)
        hardware = {h.id: h for h in s.exec(select(Hardware)).all() if h.id is not None}
        for chunk in _chunks(run_ids):
            for b in s.exec(select(Backend).where(col(Backend.run_id).in_(chunk))
                            .order_by(col(Backend.id))):
                backends[b.run_id].append(b)
            for m in s.exec(select(Summary).where(col(Summary.run_id).in_(chunk))):
                summaries[m.run_id].append(m)
    return RunRows(runs=runs, hardware=hardware, backends=backends, summaries=summaries)


def samples_of(store: Store, run_ids: list[int]) -> list[Sample]:
    """Per-second samples of these runs, ordered by run id, then time."""
    out: list[Sample] = []
    with Session(store.engine) as s:
        for chunk in _chunks(run_ids):
            q = select(Sample).where(col(Sample.run_id).in_(chunk)).order_by(
                col(Sample.run_id), col(Sample.t_s))
            out += s.exec(q)
    return out
