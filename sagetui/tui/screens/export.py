"""Export: a table, figure or bundle in a format → files via the exports package."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from sagetui.tui.screens.base import WorkerScreen


class ExportScreen(WorkerScreen):
    AUTO_FOCUS = "#kind"
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"),
                Binding("ctrl+s", "export", "Export")]
    PALETTE = {"Write the export": ("action_export", "Through the exports package")}

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = run_ids

    def compose(self) -> ComposeResult:
        from exports.api import catalogue

        self.catalogue = catalogue()
        yield Header()
        form = VerticalScroll(id="export-form")
        form.can_focus = False  # Tab goes field to field, not to the scroll container
        with form:
            runs = (", ".join(map(str, self.run_ids)) if self.run_ids
                    else "none marked — type ids below")
            yield Static(f"Runs: {runs}", id="export-runs")
            with Horizontal(classes="row"):
                yield Label("runs", classes="lbl")
                yield Input(",".join(map(str, self.run_ids)), id="run-ids", compact=True,
                            placeholder="ids: 3,5,8-12")
            with Horizontal(classes="row"):
                yield Label("what", classes="lbl")
                yield Select([("table", "table"), ("figure", "figure"), ("bundle", "bundle")],
                             id="kind", value="table", allow_blank=False, compact=True)
            with Horizontal(classes="row"):
                yield Label("name", classes="lbl")
                yield Select([], id="name", prompt="table or figure", compact=True)
            with Horizontal(classes="row"):
                yield Label("format", classes="lbl")
                yield Select([], id="format", prompt="format", compact=True)
            with Horizontal(classes="row"):
                yield Label("folder", classes="lbl")
                yield Input(str(Path.cwd() / "exports-out"), id="out-dir", compact=True)
            yield Button("Export", variant="success", id="go", compact=True)
            yield Static("", id="export-msg")
        yield Footer()

    def on_mount(self) -> None:
        self._kind_changed()

    @on(Select.Changed, "#kind")
    def _kind_changed(self) -> None:
        from exports.api import FIGURE_FORMATS, TABLE_FORMATS

        kind = str(self.query_one("#kind", Select).value)
        names = [(f"{n} — {d[:40]}", n) for k, n, d in self.catalogue if k == kind]
        name = self.query_one("#name", Select)
        name.set_options(names)
        name.disabled = kind == "bundle"
        formats = TABLE_FORMATS if kind == "table" else FIGURE_FORMATS
        if kind == "bundle":
            formats = ("pdf", "svg", "png", "html")
        fmt = self.query_one("#format", Select)
        fmt.set_options([(f, f) for f in formats])
        fmt.value = formats[0]

    @on(Button.Pressed, "#go")
    def action_export(self) -> None:
        kind = str(self.query_one("#kind", Select).value)
        name = self.query_one("#name", Select).value
        fmt = self.query_one("#format", Select).value
        msg = self.query_one("#export-msg", Static)
        if kind != "bundle" and name is Select.NULL:
            msg.update(f"[red]Choose which {kind} to export.[/]")
            return
        if fmt is Select.NULL:
            msg.update("[red]Choose a format.[/]")
            return
        msg.update("exporting…")
        self.run_export(kind, None if kind == "bundle" else str(name), str(fmt),
                        self.query_one("#run-ids", Input).value,
                        self.query_one("#out-dir", Input).value.strip())

    @work(thread=True, exclusive=True)
    def run_export(self, kind: str, name: str | None, fmt: str, ids_text: str,
                   out_dir: str) -> None:
        from exports.api import export
        from exports.errors import ExportError
        from exports.selection import Selection, parse_run_ids

        say = lambda text: self.post_ui(self._say, text)  # noqa: E731
        try:
            if not out_dir:
                raise ExportError("folder: give the folder to write into")
            ids = parse_run_ids(ids_text) if ids_text.strip() else ()
            if not ids:
                raise ExportError("runs: mark runs on the Runs screen or type their ids")
            result = export(self.dash.db_path, fmt=fmt, selection=Selection(run_ids=ids),
                            out_dir=out_dir, table=name if kind == "table" else None,
                            figure=name if kind == "figure" else None, bundle=kind == "bundle")
        except ExportError as exc:
            say(f"[red]Export failed:[/] {escape(str(exc))}")
            return
        except Exception as exc:  # a bug or I/O error in exports: show it, keep running
            say(f"[red]Export failed ({type(exc).__name__}):[/] {escape(str(exc))}")
            return
        lines = [f"[green]Wrote {len(result.files)} file(s):[/]"]
        lines += [f"  {escape(str(p))}" for p in result.files]
        lines += [f"[yellow]{escape(m)}[/]" for m in result.messages]
        say("\n".join(lines))

    def _say(self, text: str) -> None:
        self.query_one("#export-msg", Static).update(text)
