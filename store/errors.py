"""The one exception the store raises for bad files and bad input.

Why one type: the CLI turns it into one line on stderr and exit code 2, so
every message must already name the file or the field at fault.
"""

from __future__ import annotations


class StoreError(Exception):
    """A store problem a user can act on; the message names the file or field."""


class RunNotFound(StoreError):
    """A run id that is not in the store (or was deleted)."""


def __getattr__(name: str) -> type[Exception]:
    """`DatabaseError`: SQLite's own error, for damage deeper in a file than
    open_store reads (it surfaces on the query that meets it).

    Why lazily: importing the store's errors must not import sqlite3, which
    commands that never open a store would pay for at start-up.
    """
    if name == "DatabaseError":
        import sqlite3

        return sqlite3.DatabaseError
    raise AttributeError(f"module 'store.errors' has no attribute {name!r}")
