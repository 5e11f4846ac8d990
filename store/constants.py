"""Store facts that light code needs without the table definitions.

Why a module of its own: store/schema.py imports SQLModel (and with it
SQLAlchemy and pydantic, ~0.4 s), while opening a store, listing runs and the
CLI's start-up only need the schema version and the status names.
"""

from __future__ import annotations

# Bump together with a new entry in store/migrations.py whenever a table changes.
SCHEMA_VERSION = 5

# Request classes and the pseudo-class summarising all of them.
REQUEST_CLASSES = ("chat", "completion", "embedding", "pipeline")
ALL_CLASSES = "all"

# Run lifecycle: created -> running -> one terminal state.
RUN_STATUSES = ("created", "running", "completed", "failed", "cancelled", "interrupted")
TERMINAL_STATUSES = ("completed", "failed", "cancelled", "interrupted")
