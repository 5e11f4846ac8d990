"""Opening the run store: validation, pragmas, migrations, interrupt recovery.

Why validate read-only first: a corrupt file, a non-SQLite file or a database
from a newer sagetui must be refused with the file byte-for-byte untouched, so
nothing that could write (WAL switch, migrations) runs before the checks pass.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from store.constants import SCHEMA_VERSION
from store.errors import StoreError
from store.migrations import check_supported, current_version, migrate

BUSY_TIMEOUT_S = 30.0
STALE_HEARTBEAT_S = 30.0


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A raw sqlite3 connection with the store's pragmas, in autocommit mode.

    Writers open transactions explicitly (BEGIN IMMEDIATE), so a read never
    upgrades to a write lock mid-transaction (the SQLITE_BUSY that a busy
    timeout cannot fix).
    """
    if readonly:
        uri = f"file:{quote(str(path))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
    else:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return conn


def _validate(path: Path) -> int | None:
    """Refuse corrupt, foreign or newer files without writing a byte; return the version."""
    if path.is_dir():
        raise StoreError(f"{path}: is a directory, not a run store")
    if not path.exists() or path.stat().st_size == 0:
        return None
    if not os.access(path, os.R_OK):
        raise StoreError(f"{path}: cannot read: permission denied")
    # The header is checked by SQLite itself (SQLITE_NOTADB), never by opening the
    # file here: closing any descriptor on the file drops every POSIX lock this
    # process holds on it, so a process that already had the store open (the TUI,
    # a runner) would lose its WAL lock, and another process's last close would
    # then delete the WAL under it ("database disk image is malformed"; SQLite's
    # "How To Corrupt", section 2.2; tests/store/test_store_reliability.py).
    try:
        conn = connect(path, readonly=True)
        try:
            # Reading the schema and meta touches the header and the first pages;
            # a full quick_check would read the whole file (seconds for 1M requests),
            # so deeper damage surfaces as sqlite3.DatabaseError on the query that
            # meets it (the CLI reports that naming the file too).
            version = current_version(conn, str(path))
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB":
            raise StoreError(f"{path}: not an SQLite database (bad header); "
                             "file left untouched") from exc
        raise StoreError(f"{path}: corrupt SQLite database ({exc}); file left untouched") from exc
    check_supported(version, str(path))
    return version


def _writer_alive(pid: int, started: str | None) -> bool:
    """Is the process that started the run still there? A zombie is dead; a live pid
    whose process began after the run started is a reused pid, so dead too."""
    import psutil  # only when a run is still marked running: not on every open

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = proc.create_time()
    except psutil.NoSuchProcess:
        return False
    if started:
        from datetime import datetime

        return created <= datetime.fromisoformat(started).timestamp() + 1.0
    return True


def recover_interrupted(conn: sqlite3.Connection, now: float | None = None) -> list[int]:
    """Mark `running` runs whose writer is gone as `interrupted`; returns their ids.

    Gone = on this host, the writer's pid no longer exists (or is a zombie, or
    was reused by a newer process); on another host, where no pid can be
    checked, the heartbeat is older than STALE_HEARTBEAT_S. A live writer on
    this host is never interrupted, even during a long phase without samples
    (engine start-up, a big simulation). Everything the run wrote is kept.
    """
    now = time.time() if now is None else now
    host = socket.gethostname()
    dead: list[tuple[int, str]] = []
    rows = conn.execute("SELECT id, pid, host, heartbeat, started FROM run "
                        "WHERE status = 'running'")
    for run_id, pid, run_host, heartbeat, started in rows.fetchall():
        if run_host == host and pid:
            if pid != os.getpid() and not _writer_alive(pid, started):
                dead.append((run_id, f"writer process {pid} on {host} is gone"))
        elif heartbeat is None or now - heartbeat > STALE_HEARTBEAT_S:
            age = "never" if heartbeat is None else f"{now - heartbeat:.0f} s ago"
            dead.append((run_id, f"no heartbeat from {run_host or '?'}:{pid} ({age})"))
    if dead:
        ended = utc_now()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for run_id, reason in dead:
                conn.execute("UPDATE run SET status='interrupted', status_reason=?, ended=? "
                             "WHERE id=? AND status='running'", (reason, ended, run_id))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return [d[0] for d in dead]


