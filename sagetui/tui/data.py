"""Read side of the dashboard: plain functions over the store, no textual.

Why separate: every screen calls these from a worker thread, and tests can
check them without a terminal. Each call opens its own short read-only
session, so the dashboard never holds a lock a run writer is waiting for.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from store import RunNotFound, Store, StoreError, open_store
from store.schema import (
    TERMINAL_STATUSES,
    Backend,
    Event,
    Experiment,
    Run,
    Sample,
    Summary,
)


class StoreUnavailable(Exception):
    """The store cannot be read; the message names the file and the cause."""


class StoreReader:
    """Read-only access to one store file, shared by all worker threads.

    Opened lazily: once read-write when the file is writable (schema upgrade,
    interrupted-run recovery), then `store.open_store(readonly=True)` for every
    read. Corrupt, foreign or newer files are refused without being touched.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._store: Store | None = None
        self._lock = threading.Lock()

    def exists(self) -> bool:
        return self.path.exists()

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                if not self.path.exists():
                    raise StoreUnavailable(f"{self.path}: no store here yet")
                try:
                    if os.access(self.path, os.W_OK):
                        # Once, read-write: upgrades an older schema and marks runs whose
                        # writer died as interrupted (what opening the store means).
                        open_store(self.path).close()
                    self._store = open_store(self.path, readonly=True)
                except StoreError as exc:
                    raise StoreUnavailable(str(exc)) from exc
            return self._store

    def run_query(self, fn):
        """Run `fn(session)` and turn SQLite trouble into StoreUnavailable."""
        store = self.store
        try:
            with Session(store.engine) as session:
                return fn(session)
        except Exception as exc:  # sqlite3/SQLAlchemy errors: locked, corrupt, not a store
            if isinstance(exc, LookupError):
                raise
            raise StoreUnavailable(f"{self.path}: cannot read the store ({_cause(exc)})") from exc

    def call(self, fn, *args, **kwargs):
        """Run a `store.queries` function on this store, errors as StoreUnavailable."""
        store = self.store
        try:
            return fn(store, *args, **kwargs)
        except RunNotFound as exc:
            raise LookupError(str(exc)) from exc
        except StoreError as exc:
            raise StoreUnavailable(str(exc)) from exc
        except Exception as exc:
            if isinstance(exc, LookupError):
                raise
            raise StoreUnavailable(f"{self.path}: cannot read the store ({_cause(exc)})") from exc

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def _cause(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------
# Runs list


@dataclass
class RunRow:
    """One line of the Runs table; the resolved config is parsed only if a filter needs it."""

    id: int
    name: str
    experiment: str
    mode: str
    policy: str
    baseline: str
    backends: int
    offered_rps: float | None
    throughput_rps: float | None
    chat_ttft_p99_ms: float | None
    slo_attainment: float | None
    status: str
    started: str
    tags: tuple[str, ...]
    config_json: str = field(default="{}", repr=False)

    @functools.cached_property
    def config(self) -> dict[str, Any]:
        return parse_json(self.config_json, dict)


def config_get(config: dict[str, Any], dotted: str) -> Any:
    """Value at a dotted path of the resolved config (list items by index), or None."""
    node: Any = config
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def list_runs(reader: StoreReader, limit: int | None = None) -> list[RunRow]:
    """Non-deleted runs with the columns of the Runs table, newest first.

    Config-derived columns come from SQLite's JSON1, so 10,000 runs load
    without parsing 10,000 JSON documents in Python.
    """
    chat = select(
        Summary.run_id.label("rid"),
        func.json_extract(Summary.metrics_json, "$.ttft.p99").label("ttft_p99"),
    ).where(Summary.request_class == "chat").subquery()
    overall = select(
        Summary.run_id.label("rid"),
        Summary.throughput_rps,
        Summary.slo_attainment,
        Summary.target_rate_rps,
    ).where(Summary.request_class == "all").subquery()
    nback = select(Backend.run_id.label("rid"), func.count().label("n")).group_by(
        Backend.run_id).subquery()
    cfg = Run.config_json
    stmt = (
        select(
            Run.id, Run.name, Experiment.name, Experiment.suite, Run.mode, cfg,
            func.json_extract(cfg, "$.control_plane.policy"),
            func.coalesce(func.json_extract(cfg, "$.control_plane.baseline"),
                          func.json_extract(cfg, "$.run.baseline")),
            func.json_extract(cfg, "$.workload.rate"),
            nback.c.n, overall.c.target_rate_rps, overall.c.throughput_rps,
            chat.c.ttft_p99, overall.c.slo_attainment, Run.status, Run.started, Run.created,
            Run.tags,
        )
        .select_from(Run)
        .join(Experiment, Experiment.id == Run.experiment_id, isouter=True)
        .join(chat, chat.c.rid == Run.id, isouter=True)
        .join(overall, overall.c.rid == Run.id, isouter=True)
        .join(nback, nback.c.rid == Run.id, isouter=True)
        .where(Run.deleted == False)  # noqa: E712 (SQL expression)
        .order_by(Run.id.desc())
        .limit(limit)
    )

    def query(session: Session) -> list[RunRow]:
        return [
            RunRow(id=rid, name=name or "", experiment=suite or exp or "", mode=mode or "",
                   policy=_text(policy), baseline=_text(baseline), backends=nb or 0,
                   offered_rps=target if target is not None else _float(rate),
                   throughput_rps=thr, chat_ttft_p99_ms=p99, slo_attainment=slo,
                   status=status or "", started=started or created or "",
                   tags=tuple(t for t in (tags or "").split(",") if t), config_json=cfg_json)
            for (rid, name, exp, suite, mode, cfg_json, policy, baseline, rate, nb, target, thr,
                 p99, slo, status, started, created, tags) in session.exec(stmt)
        ]

    return reader.run_query(query)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def parse_json(text: str | None, kind: type) -> Any:
    try:
        value = json.loads(text or "")
    except ValueError:
        return kind()
    return value if isinstance(value, kind) else kind()


def statuses(reader: StoreReader, run_ids: list[int]) -> dict[int, str]:
    """Current status of some runs (cheap; used to follow launched runs)."""
    if not run_ids:
        return {}
    stmt = select(Run.id, Run.status).where(Run.id.in_(run_ids))
    return reader.run_query(lambda s: dict(s.exec(stmt).all()))


def runs_of_pid(reader: StoreReader, pid: int) -> list[int]:
    """Runs written by a given process id (how a launched child is found)."""
    stmt = select(Run.id).where(Run.pid == pid).order_by(Run.id)
    return reader.run_query(lambda s: list(s.exec(stmt).all()))


# ---------------------------------------------------------------------------
# Live monitor


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


def live_state(reader: StoreReader, run_id: int, after_sample_id: int = 0,
               after_event_id: int = 0) -> LiveState:
    """The run row plus samples/events newer than the ids already shown."""

    def query(s: Session) -> LiveState:
        run = s.get(Run, run_id)
        if run is None:
            raise LookupError(f"run {run_id} is not in {reader.path}")
        samples = list(s.exec(select(Sample).where(Sample.run_id == run_id,
                                                   Sample.id > after_sample_id)
                              .order_by(Sample.id)))
        events = list(s.exec(select(Event).where(Event.run_id == run_id,
                                                 Event.id > after_event_id)
                             .order_by(Event.id)))
        backends = list(s.exec(select(Backend).where(Backend.run_id == run_id)))
        state = LiveState(run=run, new_samples=samples, backends=backends, events=events)
        if run.experiment_id is not None:
            same = (Run.experiment_id == run.experiment_id, Run.deleted == False)  # noqa: E712
            counts = s.exec(select(Run.status, func.count()).where(*same)
                            .group_by(Run.status)).all()
            state.sweep_runs = sum(n for _, n in counts)
            state.sweep_done = sum(n for st, n in counts if st in TERMINAL_STATUSES)
            state.sweep_index = s.exec(select(func.count()).where(
                *same, Run.id <= run.id)).one()
        return state

    return reader.run_query(query)


def running_runs(reader: StoreReader, experiment_id: int | None = None) -> list[tuple[int, str]]:
    """Running runs, newest first (of one experiment when given: a sweep's next point)."""
    stmt = select(Run.id, Run.name).where(Run.status == "running")
    if experiment_id is not None:
        stmt = stmt.where(Run.experiment_id == experiment_id)
    stmt = stmt.order_by(Run.id.desc())
    return reader.run_query(lambda s: list(s.exec(stmt).all()))


def store_fingerprint(reader: StoreReader) -> tuple:
    """Cheap summary that changes when runs are added, removed or change status.

    The Runs screen polls this and reloads the full list only when it changed.
    """
    stmt = select(func.count(Run.id), func.max(Run.id)).where(Run.deleted == False)  # noqa: E712
    active = select(Run.id, Run.status).where(Run.status.in_(("created", "running")))

    def query(s: Session) -> tuple:
        return (tuple(s.exec(stmt).one()), tuple(s.exec(active).all()))

    return reader.run_query(query)


def run_process(reader: StoreReader, run_id: int) -> tuple[str, int | None, str]:
    """(status, pid, host) of a run: what cancelling it needs."""
    stmt = select(Run.status, Run.pid, Run.host).where(Run.id == run_id)

    def query(s: Session) -> tuple[str, int | None, str]:
        row = s.exec(stmt).first()
        if row is None:
            raise LookupError(f"run {run_id} is not in {reader.path}")
        return tuple(row)

    return reader.run_query(query)
