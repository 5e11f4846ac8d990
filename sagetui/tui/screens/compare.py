"""Compare: marked runs side by side, relative change, significance, overlaid CDFs.

The numbers and the significance test come from `store.queries.compare` (one
definition for the CLI, the exports and this screen): marks are asv-style,
`+` significantly higher, `-` significantly lower, `~` no significant change.
"""

from __future__ import annotations

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Select, Static
from textual_plotext import PlotextPlot

from sagetui.tui import fmt, histo
from sagetui.tui.data import StoreUnavailable
from sagetui.tui.screens.base import WorkerScreen
from store import queries


class CompareScreen(WorkerScreen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"),
                Binding("e", "export", "Export")]
    PALETTE = {"Export the compared runs": ("action_export", "Tables/figures for these runs")}

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = run_ids

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"comparing runs {', '.join(map(str, self.run_ids))} "
                     f"(baseline #{self.run_ids[0]}) — loading…", id="cmp-head",
                     classes="statusline")
        yield DataTable(id="cmp", cursor_type="row", zebra_stripes=True)
        yield Select([], id="cdf-choice", prompt="CDF of metric / class", compact=True)
        yield PlotextPlot(id="cmp-cdf")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True)
    def load(self) -> None:
        reader = self.dash.reader
        try:
            result = reader.call(queries.compare, self.run_ids)
        except (StoreUnavailable, LookupError) as exc:
            self.post_ui(self._failed, str(exc))
            return
        self.post_ui(self._show, result)

    def _failed(self, message: str) -> None:
        self.query_one("#cmp-head", Static).update(f"[red]{escape(message)}[/]")

    def _show(self, result: dict) -> None:
        table = self.query_one("#cmp", DataTable)
        table.add_columns("class", "metric", *(f"#{r}" for r in self.run_ids))
        choices = []
        for row in result["rows"]:
            cells = [fmt.num(row["values"][0], 2)]
            for value, change, mark in zip(row["values"][1:], row["changes"], row["marks"],
                                           strict=True):
                cells.append(f"{fmt.num(value, 2)} {fmt.change(change)} {mark}".rstrip())
            table.add_row(row["class"], row["metric"], *cells)
            metric = row["metric"].split(".")[0]
            if "." in row["metric"] and (metric, row["class"]) not in choices:
                choices.append((metric, row["class"]))
        groups = result.get("groups") or []
        reps = " (means over repetitions)" if any(len(g) > 1 for g in groups) else ""
        self.query_one("#cmp-head", Static).update(
            f"baseline #{self.run_ids[0]}{reps} · change vs baseline · "
            "+ higher / - lower (p<0.05) · ~ no significant change")
        select = self.query_one("#cdf-choice", Select)
        select.set_options([(f"{m} / {c}", f"{m}|{c}") for m, c in choices])
        if choices:
            pick = ("ttft", "chat") if ("ttft", "chat") in choices else choices[0]
            select.value = f"{pick[0]}|{pick[1]}"

    @on(Select.Changed, "#cdf-choice")
    def _choice(self, event: Select.Changed) -> None:
        if event.value is not Select.NULL:
            metric, cls = str(event.value).split("|")
            self.load_cdfs(metric, cls)

    @work(thread=True, exclusive=True, group="cdf")
    def load_cdfs(self, metric: str, cls: str) -> None:
        reader = self.dash.reader
        curves = []
        try:
            for rid in self.run_ids:
                found = reader.call(queries.histograms, rid, metric=metric, cls=cls)
                if found:
                    curves.append((rid, histo.cdf_ms(found[0][-1])))
        except (StoreUnavailable, LookupError) as exc:
            self.post_ui(self._failed, str(exc))
            return
        self.post_ui(self._plot, metric, cls, curves)

    def _plot(self, metric: str, cls: str, curves: list) -> None:
        plot = self.query_one("#cmp-cdf", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.title(f"{metric} {cls} CDF")
        plt.xlabel("ms")
        for rid, (xs, ys) in curves:
            plt.plot(xs, ys, label=f"#{rid}", marker="braille")
        plot.refresh()

    def action_export(self) -> None:
        self.app.open_export(self.run_ids)