def utc_now() -> str:
    """Wall-clock moments as UTC ISO-8601 with milliseconds (sorts as text)."""
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds")


class _Pool:
    """Idle raw connections kept for reuse, at most `keep` of them.

    Why not SQLAlchemy's QueuePool: importing SQLAlchemy costs ~0.2 s, more than
    a whole `sagetui runs list` may take; raw sqlite3 connections need nothing
    of it. A connection given back inside a transaction is rolled back first.
    """

    def __init__(self, make, keep: int = 4):
        self._make, self._keep = make, keep
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._make()

    def put(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.rollback()
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class Store:
    """An opened run store. Read with store.queries, write with create_run()."""

    def __init__(self, path: Path, readonly: bool):
        self.path = path
        self.readonly = readonly
        self._pool = _Pool(lambda: connect(path, readonly=readonly))

    @functools.cached_property
    def engine(self):
        """SQLAlchemy engine for callers who want SQLModel sessions, made on first use
        (SQLAlchemy is not imported by the commands that never ask for it)."""
        from sqlalchemy import create_engine
        from sqlalchemy.pool import QueuePool

        return create_engine("sqlite://", creator=lambda: connect(self.path,
                                                                  readonly=self.readonly),
                             poolclass=QueuePool, pool_size=4, max_overflow=8)

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A pooled raw connection (autocommit; use `transaction` to write)."""
        conn = self._pool.get()
        try:
            yield conn
        finally:
            self._pool.put(conn)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A pooled connection inside BEGIN IMMEDIATE .. COMMIT (ROLLBACK on error)."""
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        with self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        self._pool.close()
        if "engine" in self.__dict__:
            self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Writing (store/writer.py holds the logic; these are the entry points).
    def create_experiment(self, name: str, kind: str = "sweep", suite: str | None = None,
                          spec: str = "") -> int:
        from store.writer import create_experiment

        return create_experiment(self, name, kind=kind, suite=suite, spec=spec)

    def create_run(self, *, experiment_id: int | None, name: str, mode: str, config: dict,
                   seed: int, repetition: int, tags=(), duration_s: float = 0,
                   warmup_s: float = 0, requests_planned: int = 0,
                   rerun_of: int | None = None):
        """Insert a run in state `created`; returns its RunWriter (store/writer.py)."""
        from store.writer import create_run

        return create_run(self, experiment_id=experiment_id, name=name, mode=mode,
                          config=config, seed=seed, repetition=repetition, tags=tags,
                          duration_s=duration_s, warmup_s=warmup_s,
                          requests_planned=requests_planned, rerun_of=rerun_of)


def _created_by() -> str:
    """`sagetui X.Y.Z` for meta.created_by (package metadata is read only when a store is made
    or upgraded: importlib.metadata is a noticeable part of a quick command's start)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return f"sagetui {dist_version('sagetui')}"
    except PackageNotFoundError:
        return "sagetui"


def open_store(path: str | os.PathLike, *, readonly: bool = False) -> Store:
    """Open (creating if needed) the run store at `path`.

    Refuses corrupt/foreign/newer files (StoreError naming the file, file
    untouched), upgrades older schemas in one transaction, and marks runs
    whose writer died as `interrupted`. Read-only opens do neither write.
    """
    path = Path(path)
    version = _validate(path)
    if readonly:
        if version is None:
            raise StoreError(f"{path}: no run store here (nothing to read)")
        if version < SCHEMA_VERSION:
            raise StoreError(f"{path}: schema version {version} needs an upgrade; "
                             "open it once read-write (e.g. `sagetui runs list`)")
        return Store(path, readonly=True)
    if not path.parent.exists():
        raise StoreError(f"{path}: folder {path.parent} does not exist")
    try:
        conn = connect(path)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open: {exc}") from exc
    try:
        if version != SCHEMA_VERSION:  # only new or older files take the write lock here
            migrate(conn, str(path), created_by=_created_by())
        recover_interrupted(conn)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: {exc}") from exc
    finally:
        conn.close()
    return Store(path, readonly=False)
