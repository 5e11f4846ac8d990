"""The dashboard reruns a run as `sagetui runs rerun` does, and shows the link."""

from __future__ import annotations

import textwrap
import time

from click.testing import CliRunner
from textual.widgets import Static

from sagetui.cli import main
from sagetui.tui import fmt
from sagetui.tui.screens.detail import DetailScreen
from sagetui.tui.screens.dialogs import ConfirmScreen
from sagetui.tui.screens.runs import RunsScreen
from store import open_store, queries

SIZE = (100, 30)
CONFIG = textwrap.dedent("""
    [run]
    name = "tui-rerun"
    seed = 3

    [workload]
    rate = 30
    duration_s = 2
    warmup_s = 1
    mix = { chat = 1.0 }

    [[backends]]
    name = "gpu0"
    kind = "sim"
    preset = "7b-h100"
    capabilities = ["chat"]
""")


async def wait_for(pilot, predicate, timeout=60.0, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(step)
    raise AssertionError("condition not reached in time")


def make_store(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    db = tmp_path / "sagetui.db"
    result = CliRunner().invoke(main, ["--db", str(db), "run", str(cfg), "--quiet"])
    assert result.exit_code == 0, result.output
    return db


def reruns(db, run_id: int) -> list[dict]:
    with open_store(db) as s:
        return [queries.get_run(s, i) for i in queries.get_run(s, run_id)["reruns"]]


async def test_R_reruns_the_selected_run_linked_to_it(tmp_path, app_factory):
    db = make_store(tmp_path)
    app = app_factory(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await wait_for(pilot, lambda: screen._page_ids == [1])
        await pilot.press("R")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(app.launched) == 1)
        child = app.launched[0]
        assert child.argv[-3:] == ["runs", "rerun", "1"]
        await wait_for(pilot, lambda: not child.alive())
        assert child.proc.returncode == 0, child.log_tail(20)
        assert "identical: run 2 matches run 1" in child.log_path.read_text()
        [new] = reruns(db, 1)
        assert new["id"] == 2 and new["rerun_of"] == 1 and new["seed"] == 3
        app.open_detail(2)
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen)
                       and app.screen.detail is not None)
        headline = str(app.screen.query_one("#headline", Static).render())
        assert "rerun of #1" in headline


async def test_a_config_todays_schema_refuses_is_reported_and_nothing_starts(tmp_path,
                                                                          app_factory):
    db = make_store(tmp_path)
    with open_store(db) as s:
        cfg = queries.get_run(s, 1)["config"]
        cfg["workload"]["retired_knob"] = 1
        w = s.create_run(experiment_id=None, name="old", mode="sim", config=cfg, seed=3,
                         repetition=0)
        w.finish()
    app = app_factory(db)
    notes = []
    app.notify = lambda message, **kw: notes.append(message)
    async with app.run_test(size=SIZE) as pilot:
        app.open_detail(2)
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen)
                       and app.screen.detail is not None)
        await pilot.press("R")
        await pilot.press("y")
        await wait_for(pilot, lambda: notes)
        assert "workload.retired_knob" in notes[0] and "delete it" in notes[0]
        assert app.launched == []
    assert reruns(db, 2) == []


def test_planned_request_count_reads_as_approximate():
    assert fmt.requests(237, 230) == "237/~230"
    assert fmt.requests(12, 0) == "12"
