"""What the dashboard (sagetui/tui) reads: its query shapes, kept inside the store.

Why a module of its own: the TUI polls a few narrow things (the Runs table,
one run's new samples, which runs are active) many times a second, each in
its own short read session so it never holds a lock a run writer waits for.
These shapes belong to the dashboard alone; `store.queries` serves the CLI.
Every function takes an open Store and returns rows or plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import func
from sqlmodel import Session, col, select

from store.db import Store
from store.errors import RunNotFound
from store.schema import TERMINAL_STATUSES, Backend, Event, Experiment, Run, Sample, Summary


class RunListRow(NamedTuple):
    """One run as the Runs table needs it, read in one pass (config fields via JSON1)."""

    id: int
    name: str | None
    experiment: str | None
    suite: str | None
    mode: str | None
    config_json: str
    policy: Any
    baseline: Any
    rate: Any
    backends: int | None
    target_rate_rps: float | None
    throughput_rps: float | None
    chat_ttft_p99_ms: Any
    slo_attainment: float | None
    status: str | None
    started: str | None
    created: str | None
    tags: str | None


def run_list(store: Store, limit: int | None = None) -> list[RunListRow]:
    """Non-deleted runs, newest first, with the Runs table's columns.

    Config-derived columns come from SQLite's JSON1, so 10,000 runs load
    without parsing 10,000 JSON documents in Python.
    """
    chat = select(
        col(Summary.run_id).label("rid"),
        func.json_extract(Summary.metrics_json, "$.ttft.p99").label("ttft_p99"),
    ).where(Summary.request_class == "chat").subquery()
    overall = select(
        col(Summary.run_id).label("rid"),
        Summary.throughput_rps,
        Summary.slo_attainment,
        Summary.target_rate_rps,
    ).where(Summary.request_class == "all").subquery()
    nback = select(col(Backend.run_id).label("rid"), func.count().label("n")).group_by(
        col(Backend.run_id)).subquery()
    cfg = Run.config_json
    # In RunListRow's order; a list, since select's typed overloads stop at four columns.
    columns: list[Any] = [
        Run.id, Run.name, Experiment.name, Experiment.suite, Run.mode, cfg,
        func.json_extract(cfg, "$.control_plane.policy"),
        func.coalesce(func.json_extract(cfg, "$.control_plane.baseline"),
                      func.json_extract(cfg, "$.run.baseline")),
        func.json_extract(cfg, "$.workload.rate"),
        nback.c.n, overall.c.target_rate_rps, overall.c.throughput_rps,
        chat.c.ttft_p99, overall.c.slo_attainment, Run.status, Run.started, Run.created,
        Run.tags,
    ]
    stmt = (
        select(*columns)
        .select_from(Run)
        .join(Experiment, col(Experiment.id) == Run.experiment_id, isouter=True)
        .join(chat, chat.c.rid == Run.id, isouter=True)
        .join(overall, overall.c.rid == Run.id, isouter=True)
        .join(nback, nback.c.rid == Run.id, isouter=True)
        .where(Run.deleted == False)  # noqa: E712 (SQL expression)
        .order_by(col(Run.id).desc())
        .limit(limit)
    )
    with Session(store.engine) as session:
        return [RunListRow(*row) for row in session.exec(stmt)]


def runs_of_pid(store: Store, pid: int) -> list[int]:
    """Runs written by a given process id (how a launched child is found)."""
    stmt = select(Run.id).where(Run.pid == pid).order_by(col(Run.id))
    with Session(store.engine) as session:
        return [rid for rid in session.exec(stmt).all() if rid is not None]


@dataclass
class LiveState:
    """What the live monitor shows at one poll."""

    run: Run
    new_samples: list[Sample]
    backends: list[Backend]
    events: list[Event]
    # The run's experiment so far (runs are created one at a time, so the
    # store does not know how many are planned): runs created, finished, and
    # this run's position among them.
    sweep_runs: int = 0
    sweep_done: int = 0
    sweep_index: int = 0


def live_state(store: Store, run_id: int, after_sample_id: int = 0,
               after_event_id: int = 0) -> LiveState:
    """The run row plus samples/events newer than the ids already shown.

    Raises RunNotFound when the run is not in the store.
    """
    with Session(store.engine) as s:
        run = s.get(Run, run_id)
        if run is None:
            raise RunNotFound(f"run {run_id} is not in {store.path}")
        samples = list(s.exec(select(Sample).where(Sample.run_id == run_id,
                                                   col(Sample.id) > after_sample_id)
                              .order_by(col(Sample.id))))
        events = list(s.exec(select(Event).where(Event.run_id == run_id,
                                                 col(Event.id) > after_event_id)
                             .order_by(col(Event.id))))
        backends = list(s.exec(select(Backend).where(Backend.run_id == run_id)))
        state = LiveState(run=run, new_samples=samples, backends=backends, events=events)
        if run.experiment_id is not None:
            same = (Run.experiment_id == run.experiment_id, Run.deleted == False)  # noqa: E712
            counts = s.exec(select(Run.status, func.count()).where(*same)
                            .group_by(Run.status)).all()
            state.sweep_runs = sum(n for _, n in counts)
            state.sweep_done = sum(n for st, n in counts if st in TERMINAL_STATUSES)
            state.sweep_index = s.exec(select(func.count()).where(
                *same, col(Run.id) <= run.id)).one()
        return state


def running_runs(store: Store, experiment_id: int | None = None) -> list[tuple[int, str]]:
    """Running runs, newest first (of one experiment when given: a sweep's next point)."""
    stmt = select(Run.id, Run.name).where(Run.status == "running")
    if experiment_id is not None:
        stmt = stmt.where(Run.experiment_id == experiment_id)
    stmt = stmt.order_by(col(Run.id).desc())
    with Session(store.engine) as session:
        return [(rid, name) for rid, name in session.exec(stmt).all() if rid is not None]


def change_marker(store: Store) -> tuple:
    """Cheap summary that changes when runs are added, removed or change status.

    The Runs screen polls this and reloads the full list only when it changed.
    """
    stmt = select(func.count(col(Run.id)), func.max(Run.id)).where(
        Run.deleted == False)  # noqa: E712 (SQL expression)
    active = select(Run.id, Run.status).where(col(Run.status).in_(("created", "running")))
    with Session(store.engine) as s:
        return (tuple(s.exec(stmt).one()), tuple(s.exec(active).all()))


def run_process(store: Store, run_id: int) -> tuple[str, int | None, str]:
    """(status, pid, host) of a run: what cancelling it needs; RunNotFound if absent."""
    stmt = select(Run.status, Run.pid, Run.host).where(Run.id == run_id)
    with Session(store.engine) as s:
        row = s.exec(stmt).first()
    if row is None:
        raise RunNotFound(f"run {run_id} is not in {store.path}")
    status, pid, host = row
    return status, pid, host
