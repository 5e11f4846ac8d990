"""Fixtures for export tests: one fixed store per session, and the CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from fixture_store import (  # noqa: E402
    add_agent_items_experiment,
    add_mismatch_experiment,
    add_pipelines_experiment,
    add_suite_experiment,
    build_store,
)

from sagetui.cli import main  # noqa: E402


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Path:
    """The fixed store (tests/exports/fixture_store.py) with 2 repetitions per point."""
    path = tmp_path_factory.mktemp("store") / "fixed.db"
    build_store(path, reps=2)
    add_mismatch_experiment(path)
    add_suite_experiment(path)
    add_agent_items_experiment(path)
    add_pipelines_experiment(path)
    return path


@pytest.fixture
def cli(store):
    """Run `sagetui --db STORE export ...`; returns the click Result."""
    runner = CliRunner()

    def run(*args: str, db: Path | None = None):
        return runner.invoke(main, ["--db", str(db or store), "export", *args], catch_exceptions=False)

    return run
