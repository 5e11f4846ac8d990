"""Fixtures for the dashboard tests: stores filled with simulated-run rows."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import storefill  # noqa: E402


@pytest.fixture(scope="session")
def _template(tmp_path_factory) -> Path:
    """Built once: 6 completed runs with full detail + 1 running run with 12 samples."""
    path = tmp_path_factory.mktemp("tpl") / "sagetui.db"
    storefill.fill(path, 6, running=1, running_samples=12)
    return path


@pytest.fixture
def store_path(_template, tmp_path) -> Path:
    """A private copy of the template store (tests may write to it)."""
    path = tmp_path / "sagetui.db"
    shutil.copy(_template, path)
    # The running run's writer is "this process, alive, just now": opening the store
    # must not mark it interrupted (the dashboard's first open does recovery).
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE run SET pid=?, host=?, heartbeat=? WHERE status='running'",
                     (os.getpid(), socket.gethostname(), time.time()))
    conn.close()
    return path


@pytest.fixture
def app_factory(tmp_path):
    """SageApp on a store, with logs kept in the test's folder."""
    from sagetui.tui.app import SageApp

    def make(path, **kwargs):
        kwargs.setdefault("log_dir", tmp_path / "logs")
        return SageApp(path, **kwargs)

    return make
