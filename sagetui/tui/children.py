"""Runs started from the dashboard: child processes, never the UI's event loop.

Why a child process: a slow screen must not perturb the measurement, and a
crash of one must not take the other down. Children start in their own
session so closing the dashboard (or Ctrl+C in its terminal) leaves them
running unless the user asks to cancel them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


class LaunchError(Exception):
    """A run could not be started; the message says why."""


@dataclass
class Child:
    """One `sagetui run` child process started by this dashboard."""

    argv: list[str]
    proc: subprocess.Popen
    log_path: Path
    started: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def start(argv: list[str], log_dir: str | os.PathLike[str]) -> Child:
    """Start a run (argv from launching.Plan.argv) detached, its output to a log file."""
    log_dir = Path(log_dir)
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LaunchError(f"{log_dir}: cannot create the log folder ({exc})") from exc
    stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.time_ns() % 10**6}"
    log_path = log_dir / f"launch-{stamp}.log"
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            raise LaunchError(f"cannot start {argv[0]}: {exc}") from exc
    return Child(argv=argv, proc=proc, log_path=log_path)


def terminate(pid: int, host: str = "") -> None:
    """SIGTERM a run's process: the run stops, marks itself cancelled, keeps its data."""
    if host and host != socket.gethostname():
        raise LaunchError(f"run process {pid} lives on {host}, not on this machine")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError as exc:
        raise LaunchError(f"run process {pid} is no longer running") from exc
    except PermissionError as exc:
        raise LaunchError(f"not allowed to signal run process {pid}") from exc
