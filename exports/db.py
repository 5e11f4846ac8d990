"""Open a run store read-only for exporting.

Why a wrapper: exports never write (store.open_store with readonly=True takes
no lock, runs no migration) and report a bad file as an ExportError, so the
CLI prints one line naming the file and exits non-zero.
"""

from __future__ import annotations

from pathlib import Path

from exports.errors import ExportError
from store import Store, StoreError, open_store


def open_readonly(path: str | Path) -> Store:
    """The store at `path`, read-only; ExportError naming the file when it is not one."""
    try:
        return open_store(path, readonly=True)
    except StoreError as exc:
        raise ExportError(f"run store {exc} (pass --db or set SAGETUI_DB)") from exc
