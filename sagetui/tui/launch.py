"""Entry point used by `sagetui` with no subcommand."""

from __future__ import annotations

import os


def open_dashboard(db_path: str | os.PathLike[str]) -> None:
    """Open the dashboard on a store; runs started from it outlive it unless cancelled."""
    from sagetui.tui.app import SageApp

    SageApp(db_path).run()
