"""The one exception the store raises for bad files and bad input.

Why one type: the CLI turns it into one line on stderr and exit code 2, so
every message must already name the file or the field at fault.
"""

from __future__ import annotations


class StoreError(Exception):
    """A store problem a user can act on; the message names the file or field."""


class RunNotFound(StoreError):
    """A run id that is not in the store (or was deleted)."""
