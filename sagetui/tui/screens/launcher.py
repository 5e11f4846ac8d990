"""Launch: pick a built-in suite or a TOML file, adjust it, start it as a child process."""

from __future__ import annotations

import time

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Checkbox, Footer, Header, Input, Label, Select, Static

from sagetui.config import ConfigError
from sagetui.tui import launching
from sagetui.tui.children import Child, LaunchError
from sagetui.tui.data import StoreUnavailable, runs_of_pid
from sagetui.tui.screens.base import WorkerScreen

FIND_RUN_TIMEOUT_S = 60.0


class LaunchScreen(WorkerScreen):
    AUTO_FOCUS = "#source"
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"),
                Binding("ctrl+s", "start", "Start")]
    PALETTE = {"Start the configured run": ("action_start", "Validate, then start a child"),
               "Validate the launch config": ("action_validate", "Check TOML and overrides")}

    def __init__(self) -> None:
        super().__init__()
        self.child: Child | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        form = VerticalScroll(id="launch-form")
        form.can_focus = False  # Tab goes field to field, not to the scroll container
        with form:
            yield Label("A built-in suite or config, or your TOML file:")
            yield Select([], id="source", prompt="built-in suite or config", compact=True)
            with Horizontal(classes="row"):
                yield Input(placeholder="path/to/config.toml (or suite:NAME)", id="path",
                            compact=True)
                yield Checkbox("quick (suites)", id="quick", compact=True)
            with Horizontal(classes="row"):
                yield Label("mode", classes="lbl")
                yield Select([("sim", "sim"), ("live", "live")], id="mode",
                             prompt="as in config", compact=True)
                yield Label("policy", classes="lbl")
                yield Input(placeholder="as in config", id="policy", compact=True)
            with Horizontal(classes="row"):
                yield Label("rate r/s", classes="lbl")
                yield Input(placeholder="as in config", id="rate", type="number", compact=True)
                yield Label("duration s", classes="lbl")
                yield Input(placeholder="as in config", id="duration", type="number",
                            compact=True)
            with Horizontal(classes="row"):
                yield Label("repetitions", classes="lbl")
                yield Input(placeholder="as in config", id="repetitions", type="integer",
                            compact=True)
                yield Label("backends", classes="lbl")
                yield Input(placeholder="all · names to keep · suite: TOML file",
                            id="backends", compact=True)
            with Horizontal(classes="row"):
                yield Label("more --set", classes="lbl")
                yield Input(placeholder="path=value … (e.g. workload.warmup_s=2)", id="extra",
                            compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Validate", id="validate", compact=True)
                yield Button("Start", variant="success", id="start", compact=True)
            yield Static("", id="launch-msg")
        yield Footer()

    def on_mount(self) -> None:
        self._load_targets()

    @work(thread=True, group="launch-targets")
    def _load_targets(self) -> None:
        """The suite and config files are read off the UI thread."""
        try:
            targets = launching.builtin_targets()
        except ConfigError as exc:  # a broken built-in suite file: say which
            self.post_ui(self._message, f"[red]{escape(str(exc))}[/]")
            return
        self.post_ui(self._set_targets, targets)

    def _set_targets(self, targets: list[tuple[str, str]]) -> None:
        self.query_one("#source", Select).set_options(targets)

    @on(Select.Changed, "#source")
    def _source(self, event: Select.Changed) -> None:
        if event.value is not Select.NULL:
            self.query_one("#path", Input).value = str(event.value)

    def _form(self) -> tuple[str, dict[str, str], bool]:
        form = {name: self.query_one(f"#{name}", Input).value
                for name in ("policy", "rate", "duration", "repetitions", "backends", "extra")}
        mode = self.query_one("#mode", Select).value
        form["mode"] = "" if mode is Select.NULL else str(mode)
        return (self.query_one("#path", Input).value.strip(), form,
                self.query_one("#quick", Checkbox).value)

    def _message(self, text: str) -> None:
        self.query_one("#launch-msg", Static).update(text)

    @on(Button.Pressed, "#validate")
    def action_validate(self) -> None:
        self._check(*self._form(), start=False)

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        if self.child is not None and self.child.alive():
            self._message(f"Run process {self.child.pid} is still going; watch it with "
                          "[b]m[/] or cancel it there.")
            return
        self._check(*self._form(), start=True)

    @work(thread=True, exclusive=True, group="launch")
    def _check(self, target: str, form: dict[str, str], quick: bool, start: bool) -> None:
        """Validate in a worker (reads files), then start the child and find its run."""
        say = lambda text: self.post_ui(self._message, text)  # noqa: E731
        try:
            plan = launching.plan(target, form, quick)
        except ConfigError as exc:
            say(f"[red]Invalid:[/]\n{escape(str(exc))}")
            return
        sets = " ".join(f"--set {k}={v[:30]}" for k, v in plan.sets.items())
        described = escape(f"{plan.description}\n{sets}".strip())
        if not start:
            say(f"[green]Valid.[/] {described}")
            return
        try:
            child = self.dash.start_child(plan.argv(self.dash.db_path))
        except LaunchError as exc:
            say(f"[red]Could not start:[/] {escape(str(exc))}")
            return
        self.child = child
        say(f"Started process {child.pid}: {described}\nLog: {child.log_path}\n"
            "Waiting for its first run to appear in the store…")
        deadline = time.monotonic() + FIND_RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                ids = runs_of_pid(self.dash.reader, child.pid) if self.dash.reader.exists() else []
            except StoreUnavailable:
                ids = []
            if ids:
                say(f"Run {ids[0]} started by process {child.pid}. Opening the live monitor…"
                    f"\nLog: {child.log_path}")
                self.post_ui(self.dash.open_live, ids[0], plan.runs)
                return
            if not child.alive():
                say(f"[red]The run process exited ({child.proc.returncode}) before writing a "
                    f"run:[/]\n{escape(child.log_tail())}")
                return
            time.sleep(0.25)
        say(f"[yellow]Process {child.pid} has not written a run after "
            f"{FIND_RUN_TIMEOUT_S:.0f} s; see {child.log_path}[/]")
