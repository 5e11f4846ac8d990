"""Open a run store read-only for exporting.

Why here and not store.open_store: exports must never write (no migrations, no
interrupt recovery) and must fail with a message naming the file when it is not
a sagetui store.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import Engine

from exports.errors import ExportError

_REQUIRED_TABLES = ("experiment", "run", "summary", "backend", "hardware")


def open_readonly(path: str | Path) -> Engine:
    """An SQLAlchemy engine on the store at `path`, opened with SQLite's read-only mode."""
    p = Path(path)
    if not p.is_file():
        raise ExportError(f"run store {p}: no such file (pass --db or set SAGETUI_DB)")
    engine = create_engine(f"sqlite:///file:{p.resolve()}?mode=ro&uri=true")
    try:
        tables = set(inspect(engine).get_table_names())
    except Exception as exc:  # sqlite raises DatabaseError for a non-database file
        raise ExportError(f"run store {p}: not an SQLite database ({exc})") from exc
    missing = [t for t in _REQUIRED_TABLES if t not in tables]
    if missing:
        raise ExportError(f"run store {p}: not a sagetui store (missing tables {missing})")
    return engine
