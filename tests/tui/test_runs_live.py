"""End-to-end with the real `sagetui run` child process (slow: real runs)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest
from test_screens import SIZE, runs_ready, text, wait_for

from sagetui.tui.screens.launcher import LaunchScreen
from sagetui.tui.screens.live import LiveScreen
from sagetui.tui.screens.runs import RunsScreen

CONFIG = "examples/policy-comparison.toml"
ONE_POINT = 'sweep.control_plane.policy=["hybrid"]'


@pytest.mark.slow
async def test_launch_a_simulated_run_and_see_it_complete(store_path, app_factory):
    app = app_factory(store_path)
    async with app.run_test(size=SIZE) as pilot:
        await runs_ready(pilot)
        await pilot.press("l")
        launch = app.screen
        assert isinstance(launch, LaunchScreen)
        launch.query_one("#path").value = CONFIG
        launch.query_one("#rate").value = "20"
        launch.query_one("#duration").value = "2"
        launch.query_one("#extra").value = f"workload.warmup_s=1 {ONE_POINT}"
        launch.action_start()
        await wait_for(pilot, lambda: isinstance(app.screen, LiveScreen), timeout=60)
        live = app.screen
        run_id = live.run_id
        await wait_for(pilot, lambda: live.status == "completed", timeout=90)
        assert app.launched and app.launched[0].proc.wait(timeout=30) == 0
        await pilot.press("escape", "escape")
        runs = app.screen
        assert isinstance(runs, RunsScreen)
        await wait_for(pilot, lambda: any(r.id == run_id and r.status == "completed"
                                          for r in runs.rows), timeout=10)
        assert runs._page_ids[0] == run_id
        # the table is redrawn from the rows a moment later
        await wait_for(pilot, lambda: "completed" in str(runs.query_one("#runs").get_row_at(0)[3]),
                       timeout=10)


def _run(db, *extra):
    subprocess.run([sys.executable, "-m", "sagetui", "--db", str(db), "run", CONFIG,
                    "--mode", "live", "--set", "workload.rate=40", "--set",
                    "workload.duration_s=4", "--set", "workload.warmup_s=1",
                    "--set", ONE_POINT, "--quiet"], check=True, capture_output=True,
                   timeout=240)


def _achieved(db) -> tuple[float, float]:
    with sqlite3.connect(db) as conn:
        rid = conn.execute("SELECT max(id) FROM run").fetchone()[0]
        target, achieved = conn.execute(
            "SELECT target_rate_rps, achieved_rate_rps FROM summary "
            "WHERE run_id=? AND request_class='all'", (rid,)).fetchone()
    return target, achieved


@pytest.mark.slow
async def test_monitoring_does_not_change_the_achieved_rate(tmp_path, app_factory):
    """Same live run (sim engines behind HTTP) with and without the dashboard watching."""
    alone, watched = tmp_path / "alone.db", tmp_path / "watched.db"
    _run(alone)
    app = app_factory(watched)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_live(None)  # follows whatever run starts
        await pilot.pause()
        live = app.screen
        proc = subprocess.Popen([sys.executable, "-m", "sagetui", "--db", str(watched), "run",
                                 CONFIG, "--mode", "live", "--set", "workload.rate=40",
                                 "--set", "workload.duration_s=4", "--set",
                                 "workload.warmup_s=1", "--set", ONE_POINT, "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            t0 = time.monotonic()
            while proc.poll() is None and time.monotonic() - t0 < 240:
                await pilot.pause(0.2)
            assert proc.wait(timeout=5) == 0
        finally:
            proc.kill()
        assert live.polls >= 5  # it really watched while the run went
        assert "achieved" in text(live.query_one("#rates"))
    t_alone, a_alone = _achieved(alone)
    t_watched, a_watched = _achieved(watched)
    assert t_alone == t_watched == 40
    print(f"achieved rate: alone {a_alone:.3f} r/s, watched {a_watched:.3f} r/s")
    assert abs(a_watched - a_alone) / a_alone < 0.01, json.dumps([a_alone, a_watched])


@pytest.mark.slow
async def test_cancel_a_launched_live_run_keeps_what_it_measured(store_path, app_factory):
    app = app_factory(store_path)
    async with app.run_test(size=SIZE) as pilot:
        await runs_ready(pilot)
        await pilot.press("l")
        launch = app.screen
        launch.query_one("#path").value = CONFIG
        launch.query_one("#mode").value = "live"
        launch.query_one("#rate").value = "20"
        launch.query_one("#duration").value = "15"
        launch.query_one("#extra").value = f"workload.warmup_s=1 {ONE_POINT}"
        launch.action_start()
        await wait_for(pilot, lambda: isinstance(app.screen, LiveScreen), timeout=90)
        live = app.screen
        await wait_for(pilot, lambda: len(live.samples) >= 3, timeout=90)
        await pilot.press("x")
        await pilot.press("y")
        await wait_for(pilot, lambda: live.status in ("cancelled", "completed"), timeout=60)
        assert live.status == "cancelled"
        child = app.launched[0]
        assert child.proc.wait(timeout=30) != 0  # exits 130: cancelled
    with sqlite3.connect(store_path) as conn:
        status, reason = conn.execute("SELECT status, status_reason FROM run WHERE id=?",
                                      (live.run_id,)).fetchone()
        kept = conn.execute("SELECT count(*) FROM sample WHERE run_id=?",
                            (live.run_id,)).fetchone()[0]
    assert status == "cancelled" and "SIGTERM" in reason
    assert kept >= 3
