"""Shell completion values for click (`_SAGETUI_COMPLETE=bash_source sagetui`).

Why callbacks and not click.Choice: the choices live in the run store (run ids,
suites run) or in packages that take a second to import (exports' tables and
figures); a Choice would import them on every start. Each callback imports
what it needs when the shell asks, and answers nothing rather than fail:
a completion must never print a traceback into the user's prompt.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from click.shell_completion import CompletionItem

RUN_CHOICES = 200  # newest runs offered; older ids are still accepted when typed


def _db(ctx: click.Context) -> str:
    """The store the command line names: --db, else SAGETUI_DB, else ./sagetui.db.
    (While completing, the group callback that fills ctx.obj has not run.)"""
    root = ctx.find_root()
    return (root.params.get("db") if root.params else None) or os.environ.get(
        "SAGETUI_DB", "sagetui.db")


def complete_run_ids(ctx: click.Context, param, incomplete: str) -> list[CompletionItem]:
    """Stored run ids (newest first), each with its name and status as help."""
    from store import StoreError, open_store, queries

    path = _db(ctx)
    if not Path(path).is_file():
        return []
    try:
        with open_store(path, readonly=True) as store:
            runs = queries.list_runs(store, last=RUN_CHOICES)
    except (StoreError, OSError):
        return []
    return [CompletionItem(str(r["id"]), help=f"{r['name']} [{r['status']}]")
            for r in reversed(runs) if str(r["id"]).startswith(incomplete)]


def complete_suites(ctx: click.Context, param, incomplete: str) -> list[CompletionItem]:
    """Built-in suite names, and suite names found in the store (for exports)."""
    names: set[str] = set()
    try:
        from ..suites import list_suites

        names |= {s.name for s in list_suites()}
    except Exception:  # a broken suite file must not break completion
        pass
    path = _db(ctx)
    if Path(path).is_file():
        from store import StoreError, open_store, queries

        try:
            with open_store(path, readonly=True) as store:
                names |= set(queries.suite_names(store))
        except (StoreError, OSError):
            pass
    return [CompletionItem(n) for n in sorted(names) if n.startswith(incomplete)]


def _catalogue(kind: str, incomplete: str) -> list[CompletionItem]:
    from exports.api import catalogue

    return [CompletionItem(name, help=description) for k, name, description in catalogue()
            if k == kind and name.startswith(incomplete)]


def complete_tables(ctx: click.Context, param, incomplete: str) -> list[CompletionItem]:
    """Table names exports can build."""
    return _catalogue("table", incomplete)


def complete_figures(ctx: click.Context, param, incomplete: str) -> list[CompletionItem]:
    """Figure names exports can build."""
    return _catalogue("figure", incomplete)


def complete_export_format(ctx: click.Context, param, incomplete: str) -> list[CompletionItem]:
    """Every export format and its short names."""
    from exports.api import FORMATS

    from .export import ALIASES

    return [CompletionItem(f) for f in (*FORMATS, *ALIASES) if f.startswith(incomplete)]


def complete_config_paths(ctx: click.Context, param, incomplete: str) -> list[CompletionItem]:
    """Run config files (*.toml) and folders under the typed prefix."""
    folder, _, stem = incomplete.rpartition("/")
    base = Path(folder or ".")
    if folder == "" and incomplete.startswith("/"):
        base = Path("/")
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return []
    out = []
    for p in entries:
        if not p.name.startswith(stem) or (p.name.startswith(".") and not stem.startswith(".")):
            continue
        shown = f"{folder}/{p.name}" if folder or incomplete.startswith("/") else p.name
        if p.is_dir():
            out.append(CompletionItem(shown + "/", type="plain"))
        elif p.suffix == ".toml":
            out.append(CompletionItem(shown, type="plain"))
    return out
