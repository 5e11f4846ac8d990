"""Schema versions: `meta.schema_version` plus an ordered list of migrations.

Why not alembic: the schema is one module and SQLite DDL is transactional, so
a short ordered list of Python functions run inside ONE `BEGIN IMMEDIATE`
transaction upgrades atomically (all or nothing), needs no extra tool or
migration directory at run time, and is testable in milliseconds. See
docs/store.md ("Migrations").
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from store.constants import SCHEMA_VERSION
from store.errors import StoreError


def current_version(conn: sqlite3.Connection, path: str) -> int | None:
    """The database's schema version; None for an empty file (no tables yet).

    Version 0 is a pre-versioning sagetui database: tables but no `meta` row.
    """
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return None
    if "meta" not in tables:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        return 0
    try:
        return int(row[0])
    except ValueError:
        raise StoreError(f"{path}: meta.schema_version is not an integer: {row[0]!r}") from None


def _sql_literal(value) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL literal for {value!r}")


def _dialect():
    """SQLite's SQLAlchemy dialect, imported only when a schema is created or upgraded:
    opening an up-to-date store (every CLI command) must not pay for SQLAlchemy."""
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    return sqlite_dialect.dialect()


def _column_ddl(col, dialect) -> str:
    ddl = f'"{col.name}" {col.type.compile(dialect)}'
    if not col.nullable:
        default = col.default.arg if col.default is not None else None
        if default is None or callable(default):
            raise StoreError(f"migration cannot add NOT NULL column {col.table.name}.{col.name} "
                             "without a literal default")
        ddl += f" NOT NULL DEFAULT {_sql_literal(default)}"
    return ddl


def create_missing(conn: sqlite3.Connection) -> None:
    """Create every table, column and index of store.schema that is missing.

    Additive only (SQLite can add columns, not change them); a change that is
    not additive needs its own migration function.
    """
    from sqlalchemy.schema import CreateIndex, CreateTable

    from store.schema import TABLES

    dialect = _dialect()
    for table in TABLES:
        conn.execute(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)))
        have = {r[1] for r in conn.execute(f'PRAGMA table_info("{table.name}")')}
        for col in table.columns:
            if col.name not in have:
                conn.execute(f'ALTER TABLE "{table.name}" ADD COLUMN {_column_ddl(col, dialect)}')
        for index in table.indexes:
            conn.execute(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)))


def _v1(conn: sqlite3.Connection) -> None:
    """v0 (draft tables, no meta) -> v1: add what the draft lacked, mirror tags to run_tag."""
    create_missing(conn)
    rows = conn.execute("SELECT id, tags FROM run WHERE tags != ''").fetchall()
    for run_id, tags in rows:
        for tag in filter(None, (t.strip() for t in tags.split(","))):
            conn.execute("INSERT OR IGNORE INTO run_tag(run_id, tag) VALUES (?, ?)", (run_id, tag))


def _v2(conn: sqlite3.Connection) -> None:
    """v1 -> v2: request.parent_id (pipeline stage -> its pipeline) and request.queue_wait_ms."""
    create_missing(conn)


def _v3(conn: sqlite3.Connection) -> None:
    """v2 -> v3: request.slo_tpot_ms and request.slo_tier (old rows: NULL and '')."""
    create_missing(conn)


def _v4(conn: sqlite3.Connection) -> None:
    """v3 -> v4: run.rerun_of (NULL for old runs) and run_listing, rendered for every run
    that has summaries so `runs list --format json|csv` splices text for old runs too."""
    from store.listing import render_missing

    create_missing(conn)
    render_missing(conn)


def _v5(conn: sqlite3.Connection) -> None:
    """v4 -> v5: request.pipeline and request.stage (old rows: '')."""
    create_missing(conn)


# (version reached, what it does, function). Append only; never edit a shipped entry.
MIGRATIONS: list[tuple[int, str, Callable[[sqlite3.Connection], None]]] = [
    (1, "versioned schema: meta table, run_tag mirror, every v1 column", _v1),
    (2, "request.parent_id and request.queue_wait_ms", _v2),
    (3, "request.slo_tpot_ms and request.slo_tier", _v3),
    (4, "run.rerun_of and run_listing (pre-rendered summaries for runs list)", _v4),
    (5, "request.pipeline and request.stage", _v5),
]
assert [m[0] for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


def check_supported(version: int | None, path: str) -> None:
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(f"{path}: schema version {version} is newer than this sagetui supports "
                         f"({SCHEMA_VERSION}); upgrade sagetui to open it (file left untouched)")


def migrate(conn: sqlite3.Connection, path: str, created_by: str = "") -> int:
    """Bring the database to SCHEMA_VERSION in one transaction; returns the old version (-1 = new).

    `conn` must be in autocommit mode (isolation_level=None). Concurrent
    openers serialise on BEGIN IMMEDIATE and re-read the version inside it.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = current_version(conn, path)
        check_supported(version, path)
        if version is None:
            create_missing(conn)
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('created_by', ?)",
                         (created_by,))
        else:
            for target, _what, fn in MIGRATIONS:
                if target > version:
                    fn(conn)
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                     (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return -1 if version is None else version
