"""Pilot-driven tests of every screen and action against stores of simulated runs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
from textual.widgets import DataTable, Input, Select, Static, TabbedContent, Tree

from sagetui.tui.children import Child
from sagetui.tui.screens.compare import CompareScreen
from sagetui.tui.screens.detail import DetailScreen
from sagetui.tui.screens.dialogs import ConfirmScreen, QuitScreen
from sagetui.tui.screens.export import ExportScreen
from sagetui.tui.screens.help import HelpScreen
from sagetui.tui.screens.launcher import LaunchScreen
from sagetui.tui.screens.live import LiveScreen
from sagetui.tui.screens.runs import RunsScreen
from store import open_store

SIZE = (80, 24)


async def wait_for(pilot, predicate, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(step)
    raise AssertionError("condition not reached in time")


def text(widget) -> str:
    return str(widget.render())


def table_ids(screen: RunsScreen) -> list[int]:
    return list(screen._page_ids)


async def runs_ready(pilot) -> RunsScreen:
    screen = pilot.app.screen
    assert isinstance(screen, RunsScreen)
    # rows read, the full list (not just the first page), and a page drawn from it
    await wait_for(pilot, lambda: screen.rows and not screen.partial and screen._page_ids
                   and len(screen.shown) == len(screen.rows))
    return screen


async def test_runs_table_sorts_by_header_and_key(store_path, app_factory):
    app = app_factory(store_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_ready(pilot)
        await wait_for(pilot, lambda: table_ids(screen) == [7, 6, 5, 4, 3, 2, 1])
        table = screen.query_one("#runs", DataTable)
        assert table.row_count == 7
        screen.sort_by("policy")  # what clicking the header does
        await wait_for(pilot, lambda: [r.policy for r in screen.shown] == sorted(
            r.policy for r in screen.rows))
        screen.sort_by("policy")
        await wait_for(pilot, lambda: [r.policy for r in screen.shown] == sorted(
            (r.policy for r in screen.rows), reverse=True))
        await pilot.click(DataTable, offset=(3, 0))  # the "id" header
        await wait_for(pilot, lambda: table_ids(screen) == [1, 2, 3, 4, 5, 6, 7])
        assert screen.sort_key == "id"
        assert "sort id↑" in text(screen.query_one("#status", Static))


async def test_filter_box_free_text_key_value_and_error(store_path, app_factory):
    app = app_factory(store_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_ready(pilot)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        for ch in "policy=fifo":
            await pilot.press(ch)
        await wait_for(pilot, lambda: table_ids(screen) == [5, 1])
        screen.query_one("#filter", Input).value = "workload.rate>=40 paper"
        await wait_for(pilot, lambda: table_ids(screen) == [3])
        screen.query_one("#filter", Input).value = "rate="
        await wait_for(pilot, lambda: "filter term 'rate='" in text(
            screen.query_one("#status", Static)))
        assert table_ids(screen) == [3]  # the last good filter stays


async def test_bracketed_names_are_shown_literally(store_path, app_factory):
    """Sweep points are named like `exp[policy=fifo]`: text, never console markup."""
    import sqlite3

    with sqlite3.connect(store_path) as conn:
        conn.execute("UPDATE run SET name='exp[policy=fifo]' WHERE id IN (6, 7)")
    app = app_factory(store_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_ready(pilot)
        assert str(screen.query_one("#runs", DataTable).get_row_at(1)[2]) == "exp[policy=fifo]"
        app.open_detail(6)
        await pilot.pause()
        detail = app.screen
        await wait_for(pilot, lambda: detail.detail is not None)
        assert "exp[policy=fifo]" in str(detail.query_one("#headline").render())
        app.pop_screen()
        app.open_live(7)
        await pilot.pause()
        live = app.screen
        await wait_for(pilot, lambda: live.polls >= 1)
        assert "exp[policy=fifo]" in str(live.query_one("#live-head").render())


async def test_empty_and_missing_store_show_first_steps(tmp_path, app_factory):
    app = app_factory(tmp_path / "fresh.db")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.query_one("#first-steps").display)
        body = text(screen.query_one("#first-steps", Static))
        assert "sagetui demo" in body and "no store at" in body
    empty = tmp_path / "empty.db"
    open_store(empty).close()
    app = app_factory(empty)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.query_one("#first-steps").display)
        assert "No runs yet" in text(screen.query_one("#first-steps", Static))


async def test_corrupt_store_is_reported_and_app_keeps_running(tmp_path, app_factory):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"definitely not sqlite" * 20)
    app = app_factory(junk)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: "not an SQLite" in text(screen.query_one("#first-steps")))
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)  # still responsive
        await pilot.press("escape")
        assert app.screen is screen


async def test_run_detail_tabs(store_path, app_factory):
    app = app_factory(store_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_ready(pilot)
        await pilot.press("down", "enter")  # run 6
        detail = app.screen
        assert isinstance(detail, DetailScreen) and detail.run_id == 6
        await wait_for(pilot, lambda: detail.detail is not None)
        assert "#6" in text(detail.query_one("#headline"))
        pct = detail.query_one("#percentiles", DataTable)
        rows = [pct.get_row_at(i) for i in range(pct.row_count)]
        assert any(r[1] == "ttft ms" for r in rows) and any(r[0] == "embedding" for r in rows)
        tree = detail.query_one("#config", Tree)
        labels = [str(n.label) for n in tree.root.children]
        assert {"run", "workload", "control_plane", "backends"} <= set(labels)
        assert detail.query_one("#hist-choice", Select).value == "ttft|chat"
        events = detail.query_one("#events", DataTable)
        assert events.row_count == 2 and events.get_row_at(0)[1] == "fault"
        pipes = detail.query_one("#pipelines", DataTable)
        assert pipes.get_row_at(0)[1] == "no pipeline jobs in this run"
        for tab in ("tab-latency", "tab-series", "tab-pipelines", "tab-machine", "tab-events"):
            detail.query_one("#tabs", TabbedContent).active = tab
            await pilot.pause()
        assert "x86-64" in text(detail.query_one("#machine"))
        await pilot.press("escape")
        assert app.screen is screen


class FakeRunWriter(threading.Thread):
    """A real RunWriter writing one sample every `period` s, like a live run does."""

    def __init__(self, path, n_samples=40, period=0.05):
        super().__init__(daemon=True)
        store = open_store(path)
        exp = store.create_experiment("live-test")
        self.writer = store.create_run(
            experiment_id=exp, name="live-run", mode="live",
            config={"control_plane": {"policy": "hybrid"}, "workload": {"rate": 20}}, seed=1,
            repetition=0, duration_s=n_samples * period, warmup_s=0, requests_planned=20 * n_samples)
        self.writer.start()
        self.writer.add_backends([{"name": "gpu0", "max_concurrency": 8}])
        self.run_id = self.writer.run_id
        self.store, self.n, self.period = store, n_samples, period

    def run(self):
        for t in range(self.n):
            self.writer.add_sample({
                "t_s": float(t), "offered_rps": 20.0, "achieved_rps": 19.0, "in_flight": 3,
                "errors": 1 if t == 2 else 0, "slo_met": 18, "done": 19 * (t + 1),
                "queue_depth_json": {"chat": 2},
                "backends_json": {"gpu0": {"running": 4, "waiting": 1, "in_flight": 4},
                                  "cpu0": {"running": 0, "up": False},
                                  "_host": {"cpu_percent": 37.0}},
                "latency_json": {"chat": {"ttft_p50": 11.0, "ttft_p99": 42.0}}})
            time.sleep(self.period)
        self.writer.add_event(1.0, "fault", "gpu0", "paused gpu0")
        self.writer.finish("completed")
        self.store.close()


async def test_live_monitor_follows_a_writing_run(store_path, app_factory):
    writer = FakeRunWriter(store_path)
    app = app_factory(store_path, live_interval_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await runs_ready(pilot)
        app.open_live(writer.run_id)
        await pilot.pause()
        live = app.screen
        assert isinstance(live, LiveScreen)
        writer.start()
        await wait_for(pilot, lambda: live.status == "completed", timeout=15)
        writer.join()
        assert live.totals == {"errors": 1, "slo_met": 18 * 40, "done": 19 * 40}
        rates = text(live.query_one("#rates"))
        assert "achieved 19.0" in rates and "errors 1" in rates and "SLO 94.7%" in rates
        lat = live.query_one("#latency", DataTable).get_row_at(0)
        assert str(lat[0]) == "chat" and lat[1:] == ["11.0", "42.0", 2]  # columns it writes
        headers = [str(c.label) for c in live.query_one("#latency", DataTable).columns.values()]
        assert headers == ["class", "TTFT p50", "TTFT p99", "queue"]
        bars = text(live.query_one("#bars"))
        assert "gpu0" in bars and "50.0%" in bars  # 4 in flight of 8
        assert "host CPU" in bars and "37.0%" in bars and "DOWN" in bars and "_host" not in bars
        assert live.polls >= 3
        assert "paused gpu0" in text(live.query_one("#live-events"))


async def test_live_refresh_at_least_2hz_and_attaches_to_running(store_path, app_factory):
    app = app_factory(store_path)  # default interval
    async with app.run_test(size=SIZE) as pilot:
        await runs_ready(pilot)
        await pilot.press("m")  # cursor is on run 7, running
        live = app.screen
        assert isinstance(live, LiveScreen)
        await wait_for(pilot, lambda: live.polls >= 1)
        start, t0 = live.polls, time.monotonic()
        await pilot.pause(2.0)
        rate = (live.polls - start) / (time.monotonic() - t0)
        assert rate >= 2.0, f"refresh {rate:.2f} Hz"
        assert "#7" in text(live.query_one("#live-head")) and "run 7 of the sweep (6 done)" in text(
            live.query_one("#live-head"))


async def test_live_with_nothing_running_says_how_to_start(tmp_path, app_factory):
    path = tmp_path / "s.db"
    open_store(path).close()
    app = app_factory(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_live(None)
        await pilot.pause()
        live = app.screen
        await wait_for(pilot, lambda: "No run is running" in text(live.query_one("#live-head")))
        await pilot.pause(0.2)


async def test_compare_marked_runs(store_path, app_factory):
    app = app_factory(store_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_ready(pilot)
        await pilot.press("c")  # nothing marked: a hint, no screen change
        assert app.screen is screen
        await pilot.press("down", "space", "space")  # runs 6 and 5
        assert screen.marked == {6, 5}
        assert "2 marked" in text(screen.query_one("#status"))
        await pilot.press("c")
        cmp = app.screen
        assert isinstance(cmp, CompareScreen) and cmp.run_ids == [5, 6]
        table = cmp.query_one("#cmp", DataTable)
        await wait_for(pilot, lambda: table.row_count > 0, timeout=40)
        rows = {(r[0], r[1]): r for r in (table.get_row_at(i) for i in range(table.row_count))}
        thr = rows[("all", "throughput_rps")]
        assert thr[2] == "9.70" and thr[3].startswith("19.40 +100.0%")
        p99 = rows[("chat", "ttft.p99")]
        assert p99[3][-1] in "+-~"  # a significance mark from store.queries.compare
        assert cmp.query_one("#cdf-choice", Select).value == "ttft|chat"


async def test_export_writes_files_and_reports_failures(store_path, app_factory, tmp_path):
    app = app_factory(store_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_ready(pilot)
        await pilot.press("down", "space", "space", "e")
        exp = app.screen
        assert isinstance(exp, ExportScreen)
        assert exp.query_one("#run-ids", Input).value == "5,6"
        exp.query_one("#name", Select).value = "policies"
        exp.query_one("#format", Select).value = "csv"
        exp.query_one("#out-dir", Input).value = str(tmp_path / "out")
        exp.action_export()
        msg = exp.query_one("#export-msg", Static)
        await wait_for(pilot, lambda: "file(s)" in text(msg) or "failed" in text(msg), 20)
        assert "Wrote" in text(msg), text(msg)
        written = list((tmp_path / "out").rglob("*.csv"))
        assert written and str(written[0]) in text(msg)
        exp.query_one("#run-ids", Input).value = "7"  # still running: exports refuses
        exp.action_export()
        await wait_for(pilot, lambda: "Export failed" in text(msg), 20)
        assert "7" in text(msg)
        await pilot.press("escape")
        assert app.screen is screen


async def test_launch_rejects_invalid_toml_naming_the_field(tmp_path, store_path, app_factory):
    bad = tmp_path / "bad.toml"
    bad.write_text('[run]\nmode = "warp"\n[[backends]]\nname = "a"\nkind = "sim"\n')
    broken = tmp_path / "broken.toml"
    broken.write_text("[run\n")
    app = app_factory(store_path)
    async with app.run_test(size=SIZE) as pilot:
        await runs_ready(pilot)
        await pilot.press("l")
        launch = app.screen
        assert isinstance(launch, LaunchScreen)
        msg = launch.query_one("#launch-msg", Static)
        launch.query_one("#path", Input).value = str(bad)
        launch.action_start()
        await wait_for(pilot, lambda: "Invalid" in text(msg))
        assert "run.mode" in text(msg) and "bad.toml" in text(msg)
        launch.query_one("#path", Input).value = str(broken)
        launch.action_validate()
        await wait_for(pilot, lambda: "not valid TOML" in text(msg))
        launch.query_one("#path", Input).value = "examples/policy-comparison.toml"
        launch.query_one("#rate", Input).value = "25"
        launch.action_validate()
        await wait_for(pilot, lambda: "Valid." in text(msg))
        assert "rate 25" in text(msg) and launch.child is None and app.launched == []


async def test_cancel_asks_then_sends_sigterm(store_path, app_factory):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket
        import sqlite3

        with sqlite3.connect(store_path) as conn:
            # started after the process: the store checks the pid was not reused
            conn.execute("UPDATE run SET pid=?, host=?, started=? WHERE id=7",
                         (proc.pid, socket.gethostname(),
                          datetime.now(UTC).isoformat(timespec="milliseconds")))
        app = app_factory(store_path)
        async with app.run_test(size=SIZE) as pilot:
            await runs_ready(pilot)
            await pilot.press("x")  # cursor on run 7, running
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            assert proc.poll() is None
            await pilot.press("x")
            await pilot.press("y")
            await pilot.pause(0.5)
            assert proc.wait(timeout=5) == -15  # SIGTERM
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("choice, alive_after", [("l", True), ("c", False)])
async def test_quit_with_running_child_asks(store_path, app_factory, tmp_path, choice,
                                            alive_after):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            start_new_session=True)
    try:
        app = app_factory(store_path)
        async with app.run_test(size=SIZE) as pilot:
            await runs_ready(pilot)
            app.launched.append(Child(argv=["sleep"], proc=proc, log_path=tmp_path / "x.log"))
            await pilot.press("q")
            assert isinstance(app.screen, QuitScreen)
            await pilot.press(choice)
            await pilot.pause(0.3)
        if alive_after:
            assert proc.poll() is None
        else:
            assert proc.wait(timeout=5) == -15
    finally:
        proc.kill()
        proc.wait()


async def test_palette_and_help_cover_every_action(store_path, app_factory):
    app = app_factory(store_path)
    async with app.run_test(size=SIZE) as pilot:
        await runs_ready(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for wanted in ("Launch a run", "Live monitor", "Help", "Open run details",
                       "Mark / unmark run", "Compare marked runs", "Export", "Filter runs",
                       "Reload runs", "Cancel run", "Next page of runs"):
            assert wanted in titles
        app.open_detail(1)
        await pilot.pause()
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert "Monitor this run live" in titles and "Export this run" in titles
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)


async def test_paging_with_many_runs(tmp_path, app_factory):
    import storefill

    from sagetui.tui.screens import runs as runs_mod

    path = tmp_path / "many.db"
    storefill.fill(path, runs_mod.PAGE_SIZE + 20, detailed=0)
    app = app_factory(path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_ready(pilot)
        assert len(table_ids(screen)) == runs_mod.PAGE_SIZE
        await pilot.press("right_square_bracket")
        assert len(table_ids(screen)) == 20 and screen.page == 1
        assert "page 2/2" in text(screen.query_one("#status"))
        await pilot.press("left_square_bracket")
        assert screen.page == 0


def test_sample_columns_match_what_the_monitor_reads():
    """The monitor reads these Sample columns; fail loudly if the schema renames them."""
    from store.schema import Sample

    for col in ("t_s", "offered_rps", "achieved_rps", "in_flight", "errors", "slo_met", "done",
                "queue_depth_json", "backends_json", "latency_json"):
        assert col in Sample.model_fields
    assert json.loads("{}") == {}


async def test_live_monitor_follows_a_sweep_to_its_next_point(tmp_path, app_factory):
    path = tmp_path / "sweep.db"
    store = open_store(path)
    exp = store.create_experiment("sweep-test")

    def new_run(name):
        w = store.create_run(experiment_id=exp, name=name, mode="live", config={}, seed=1,
                             repetition=0, duration_s=2, requests_planned=10)
        w.start()
        w.add_sample({"t_s": 0.0, "offered_rps": 5.0, "achieved_rps": 5.0, "done": 5})
        return w

    first = new_run("sweep[rate=5]")
    app = app_factory(path, live_interval_s=0.1)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.open_live(first.run_id, planned_runs=2)
            await pilot.pause()
            live = app.screen
            await wait_for(pilot, lambda: "run 1/2 of the sweep" in text(
                live.query_one("#live-head")))
            first.finish("completed")
            await wait_for(pilot, lambda: live.run_id is None)
            second = new_run("sweep[rate=10]")
            await wait_for(pilot, lambda: live.run_id == second.run_id)
            await wait_for(pilot, lambda: "run 2/2 of the sweep" in text(
                live.query_one("#live-head")))
            assert live.totals["done"] == 5  # counters restarted for the new point
            second.finish("completed")
            await wait_for(pilot, lambda: live.status == "completed")
            await pilot.pause(0.3)
            assert live.run_id == second.run_id  # the sweep is over: it stays on the last run
    finally:
        store.close()


async def test_leaving_screens_with_reads_in_flight_is_safe(store_path, app_factory):
    """Results of reads still running when the user leaves are dropped, not applied."""
    app = app_factory(store_path, live_interval_s=0.02)
    async with app.run_test(size=SIZE) as pilot:
        await runs_ready(pilot)
        for _ in range(5):
            app.open_live(7)
            await pilot.pause(0.05)
            app.pop_screen()
            app.open_detail(3)
            await pilot.pause(0.01)
            app.pop_screen()
            app.open_compare([1, 2])
            await pilot.pause(0.01)
            app.pop_screen()
        await pilot.pause(0.5)
        assert isinstance(app.screen, RunsScreen)
        app.open_live(7)  # and quitting with a poll in flight (polls run every 20 ms);
        await pilot.pause(0.3)  # long enough for the screen's header to mount under load
    assert app.return_code in (None, 0)


async def test_opening_the_dashboard_marks_dead_runs_interrupted(store_path, app_factory):
    """The store's rule: a run whose writer is gone is `interrupted` once the store is opened."""
    import socket
    import sqlite3

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with sqlite3.connect(store_path) as conn:
        conn.execute("UPDATE run SET pid=?, host=? WHERE id=7", (dead.pid, socket.gethostname()))
    app = app_factory(store_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_ready(pilot)
        row = next(r for r in screen.rows if r.id == 7)
        assert row.status == "interrupted"
