"""Live monitor: follows one `running` run by reading the store (the store is the bus).

Why a self-re-arming poll: each refresh reads only the samples and events
newer than the last ones shown, in a worker thread; the next read is armed
with a timer only when the previous result has been drawn, so reads never
overlap and a slow store slows the refresh rather than piling up work.
Works for runs started here or by `sagetui run` in another terminal.
"""

from __future__ import annotations

import time
from collections import deque

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    Label,
    ProgressBar,
    Sparkline,
    Static,
)

from sagetui.tui import fmt
from sagetui.tui.data import (
    LiveState,
    StoreUnavailable,
    live_state,
    parse_json,
    running_runs,
)
from sagetui.tui.screens.base import WorkerScreen
from store.schema import TERMINAL_STATUSES

HISTORY = 120  # samples kept for the sparkline (seconds)
IDLE_POLL_S = 1.0  # when no run is running yet: look for one this often


class LiveScreen(WorkerScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("x", "cancel_run", "Cancel run"),
        Binding("l", "app.launch", "Launch"),
        Binding("enter", "details", "Details"),
    ]
    PALETTE = {"Cancel the monitored run": ("action_cancel_run", "SIGTERM, asks first"),
               "Details of the monitored run": ("action_details", "Run detail screen")}

    def __init__(self, run_id: int | None = None, planned_runs: int | None = None) -> None:
        """`run_id` None: watch the newest running run, and whatever runs after it.
        `planned_runs`: how many runs the experiment will have, when the caller knows
        (the Launch screen does); the store only knows the runs created so far."""
        super().__init__()
        self.run_id = run_id
        self.follow_next = run_id is None
        self.planned_runs = planned_runs
        self.experiment_id: int | None = None  # set while following a sweep to its next point
        self.last_sample_id = 0
        self.last_event_id = 0
        self.samples: deque = deque(maxlen=HISTORY)
        # Summed over the samples seen: errors and slo_met are per second in a
        # sample, `done` is the run's running total (loadgen.metrics.second_sample).
        self.totals = {"errors": 0, "slo_met": 0, "done": 0}
        self.polls = 0  # refreshes drawn (the benchmark reads this)
        self.status = ""
        self._poll_started = 0.0
        self._latency_keys: tuple[str, ...] = ()  # latency columns on screen

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("looking for a running run…", id="live-head", classes="statusline")
        with Horizontal(classes="barrow"):
            yield Label("time", classes="barlabel")
            yield ProgressBar(total=None, show_eta=False, id="time-bar")
        with Horizontal(classes="barrow"):
            yield Label("requests", classes="barlabel")
            yield ProgressBar(total=None, show_eta=False, id="req-bar")
        yield Static("", id="rates")
        yield Label("achieved req/s, last 2 min", id="spark-label")
        yield Sparkline([], id="spark")
        yield DataTable(id="latency", cursor_type="none", show_cursor=False)
        yield Static("", id="bars")
        yield Static("", id="live-events")
        yield Footer()

    def on_mount(self) -> None:
        self.poll()

    # -- the poll loop --------------------------------------------------------

    def poll(self) -> None:
        """One refresh: read in a worker; `_apply` arms the next one when it is drawn."""
        self._poll_started = time.monotonic()
        self._read()

    def _rearm(self, period_s: float) -> None:
        """Next poll `period_s` after this one began (never before this one is drawn)."""
        elapsed = time.monotonic() - self._poll_started
        self.set_timer(max(period_s - elapsed, 0.02), self.poll)

    @work(thread=True, group="live-poll")
    def _read(self) -> None:
        # Not `exclusive`: cancelling a read would drop its re-arm and stop the loop;
        # the chain itself guarantees one read at a time.
        reader = self.dash.reader
        try:
            if self.run_id is None:
                running = running_runs(reader, self.experiment_id) if reader.exists() else []
                if not running:
                    self.post_ui(self._idle, None)
                    return
                self.post_ui(self._follow, running[0][0])
            state = live_state(reader, self.run_id, self.last_sample_id, self.last_event_id)
        except (StoreUnavailable, LookupError) as exc:
            self.post_ui(self._idle, str(exc))
            return
        except Exception as exc:  # keep the loop alive whatever the store returned
            self.post_ui(self._idle, f"{type(exc).__name__}: {exc}")
            return
        self.post_ui(self._apply, state)

    def _follow(self, run_id: int) -> None:
        self.run_id = run_id
        self.last_sample_id = self.last_event_id = 0
        self.samples.clear()
        self.totals = dict.fromkeys(self.totals, 0)

    def _idle(self, error: str | None) -> None:
        head = self.query_one("#live-head", Static)
        if error:
            head.update(f"[red]{escape(error)}[/]")
        elif self.experiment_id is not None:
            head.update("This point of the sweep is done; waiting for the next one to start…")
        else:
            head.update("No run is running. Press [b]l[/] to launch one, or start "
                        "`sagetui run CONFIG` elsewhere; this screen attaches to it.")
        self._rearm(IDLE_POLL_S)

    def _apply(self, state: LiveState) -> None:
        self.polls += 1
        run = state.run
        self.status = run.status
        for s in state.new_samples:
            self.samples.append(s)
            self.last_sample_id = s.id
            self.totals["errors"] += s.errors
            self.totals["slo_met"] += s.slo_met
            self.totals["done"] = s.done
        for e in state.events:
            self.last_event_id = e.id
        try:
            self._draw(state)
        except (TypeError, ValueError, AttributeError) as exc:  # odd sample shapes
            self.query_one("#live-head", Static).update(
                f"[red]run {run.id}: cannot show its samples ({escape(str(exc))})[/]")
        if run.status in TERMINAL_STATUSES:
            more = self.planned_runs is not None and state.sweep_index < self.planned_runs
            if self.follow_next or more:  # watch what runs next (a sweep's next point)
                self.experiment_id = None if self.follow_next else run.experiment_id
                self.run_id = None
                self._rearm(IDLE_POLL_S)
            return
        self._rearm(self.app.live_interval_s)

    # -- drawing ----------------------------------------------------------------

    def _draw(self, state: LiveState) -> None:
        run = state.run
        cfg = parse_json(run.config_json, dict)
        policy = (cfg.get("control_plane") or {}).get("policy", "")
        planned = self.planned_runs
        if planned and planned > 1:
            sweep = f" · run {state.sweep_index}/{planned} of the sweep"
        elif state.sweep_runs > 1:
            sweep = f" · run {state.sweep_index} of the sweep ({state.sweep_done} done)"
        else:
            sweep = ""
        color = {"running": "green", "completed": "blue"}.get(run.status, "red")
        self.query_one("#live-head", Static).update(
            f"[b]#{run.id} {escape(run.name)}[/] · [{color}]{run.status}[/] · {run.mode} · "
            f"{escape(str(policy))}{sweep}")
        last = self.samples[-1] if self.samples else None
        planned_s = run.warmup_s + run.duration_s
        t_now = last.t_s + 1 if last else 0.0
        time_bar = self.query_one("#time-bar", ProgressBar)
        time_bar.update(total=planned_s or None, progress=min(t_now, planned_s or t_now))
        done = max(run.requests_done, self.totals["done"])
        self.query_one("#req-bar", ProgressBar).update(
            total=run.requests_planned or None, progress=min(done, run.requests_planned or done))
        slo = self.totals["slo_met"] / self.totals["done"] if self.totals["done"] else None
        offered = last.offered_rps if last else None
        achieved = last.achieved_rps if last else None
        self.query_one("#rates", Static).update(
            f"t {t_now:.0f}/{planned_s:.0f} s · req {fmt.requests(done, run.requests_planned)} · "
            f"offered {fmt.num(offered)} · achieved {fmt.num(achieved)} r/s · "
            f"in-flight {last.in_flight if last else 0} · SLO {fmt.pct(slo)} · "
            f"errors {self.totals['errors']}")
        self.query_one("#spark", Sparkline).data = [s.achieved_rps for s in self.samples]
        self._draw_latency(last)
        self._draw_bars(last, state)
        if state.events:
            lines = [f"{e.t_s:6.1f}s {e.kind} {e.subject} {e.message}" for e in state.events[-3:]]
            self.query_one("#live-events", Static).update(Text("\n".join(lines)))

    def _draw_latency(self, last) -> None:
        """Rolling percentiles per class: the columns are the ones the run writes."""
        table = self.query_one("#latency", DataTable)
        latency = parse_json(last.latency_json, dict) if last else {}
        queues = parse_json(last.queue_depth_json, dict) if last else {}
        written = {key for per in latency.values() if isinstance(per, dict) for key in per}
        keys = tuple(f"{m}_{p}" for m in ("ttft", "e2e") for p in ("p50", "p95", "p99")
                     if f"{m}_{p}" in written) or ("ttft_p50", "ttft_p99", "e2e_p50", "e2e_p99")
        if keys != self._latency_keys:
            self._latency_keys = keys
            table.clear(columns=True)
            table.add_columns("class", *(k.replace("_", " ").upper().replace("P", "p")
                                         for k in keys), "queue")
        table.clear()
        for cls in sorted(set(latency) | set(queues)):
            lat = latency.get(cls) or {}
            table.add_row(Text(cls), *(fmt.num(lat.get(k)) for k in keys), queues.get(cls, 0))

    def _draw_bars(self, last, state: LiveState) -> None:
        """One bar per backend (utilization, else in-flight over its limit); host CPU."""
        per = parse_json(last.backends_json, dict) if last else {}
        limits = {b.name: b.max_concurrency for b in state.backends}
        text = Text()
        host = per.get("_host") or {}
        if isinstance(host, dict) and host.get("cpu_percent") is not None:
            cpu = host["cpu_percent"] / 100
            text.append(f"{'host CPU':<10} {fmt.bar(cpu, 20)} {fmt.pct(cpu):>6}\n")
        for name in sorted(n for n in set(per) | set(limits) if not n.startswith("_")):
            b = per.get(name) or {}
            util = b.get("util")
            if util is None and limits.get(name):
                util = (b.get("in_flight") or b.get("running") or 0) / limits[name]
            kv = b.get("kv_use")
            text.append(f"{name[:10]:<10} {fmt.bar(util or 0.0, 20)} {fmt.pct(util):>6} "
                        f"run {b.get('running', 0)} wait {b.get('waiting', 0)}"
                        f"{' kv ' + fmt.pct(kv) if kv is not None else ''}")
            if b.get("up") is False:
                text.append(" DOWN", style="bold red")
            text.append("\n")
        text.rstrip()
        self.query_one("#bars", Static).update(text)

    # -- actions --------------------------------------------------------------

    def action_cancel_run(self) -> None:
        if self.run_id is None or self.status != "running":
            self.notify("No running run to cancel here.", severity="warning")
            return
        self.app.confirm_cancel(self.run_id)

    def action_details(self) -> None:
        if self.run_id is not None:
            self.app.open_detail(self.run_id)
