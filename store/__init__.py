"""The run store: SQLite through SQLModel; see docs/store.md and docs/contracts.md.

Public API: open_store, Store, StoreError, RunNotFound, RunWriter, config_hash,
plus the modules `store.histograms`, `store.queries`, `store.schema`.
"""

from store import histograms, queries, schema
from store.db import Store, open_store
from store.errors import RunNotFound, StoreError
from store.writer import RunWriter, config_hash

__all__ = ["RunNotFound", "RunWriter", "Store", "StoreError", "config_hash", "histograms",
           "open_store", "queries", "schema"]
