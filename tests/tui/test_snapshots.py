"""Snapshot tests of the main screens at 80x24 on deterministic stores.

Update after an intended change: pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import time

from textual.widgets import DataTable

from sagetui.tui.screens.runs import RunsScreen
from store import open_store

SIZE = (80, 24)


async def _until(pilot, predicate, timeout=40.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("screen did not settle")
        await pilot.pause(0.05)
    await pilot.pause(0.2)


async def _runs_loaded(pilot):
    await _until(pilot, lambda: isinstance(pilot.app.screen, RunsScreen)
                 and pilot.app.screen.rows and not pilot.app.screen.partial)


def test_runs_screen(snap_compare, store_path, app_factory):
    assert snap_compare(app_factory(store_path), terminal_size=SIZE, run_before=_runs_loaded)


def test_first_steps_on_empty_store(snap_compare, tmp_path, monkeypatch, app_factory):
    monkeypatch.chdir(tmp_path)
    open_store("sagetui.db").close()

    async def ready(pilot):
        await _until(pilot, lambda: pilot.app.screen.query_one("#first-steps").display)

    assert snap_compare(app_factory("sagetui.db"), terminal_size=SIZE, run_before=ready)


def test_run_detail(snap_compare, store_path, app_factory):
    async def ready(pilot):
        await _runs_loaded(pilot)
        pilot.app.open_detail(2)
        await _until(pilot, lambda: getattr(pilot.app.screen, "detail", None) is not None)

    assert snap_compare(app_factory(store_path), terminal_size=SIZE, run_before=ready)


def test_live_monitor(snap_compare, store_path, app_factory):
    async def ready(pilot):
        await _runs_loaded(pilot)
        pilot.app.open_live(7)
        await _until(pilot, lambda: getattr(pilot.app.screen, "polls", 0) >= 2)

    assert snap_compare(app_factory(store_path), terminal_size=SIZE, run_before=ready)


def test_compare(snap_compare, store_path, app_factory):
    async def ready(pilot):
        await _runs_loaded(pilot)
        pilot.app.open_compare([5, 6])
        await pilot.pause()
        await _until(pilot, lambda: pilot.app.screen.query_one("#cmp", DataTable).row_count > 0)

    assert snap_compare(app_factory(store_path), terminal_size=SIZE, run_before=ready)


def test_launch(snap_compare, store_path, app_factory):
    async def ready(pilot):
        await _runs_loaded(pilot)
        await pilot.press("l")
        await pilot.pause()
        source = pilot.app.screen.query_one("#source")
        await _until(pilot, lambda: len(source._options) > 1)

    assert snap_compare(app_factory(store_path), terminal_size=SIZE, run_before=ready)


def test_help(snap_compare, store_path, app_factory):
    async def ready(pilot):
        await _runs_loaded(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.3)

    assert snap_compare(app_factory(store_path), terminal_size=SIZE, run_before=ready)
