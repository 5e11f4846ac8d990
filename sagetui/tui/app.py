"""The dashboard application: screens, global keys, palette, child runs.

Why one App holding the reader and the children: every screen reads the same
store and a run launched from one screen is cancelled from another; quitting
must know which runs this dashboard started.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from sagetui.tui import children
from sagetui.tui.data import StoreReader, StoreUnavailable, run_process
from sagetui.tui.screens.dialogs import ConfirmScreen, QuitScreen
from sagetui.tui.screens.help import HelpScreen
from sagetui.tui.screens.runs import RunsScreen


def rerun_argv(db_path: Path, run_id: int) -> list[str]:
    """The child process a dashboard rerun starts: exactly `sagetui runs rerun RUN`."""
    return [sys.executable, "-m", "sagetui", "--db", str(db_path), "runs", "rerun", str(run_id)]


class SageApp(App):
    """`sagetui` with no subcommand."""

    CSS_PATH = "app.tcss"
    TITLE = "sagetui"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("escape", "back", "Back", show=False),
    ]

    def __init__(self, db_path: str | os.PathLike[str], *, live_interval_s: float = 0.4,
                 log_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        self.reader = StoreReader(self.db_path)
        self.live_interval_s = live_interval_s
        self.log_dir = Path(log_dir) if log_dir else self.db_path.parent / "sagetui-logs"
        self.launched: list[children.Child] = []
        self.sub_title = self.db_path.name

    def on_mount(self) -> None:
        self.push_screen(RunsScreen())

    def on_unmount(self) -> None:
        self.reader.close()

    # -- navigation -----------------------------------------------------------

    def open_detail(self, run_id: int) -> None:
        from sagetui.tui.screens.detail import DetailScreen

        self.push_screen(DetailScreen(run_id))

    def open_live(self, run_id: int | None = None, planned_runs: int | None = None) -> None:
        from sagetui.tui.screens.live import LiveScreen

        self.push_screen(LiveScreen(run_id, planned_runs))

    def open_compare(self, run_ids: list[int]) -> None:
        from sagetui.tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(run_ids))

    def open_export(self, run_ids: list[int]) -> None:
        from sagetui.tui.screens.export import ExportScreen

        self.push_screen(ExportScreen(run_ids))

    def action_launch(self) -> None:
        from sagetui.tui.screens.launcher import LaunchScreen

        self.push_screen(LaunchScreen())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_back(self) -> None:
        if len(self.screen_stack) > 2:
            self.pop_screen()

    def runs_screen(self) -> RunsScreen | None:
        return next((s for s in self.screen_stack if isinstance(s, RunsScreen)), None)

    # -- the command palette --------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        runs = self.runs_screen()
        yield SystemCommand("Runs: go to the runs table", "All runs in the store",
                            self._to_runs)
        yield SystemCommand("Launch a run", "Start a suite or TOML config as a child process",
                            self.action_launch)
        yield SystemCommand("Live monitor", "Watch a running run", lambda: self.open_live(None))
        yield SystemCommand("Help", "Keys and what each screen does", self.action_help)
        if runs is not None:
            yield SystemCommand("Open run details", "Details of the run under the cursor",
                                runs.action_open_run)
            yield SystemCommand("Mark / unmark run", "Mark the run under the cursor for compare",
                                runs.action_toggle_mark)
            yield SystemCommand("Compare marked runs", "Side by side, with significance",
                                runs.action_compare)
            yield SystemCommand("Export", "Tables, figures or a bundle via exports",
                                runs.action_export)
            yield SystemCommand("Filter runs", "Focus the filter box", runs.action_focus_filter)
            yield SystemCommand("Reload runs", "Read the store again", runs.action_reload)
            yield SystemCommand("Cancel run", "SIGTERM the running run under the cursor",
                                runs.action_cancel_run)
            yield SystemCommand("Rerun run", "Run the run under the cursor again from its "
                                "stored config (same seed), linked to it", runs.action_rerun)
            yield SystemCommand("Next page of runs", "", lambda: runs.action_page(1))
            yield SystemCommand("Previous page of runs", "", lambda: runs.action_page(-1))
        for name, cmd in getattr(screen, "PALETTE", {}).items():
            yield SystemCommand(name, cmd[1], getattr(screen, cmd[0]))

    def _to_runs(self) -> None:
        while len(self.screen_stack) > 2:
            self.pop_screen()

    # -- runs started or cancelled from here ----------------------------------

    def start_child(self, argv: list[str]) -> children.Child:
        """Start a run process (call from a worker: it creates files and forks)."""
        child = children.start(argv, self.log_dir)
        self.launched.append(child)  # list.append is atomic; quitting reads this list
        return child

    def confirm_cancel(self, run_id: int) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._cancel(run_id)

        self.push_screen(ConfirmScreen(
            f"Cancel run {run_id}?\n\nIt gets SIGTERM, stops, is marked cancelled and keeps "
            "what it measured so far.", yes="Cancel run", no="Keep running"), answered)

    @work(thread=True, group="cancel")
    def _cancel(self, run_id: int) -> None:
        try:
            status, pid, host = run_process(self.reader, run_id)
            if status != "running" or pid is None:
                raise children.LaunchError(f"run {run_id} is {status}, nothing to cancel")
            children.terminate(pid, host)
        except (children.LaunchError, StoreUnavailable, LookupError) as exc:
            self._post(self.notify, str(exc), title="Cannot cancel", severity="error")
            return
        self._post(self.notify, f"Run {run_id}: SIGTERM sent to process {pid}.",
                   title="Cancelling")

    def confirm_rerun(self, run_id: int) -> None:
        """Ask, then rerun `run_id` as `sagetui runs rerun` does (a child process)."""
        def answered(yes: bool | None) -> None:
            if yes:
                self._rerun(run_id)

        self.push_screen(ConfirmScreen(
            f"Rerun run {run_id}?\n\nIt runs again from its stored config with the same "
            "seed, as a child process; the new run is linked to it and its log says how "
            "the two compare.", yes="Rerun", no="Keep as is"), answered)

    @work(thread=True, group="rerun")
    def _rerun(self, run_id: int) -> None:
        """Check the stored config against today's schema, then start the child; a config
        that no longer validates is reported here and nothing starts."""
        from sagetui.errors import ConfigError
        from sagetui.rerun import check_today, replay_config
        from store import queries

        try:
            run = self.reader.call(queries.get_run, run_id)
            check_today(replay_config(run), run)
            child = self.start_child(rerun_argv(self.db_path, run_id))
        except (ConfigError, children.LaunchError, StoreUnavailable, LookupError) as exc:
            self._post(self.notify, str(exc), title=f"Cannot rerun run {run_id}",
                       severity="error", timeout=15)
            return
        self._post(self.notify, f"Rerun of run {run_id}: process {child.pid}; the new run "
                   f"appears in the list, linked to {run_id}. Log: {child.log_path}",
                   title="Rerun started")

    def _post(self, fn, *args, **kwargs) -> None:
        """From a worker: run on the UI thread, unless the app is already shutting down."""
        try:
            self.call_from_thread(fn, *args, **kwargs)
        except RuntimeError:
            pass

    async def action_quit(self) -> None:
        alive = [c for c in self.launched if c.alive()]
        if not alive:
            self.exit()
            return

        def answered(choice: str | None) -> None:
            if choice == "cancel":
                for child in alive:
                    child.proc.terminate()
                self.exit()
            elif choice == "leave":
                self.exit()

        self.push_screen(QuitScreen(len(alive)), answered)
