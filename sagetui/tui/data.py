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

from store import RunNotFound, Store, StoreError, dashboard, open_store
from store.dashboard import LiveState  # noqa: F401  (the live screen's poll result)


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
    """Non-deleted runs with the columns of the Runs table, newest first."""
    return [
        RunRow(id=r.id, name=r.name or "", experiment=r.suite or r.experiment or "",
               mode=r.mode or "", policy=_text(r.policy), baseline=_text(r.baseline),
               backends=r.backends or 0,
               offered_rps=r.target_rate_rps if r.target_rate_rps is not None else _float(r.rate),
               throughput_rps=r.throughput_rps, chat_ttft_p99_ms=r.chat_ttft_p99_ms,
               slo_attainment=r.slo_attainment, status=r.status or "",
               started=r.started or r.created or "",
               tags=tuple(t for t in (r.tags or "").split(",") if t), config_json=r.config_json)
        for r in reader.call(dashboard.run_list, limit)
    ]


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


def runs_of_pid(reader: StoreReader, pid: int) -> list[int]:
    """Runs written by a given process id (how a launched child is found)."""
    return reader.call(dashboard.runs_of_pid, pid)


# ---------------------------------------------------------------------------
# Live monitor


def live_state(reader: StoreReader, run_id: int, after_sample_id: int = 0,
               after_event_id: int = 0) -> LiveState:
    """The run row plus samples/events newer than the ids already shown."""
    return reader.call(dashboard.live_state, run_id, after_sample_id, after_event_id)


def running_runs(reader: StoreReader, experiment_id: int | None = None) -> list[tuple[int, str]]:
    """Running runs, newest first (of one experiment when given: a sweep's next point)."""
    return reader.call(dashboard.running_runs, experiment_id)


def store_fingerprint(reader: StoreReader) -> tuple:
    """Cheap summary that changes when runs are added, removed or change status.

    The Runs screen polls this and reloads the full list only when it changed.
    """
    return reader.call(dashboard.change_marker)


def run_process(reader: StoreReader, run_id: int) -> tuple[str, int | None, str]:
    """(status, pid, host) of a run: what cancelling it needs."""
    return reader.call(dashboard.run_process, run_id)
