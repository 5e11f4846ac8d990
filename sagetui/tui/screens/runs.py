"""The Runs screen: every run in the store, sortable, filterable, paged.

Why paged: a store holds tens of thousands of runs; the full list is read and
filtered in a worker thread, and the table only ever holds one page, so the
screen opens in well under a second and stays responsive.
"""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static

from sagetui.tui import fmt, runfilter
from sagetui.tui.data import RunRow, StoreUnavailable, list_runs, store_fingerprint
from sagetui.tui.screens.base import WorkerScreen

PAGE_SIZE = 100
WATCH_INTERVAL_S = 2.0


_FORMAT = {
    "offered_rps": fmt.num, "throughput_rps": fmt.num, "chat_ttft_p99_ms": fmt.num,
    "slo_attainment": fmt.pct, "started": fmt.when, "tags": ",".join,
}


_NUMERIC = {"id", "offered_rps", "throughput_rps", "chat_ttft_p99_ms", "slo_attainment",
            "backends"}


def _cells(row: RunRow, marked: bool) -> list[Text]:
    """Cells as rich Text: no markup parsing per cell (names are not markup either)."""
    cells = [Text("●" if marked else " ")]
    for key, _, width in runfilter.COLUMNS:
        value = getattr(row, key)
        value = _FORMAT[key](value) if key in _FORMAT else value
        if key == "name":
            value = fmt.middle(value, width)
        cells.append(Text(str(value), justify="right" if key in _NUMERIC else "left",
                          no_wrap=True, overflow="ellipsis"))
    return cells


