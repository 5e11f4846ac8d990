"""Engines on a Ray cluster: the `[cluster]` section and the launcher behind it.

Why a package of its own: everything that touches Ray lives here and imports it
only when a run names `launcher = "ray"`, so a local run, the CLI's start-up and
the simulator never pay for importing Ray (about a second) or need it installed.

    launcher = make_launcher(specs, run_dir, cluster)   # Launcher or RayLauncher
    with launcher as engines:                           # list[LaunchedEngine], all healthy
        ...
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.cluster.spec import ClusterSpec
    from engine.spec import BackendSpec


def make_launcher(specs: list[BackendSpec], run_dir: str | Path,
                  cluster: ClusterSpec | None = None, **kwargs):
    """The launcher `cluster` asks for: the local one unless `launcher = "ray"`.

    Both offer the same interface (context manager, `start`, `stop`, `dead`,
    `engines`), so the orchestrator never asks which one it holds.
    """
    if cluster is not None and cluster.launcher == "ray":
        from engine.cluster.launcher import RayLauncher

        return RayLauncher(specs, run_dir, cluster, **kwargs)
    from engine.launcher import Launcher

    return Launcher(specs, run_dir, **kwargs)
