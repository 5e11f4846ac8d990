"""The one exception exports raise for bad input, so the CLI can print it and exit non-zero."""

from __future__ import annotations


class ExportError(Exception):
    """Bad input for an export (no runs, missing metrics, unknown name, unwritable folder...).

    The message names the field, table, figure or file at fault.
    """
