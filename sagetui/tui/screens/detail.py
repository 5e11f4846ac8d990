"""Run detail: config tree, machine, per-class percentiles, plots, series, events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram
from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    Select,
    Static,
    TabbedContent,
    TabPane,
    Tree,
)
from textual_plotext import PlotextPlot

from sagetui.tui import fmt, histo
from sagetui.tui.data import StoreUnavailable
from sagetui.tui.screens.base import WorkerScreen
from store import queries


@dataclass
class RunDetail:
    """What the screen shows: `store.queries.get_run` plus histograms and samples."""

    run: dict[str, Any]
    histograms: dict[tuple[str, str], HdrHistogram]  # whole run, (metric, class)
    samples: list[dict[str, Any]]

def _links(r: dict[str, Any]) -> str:
    """` · rerun of #5 · reruns #12, #14`: the run it reruns and its reruns, if any."""
    out = f" · rerun of #{r['rerun_of']}" if r.get("rerun_of") else ""
    if r.get("reruns"):
        out += " · reruns " + ", ".join(f"#{i}" for i in r["reruns"])
    return out


PCTS = (("p50", "p50"), ("p90", "p90"), ("p95", "p95"), ("p99", "p99"), ("p999", "p99.9"))


class DetailScreen(WorkerScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("m", "monitor", "Live"),
        Binding("e", "export", "Export"),
        Binding("x", "cancel_run", "Cancel run", show=False),
        Binding("R", "rerun", "Rerun"),
    ]
    PALETTE = {"Monitor this run live": ("action_monitor", "If it is running"),
               "Export this run": ("action_export", "Tables/figures for this run"),
               "Rerun this run": ("action_rerun", "Again from its stored config, same seed")}

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.detail: RunDetail | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"run {self.run_id} — loading…", id="headline", classes="statusline")
        with TabbedContent(id="tabs"):
            with TabPane("Summary", id="tab-summary"):
                yield DataTable(id="percentiles", cursor_type="row", zebra_stripes=True)
            with TabPane("Latency", id="tab-latency"):
                yield Select([], id="hist-choice", prompt="metric / class", compact=True)
                with Horizontal(classes="plots"):
                    yield PlotextPlot(id="hist")
                    yield PlotextPlot(id="cdf")
            with TabPane("Series", id="tab-series"):
                with VerticalScroll():
                    yield PlotextPlot(id="rate", classes="series")
                    yield PlotextPlot(id="queues", classes="series")
                    yield PlotextPlot(id="backends", classes="series")
            with TabPane("Pipelines", id="tab-pipelines"):
                yield DataTable(id="pipelines", cursor_type="row", zebra_stripes=True)
            with TabPane("Config", id="tab-config"):
                yield Tree("config", id="config")
            with TabPane("Machine", id="tab-machine"):
                with VerticalScroll():
                    yield Static(id="machine")
            with TabPane("Events", id="tab-events"):
                yield DataTable(id="events", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True)
    def load(self) -> None:
        reader = self.dash.reader
        try:
            run = reader.call(queries.get_run, self.run_id)
            hists = {(m, c): h for m, c, _, _, h in reader.call(queries.histograms, self.run_id)}
            samples = reader.call(queries.samples, self.run_id)
        except (StoreUnavailable, LookupError) as exc:
            self.post_ui(self._failed, str(exc))
            return
        self.post_ui(self._show, RunDetail(run, hists, samples))

    def _failed(self, message: str) -> None:
        self.query_one("#headline", Static).update(f"[red]{escape(message)}[/]")

    def _show(self, d: RunDetail) -> None:
        self.detail = d
        r = d.run
        reason = f" ({escape(r['status_reason'])})" if r["status_reason"] else ""
        exp = f" · {escape(r['experiment'])}" if r.get("experiment") else ""
        self.query_one("#headline", Static).update(
            f"[b]#{r['id']} {escape(r['name'])}[/] · {r['status']}{reason} · {r['mode']}{exp} · "
            f"seed {r['seed']} rep {r['repetition']}{_links(r)}")
        self._fill_percentiles(d)
        fill_pipelines(self.query_one("#pipelines", DataTable),
                       (d.run.get("summary") or {}).get("pipeline"))
        self._fill_config(r.get("config") or {})
        self._fill_machine(d)
        self._fill_events(d)
        options = [(f"{m} / {c}", f"{m}|{c}") for m, c in sorted(d.histograms)]
        select = self.query_one("#hist-choice", Select)
        select.set_options(options)
        if options:
            pick = next((v for _, v in options if v == "ttft|chat"), options[0][1])
            select.value = pick
        self._plot_series(d)

    def _fill_percentiles(self, d: RunDetail) -> None:
        table = self.query_one("#percentiles", DataTable)
        table.clear(columns=True)
        table.add_columns("class", "metric", *(label for _, label in PCTS), "mean", "n")
        summary = d.run.get("summary") or {}
        for cls in sorted(summary, key=lambda c: (c == "all", c)):
            s = summary[cls]
            table.add_row(cls, "issued/done/fail/rej",
                          s["issued"], s["completed"], s["failed"], s["rejected"], "", "", "")
            table.add_row("", "thr r/s · SLO · goodput", fmt.num(s["throughput_rps"]),
                          fmt.pct(s["slo_attainment"]), fmt.num(s["goodput_rps"]), "", "", "", "")
            for name, m in sorted((s.get("metrics") or {}).items()):
                if not isinstance(m, dict):
                    continue
                table.add_row("", f"{name} ms", *(fmt.num(m.get(k), 2) for k, _ in PCTS),
                              fmt.num(m.get("mean"), 2), m.get("count", ""))
        if not summary:
            table.add_row("–", "no summaries yet (the run writes them when it ends)",
                          *([""] * 7))

    def _fill_config(self, config: dict[str, Any]) -> None:
        tree = self.query_one("#config", Tree)
        tree.clear()
        tree.root.set_label(f"resolved config (hash {self.detail.run['config_hash'][:12]})")

        def add(node, value: Any) -> None:
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in items:
                if isinstance(child, dict | list) and child:
                    add(node.add(Text(str(key)), expand=True), child)
                else:  # Text, not markup: values such as "run[policy=fifo]" are literal
                    node.add_leaf(Text(f"{key} = {json.dumps(child)}"))

        add(tree.root, config)
        tree.root.expand()

    def _fill_machine(self, d: RunDetail) -> None:
        r, hw = d.run, d.run.get("hardware")
        lines = [f"[b]software[/] sagetui {r['sagetui_version']} · git {r['git_sha'][:10]}"
                 f"{' (dirty)' if r['git_dirty'] else ''}"]
        lines += [f"  {k}: {v}" for k, v in sorted((r.get("software") or {}).items())]
        if hw is not None:
            gpus = hw.get("gpus") or []
            lines += ["", f"[b]hardware[/] {hw['hostname']} · {hw['os']}",
                      f"  cpu: {hw['cpu_model']} ({hw['cpu_cores_physical']} cores / "
                      f"{hw['cpu_cores_logical']} threads)",
                      f"  memory: {hw['memory_bytes'] / 2**30:.1f} GiB",
                      f"  gpus: {', '.join(g.get('name', '?') for g in gpus) or 'none'}",
                      f"  fingerprint: {hw['fingerprint'][:16]}"]
        lines += ["", "[b]backends[/]"]
        for b in r.get("backends") or []:
            lines.append(f"  {b['name']}: {b['engine_kind']} {b['model']} on {b['device']} "
                         f"{b['device_kind']} · max conc {b['max_concurrency']}"
                         f"{' · ' + b['engine_version'] if b['engine_version'] else ''}"
                         f"{' · ' + b['url'] if b['url'] else ''}")
        lines += ["", f"started {r['started'] or '–'} · ended {r['ended'] or '–'} · "
                      f"host {r['host']}"]
        self.query_one("#machine", Static).update(Text.from_markup("\n".join(
            escape(line) if not line.startswith("[b]") else line for line in lines)))

    def _fill_events(self, d: RunDetail) -> None:
        table = self.query_one("#events", DataTable)
        table.clear(columns=True)
        table.add_columns("t (s)", "kind", "subject", "message")
        events = d.run.get("events") or []
        for e in events:
            table.add_row(f"{e['t_s']:.1f}", e["kind"], e["subject"], Text(e["message"]))
        if not events:
            table.add_row("", "", "", "no events")

    @on(Select.Changed, "#hist-choice")
    def _plot_latency(self, event: Select.Changed) -> None:
        if self.detail is None or event.value is Select.NULL:
            return
        metric, cls = str(event.value).split("|")
        h = self.detail.histograms[(metric, cls)]
        xs, counts = histo.bins_ms(h)
        plot = self.query_one("#hist", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.bar(xs, counts, width=0.9)
        if xs:
            ticks = xs[:: max(len(xs) // 4, 1)]
            plt.xticks(ticks, [f"{t:.3g}" for t in ticks])
        plt.title(f"{metric} {cls} histogram")
        plt.xlabel("ms")
        plot.refresh()
        cdf = self.query_one("#cdf", PlotextPlot)
        cx, cy = histo.cdf_ms(h)
        plt = cdf.plt
        plt.clear_data()
        plt.clear_figure()
        plt.plot(cx, cy, marker="braille")
        plt.title(f"{metric} {cls} CDF")
        plt.xlabel("ms")
        plt.ylim(0, 1)
        cdf.refresh()

    def _plot_series(self, d: RunDetail) -> None:
        t = [s["t_s"] for s in d.samples]
        rate = self.query_one("#rate", PlotextPlot)
        plt = rate.plt
        plt.clear_data()
        plt.title("offered vs achieved (req/s)")
        if t:
            plt.plot(t, [s["offered_rps"] for s in d.samples], label="offered", marker="braille")
            plt.plot(t, [s["achieved_rps"] for s in d.samples], label="achieved",
                     marker="braille")
        rate.refresh()
        queues = self.query_one("#queues", PlotextPlot)
        plt = queues.plt
        plt.clear_data()
        plt.title("queue depth per class")
        depth = [s.get("queue_depth") or {} for s in d.samples]
        for cls in sorted({c for q in depth for c in q}):
            plt.plot(t, [q.get(cls, 0) for q in depth], label=cls, marker="braille")
        queues.refresh()
        backs = self.query_one("#backends", PlotextPlot)
        plt = backs.plt
        plt.clear_data()
        plt.title("per-backend in-flight and KV use (%)")
        per = [s.get("backends") or {} for s in d.samples]
        for name in sorted({n for b in per for n in b}):
            plt.plot(t, [b.get(name, {}).get("in_flight", 0) for b in per],
                     label=f"{name} in-flight", marker="braille")
            plt.plot(t, [100 * (b.get(name, {}).get("kv_use") or 0) for b in per],
                     label=f"{name} kv%", marker="braille")
        backs.refresh()

    def action_monitor(self) -> None:
        if self.detail is not None and self.detail.run["status"] == "running":
            self.app.open_live(self.run_id)
        else:
            self.notify("This run is not running; the live monitor follows running runs.",
                        severity="warning")

    def action_export(self) -> None:
        self.app.open_export([self.run_id])

    def action_cancel_run(self) -> None:
        self.app.confirm_cancel(self.run_id)


    def action_rerun(self) -> None:
        status = self.detail.run["status"] if self.detail else None
        if status in (None, "created", "running"):
            self.notify("Only a finished run can be rerun.", severity="warning")
            return
        self.app.confirm_rerun(self.run_id)


def fill_pipelines(table: DataTable, summary: dict | None) -> None:
    """A pipeline run's breakdown (summary extra.pipelines, docs/pipelines.md): per kind
    its E2E percentiles, deadline attainment and goodput, then each stage's mean and
    p99 with a bar of its share of the kind's summed stage means (the stacked view)."""
    table.clear(columns=True)
    table.add_columns("pipeline", "stage", "mean ms", "p99 ms", "share", "")
    kinds = ((summary or {}).get("extra") or {}).get("pipelines") or {}
    for kind, k in sorted(kinds.items()):
        table.add_row(kind, f"{k['completed']}/{k['issued']} jobs",
                      f"p50 {fmt.num(k['e2e_p50_ms'], 0)}", f"p99 {fmt.num(k['e2e_p99_ms'], 0)}",
                      f"met {fmt.pct(k['deadline_attainment'])}",
                      f"goodput {fmt.num(k['goodput_rps'], 2)}/s")
        total = sum(s["mean_ms"] for s in k["stages"].values()) or 1.0
        for name, st in k["stages"].items():
            share = st["mean_ms"] / total
            table.add_row("", name, fmt.num(st["mean_ms"], 1), fmt.num(st["p99_ms"], 1),
                          fmt.pct(share), fmt.bar(share, 20))
    if not kinds:
        table.add_row("–", "no pipeline jobs in this run", "", "", "", "")