class RunsScreen(WorkerScreen):
    """Start screen: the table of runs, or a first-steps page for an empty store."""

    AUTO_FOCUS = "#runs"  # single-key bindings must not land in the filter box

    BINDINGS = [
        Binding("enter", "open_run", "Details", show=False),
        Binding("space", "toggle_mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("slash", "focus_filter", "Filter"),
        Binding("m", "monitor", "Live"),
        Binding("l", "app.launch", "Launch"),
        Binding("e", "export", "Export"),
        Binding("x", "cancel_run", "Cancel run", show=False),
        Binding("R", "rerun", "Rerun", show=False),
        Binding("s", "sort_cursor", "Sort", show=False),
        Binding("right_square_bracket", "page(1)", "Next page", show=False),
        Binding("left_square_bracket", "page(-1)", "Prev page", show=False),
        Binding("r", "reload", "Reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[RunRow] = []
        self.shown: list[RunRow] = []
        self.marked: set[int] = set()
        self.page = 0
        self.sort_key = "id"
        self.sort_reverse = True
        self._fingerprint: tuple | None = None
        self._loaded_once = False
        self.partial = False  # only the newest page is loaded so far
        self._drawn: tuple | None = None  # (rows, marks) on the table now
        self._page_ids: list[int] = []
        self._generation = 0  # of filter/sort requests; only the latest is drawn

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: words, key=value (status=running, workload.rate>=50)",
                    id="filter")
        table = DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="first-steps")
        yield Static("loading runs…", id="status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.add_column(" ", key="mark", width=1)
        for key, label, width in runfilter.COLUMNS:
            table.add_column(label, key=key, width=width)
        self.query_one("#first-steps").display = False
        table.focus()
        self.load()

    # -- loading --------------------------------------------------------------

    @work(thread=True, exclusive=True, group="runs-load")
    def load(self, first_page: bool = True) -> None:
        reader = self.dash.reader
        try:
            fingerprint = store_fingerprint(reader) if reader.exists() else None
            if first_page and not self._loaded_once and fingerprint and (
                    fingerprint[0][0] > PAGE_SIZE):
                # Paint the newest page first; the full list (for sort, filter and
                # paging) is read once that page is on screen.
                first = list_runs(reader, limit=PAGE_SIZE)
                self.post_ui(self._loaded, first, None, True)
                return
            rows = list_runs(reader) if reader.exists() else []
        except StoreUnavailable as exc:
            self.post_ui(self._failed, str(exc))
            return
        self.post_ui(self._loaded, rows, fingerprint)

    def _loaded(self, rows: list[RunRow], fingerprint: tuple | None,
                partial: bool = False) -> None:
        self.rows = rows
        self.partial = partial
        if partial:
            self._refilter()
            self.call_after_refresh(self.load, False)
            return
        self._fingerprint = fingerprint
        known = {r.id for r in rows}
        self.marked &= known
        first = not self._loaded_once
        self._loaded_once = True
        self._refilter(keep_page=True)
        if first:
            self.set_timer(WATCH_INTERVAL_S, self._watch)

    def _failed(self, message: str) -> None:
        message = escape(message)
        self._show_first_steps(f"[b red]Cannot open the run store[/]\n\n{message}\n\n"
                               "The dashboard keeps trying; fix the file or start it with "
                               "`sagetui --db OTHER.db`.")
        self.query_one("#status", Static).update(f"[red]{message}[/]")
        if not self._loaded_once:
            self._loaded_once = True
            self.set_timer(WATCH_INTERVAL_S, self._watch)

    @work(thread=True, exclusive=True, group="runs-watch")
    def _watch(self) -> None:
        """Re-query only when the store changed; the next check is armed afterwards."""
        reader = self.dash.reader
        try:
            fingerprint = store_fingerprint(reader) if reader.exists() else None
            changed = fingerprint != self._fingerprint
            rows = list_runs(reader) if changed and fingerprint is not None else None
        except StoreUnavailable as exc:
            self.post_ui(self._failed, str(exc))
            return
        finally:
            self.post_ui(self.set_timer, WATCH_INTERVAL_S, self._watch)
        if changed:
            self.post_ui(self._loaded, rows or [], fingerprint)

    # -- filtering, sorting, paging -------------------------------------------

    @on(Input.Changed, "#filter")
    def _filter_changed(self) -> None:
        self._refilter()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.query_one("#runs", DataTable).focus()

    def _refilter(self, keep_page: bool = False) -> None:
        text = self.query_one("#filter", Input).value
        try:
            terms = runfilter.parse(text)
        except runfilter.FilterError as exc:
            self.query_one("#status", Static).update(f"[red]{escape(str(exc))}[/]")
            return
        self._generation += 1
        self._filter_sort(self._generation, self.rows, terms, self.sort_key, self.sort_reverse,
                          keep_page)

    @work(thread=True, group="runs-filter")
    def _filter_sort(self, generation: int, rows: list[RunRow], terms: list, key: str,
                     reverse: bool, keep_page: bool) -> None:
        """Filter and sort off the UI thread: a config filter parses up to 10,000 configs."""
        shown = runfilter.sort_rows(runfilter.apply(rows, terms), key, reverse)
        self.post_ui(self._filtered, generation, shown, keep_page)

    def _filtered(self, generation: int, shown: list[RunRow], keep_page: bool) -> None:
        if generation != self._generation:  # the user typed on; a newer result follows
            return
        self.shown = shown
        if not keep_page:
            self.page = 0
        self.page = min(self.page, max(self.pages - 1, 0))
        self._render_page()

    @property
    def pages(self) -> int:
        return max((len(self.shown) + PAGE_SIZE - 1) // PAGE_SIZE, 1)

    def _render_page(self) -> None:
        table = self.query_one("#runs", DataTable)
        start = self.page * PAGE_SIZE
        page_rows = self.shown[start:start + PAGE_SIZE]
        drawn = (page_rows, frozenset(self.marked))
        if drawn != self._drawn:  # a reload that changed nothing on this page redraws nothing
            self._drawn = drawn
            cursor = table.cursor_row
            table.clear()
            table.add_rows(_cells(r, r.id in self.marked) for r in page_rows)
            # Row index -> run id for this page (the table itself holds only text).
            self._page_ids = [r.id for r in page_rows]
            if page_rows:
                table.move_cursor(row=min(cursor, len(page_rows) - 1))
        empty_store = not self.rows
        if empty_store:
            self._show_first_steps(self._first_steps_text())
        else:
            panel = self.query_one("#first-steps", Static)
            refocus = panel.has_focus
            panel.display = False
            table.display = True
            if refocus:
                table.focus()
        self._render_status()

    def _first_steps_text(self) -> str:
        where = self.dash.reader.path
        missing = "" if self.dash.reader.exists() else f"There is no store at {where} yet.\n\n"
        return (f"[b]Welcome to sagetui[/]\n\n{missing}No runs yet. To see the dashboard at work:\n\n"
                "  • in another terminal: [b]sagetui demo[/] — a short simulated suite\n"
                "    (no GPU needed); its runs appear here live;\n"
                "  • or press [b]l[/] to launch a built-in suite or a TOML config from here;\n"
                "  • [b]m[/] watches a running run, [b]?[/] shows every key.\n\n"
                f"Store: {where}")

    def _show_first_steps(self, text: str) -> None:
        panel = self.query_one("#first-steps", Static)
        panel.update(text)
        panel.display = True
        table = self.query_one("#runs", DataTable)
        table.display = False
        panel.can_focus = True  # keep keys off the filter box while there is nothing to filter
        if not self.query_one("#filter", Input).value:  # not while the user is typing a filter
            panel.focus()

    def action_page(self, step: int) -> None:
        new = min(max(self.page + step, 0), self.pages - 1)
        if new != self.page:
            self.page = new
            self._render_page()

    def sort_by(self, key: str) -> None:
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_key, self.sort_reverse = key, False
        self._refilter()

    @on(DataTable.HeaderSelected, "#runs")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key != "mark":
            self.sort_by(key)

    def action_sort_cursor(self) -> None:
        table = self.query_one("#runs", DataTable)
        keys = ["mark"] + [k for k, _, _ in runfilter.COLUMNS]
        key = keys[table.cursor_column] if table.cursor_column < len(keys) else "id"
        self.sort_by("id" if key == "mark" else key)

    def action_reload(self) -> None:
        self.load()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    # -- actions on runs ------------------------------------------------------

    def cursor_run(self) -> RunRow | None:
        table = self.query_one("#runs", DataTable)
        ids = self._page_ids
        if not ids or table.cursor_row >= len(ids):
            return None
        rid = ids[table.cursor_row]
        return next((r for r in self.shown if r.id == rid), None)

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self) -> None:
        self.action_open_run()

    def action_open_run(self) -> None:
        row = self.cursor_run()
        if row is not None:
            self.app.open_detail(row.id)

    def action_toggle_mark(self) -> None:
        row = self.cursor_run()
        if row is None:
            return
        self.marked.symmetric_difference_update({row.id})
        table = self.query_one("#runs", DataTable)
        cursor = table.cursor_row
        table.update_cell_at((cursor, 0), Text("●" if row.id in self.marked else " "))
        self._drawn = (self._drawn[0], frozenset(self.marked)) if self._drawn else None
        table.move_cursor(row=cursor + 1)
        self._render_status()

    def _render_status(self) -> None:
        arrow = "↓" if self.sort_reverse else "↑"
        page = f" · page {self.page + 1}/{self.pages} ([ ])" if self.pages > 1 else ""
        marked = f" · {len(self.marked)} marked" if self.marked else ""
        total = "loading all runs…" if self.partial else f"{len(self.rows)} runs"
        self.query_one("#status", Static).update(
            f"{len(self.shown)} of {total} · sort {self.sort_key}{arrow}"
            f"{page}{marked} · ? help")

    def action_compare(self) -> None:
        ids = sorted(self.marked)
        if len(ids) < 2:
            self.notify("Mark two or more runs with space, then press c.", severity="warning")
            return
        self.app.open_compare(ids)

    def action_monitor(self) -> None:
        row = self.cursor_run()
        self.app.open_live(row.id if row is not None and row.status == "running" else None)

    def action_export(self) -> None:
        ids = sorted(self.marked)
        if not ids:
            row = self.cursor_run()
            ids = [row.id] if row is not None else []
        self.app.open_export(ids)

    def action_cancel_run(self) -> None:
        row = self.cursor_run()
        if row is None or row.status != "running":
            self.notify("Put the cursor on a running run to cancel it.", severity="warning")
            return
        self.app.confirm_cancel(row.id)

    def action_rerun(self) -> None:
        row = self.cursor_run()
        if row is None or row.status in ("created", "running"):
            self.notify("Put the cursor on a finished run to rerun it.", severity="warning")
            return
        self.app.confirm_rerun(row.id)
