"""The run store: SQLite through SQLModel; see docs/store.md and docs/contracts.md.

Public API: open_store, Store, StoreError, RunNotFound, RunWriter, config_hash,
plus the modules `store.histograms`, `store.queries`, `store.schema`, and the
query shapes of single consumers: `store.dashboard` (the TUI), `store.export_rows`
(exports), `store.fidelity` (the fidelity suite). Every read and write of the
database goes through these (docs/store.md, "One door").

Names are loaded on first use (PEP 562): `from store import open_store` must
not import SQLModel, numpy or hdrh, so a CLI command that only lists runs
starts in a fraction of the time the whole store API takes to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from store.errors import RunNotFound, StoreError

if TYPE_CHECKING:
    from store import histograms, queries, schema
    from store.db import Store, open_store
    from store.writer import RunWriter, config_hash

# name -> module that defines it ("" = the name is the submodule itself)
_LAZY = {"histograms": "", "queries": "", "schema": "", "Store": "store.db",
         "open_store": "store.db", "RunWriter": "store.writer", "config_hash": "store.writer"}


def __getattr__(name: str):
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'store' has no attribute {name!r}")
    if where == "":
        value = importlib.import_module(f"store.{name}")
    else:
        value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


__all__ = ["RunNotFound", "RunWriter", "Store", "StoreError", "config_hash", "histograms",
           "open_store", "queries", "schema"]
