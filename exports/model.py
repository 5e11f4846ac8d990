"""Typed views of store rows, so tables and figures never touch SQL.

Why: the store's columns are JSON strings and foreign keys; tables want "chat
TTFT p99 of run 7" and "the backends of run 7". Everything that reads the
database for an export goes through `load_runs`, `load_histograms` and
`load_samples`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from exports.errors import ExportError
from exports.selection import Selection
from store import Store, StoreError, export_rows, queries
from store.schema import Backend, Experiment, Hardware, Run, Summary


@dataclass(frozen=True)
class BackendView:
    name: str
    preset: str  # the simulator preset from the run config ("" for real engines)
    role: str
    engine_kind: str
    device: str
    device_kind: str
    model: str
    engine_version: str
    price_per_hour: float
    params: str  # params_json as stored: compared as text, never interpreted
    launch_args: str  # launch_args_json as stored


@dataclass(frozen=True)
class SummaryView:
    """One request class of one run; latencies in ms."""

    request_class: str
    issued: int
    completed: int
    failed: int
    rejected: int
    throughput_rps: float
    throughput_tok_s: float
    slo_attainment: float | None
    goodput_rps: float
    target_rate_rps: float | None
    metrics: dict[str, dict[str, float]]
    extra: dict[str, Any]

    def latency(self, metric: str, stat: str) -> float | None:
        """`metric`'s `stat` (p50, p95, p99, mean...) in ms, or None when not recorded."""
        value = self.metrics.get(metric, {}).get(stat)
        return None if value is None else float(value)


@dataclass(frozen=True)
class HardwareView:
    fingerprint: str
    cpu_model: str
    cpu_cores_physical: int
    cpu_cores_logical: int
    memory_bytes: int
    os: str
    gpus: list[dict[str, Any]]


@dataclass(frozen=True)
class RunView:
    id: int
    name: str
    experiment: str
    suite: str | None
    experiment_spec: str  # the TOML the experiment was started from (suites: the suite file)
    part: str  # `run.part` of the config: the suite part this run belongs to ("" outside suites)
    mode: str
    status: str
    config: dict[str, Any]
    config_hash: str
    seed: int
    repetition: int
    sagetui_version: str
    git_sha: str
    software: dict[str, Any]
    hardware: HardwareView | None
    duration_s: float
    warmup_s: float
    backends: tuple[BackendView, ...]
    summaries: dict[str, SummaryView] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """A section of the resolved config (`run`, `workload`, `control_plane`)."""
        value = self.config.get(name, {})
        return value if isinstance(value, dict) else {}

    def summary(self, cls: str) -> SummaryView | None:
        return self.summaries.get(cls)

    @property
    def offered_rate(self) -> float | None:
        """Offered load in req/s: the summary's target rate, else the workload's rate."""
        s = self.summaries.get("all")
        if s is not None and s.target_rate_rps is not None:
            return s.target_rate_rps
        rate = self.section("workload").get("rate")
        return float(rate) if isinstance(rate, int | float) else None

    @property
    def capacity_rps(self) -> float | None:
        """The configuration's probed capacity (`run.capacity_rps`, relative-load suites)."""
        value = self.section("run").get("capacity_rps")
        return float(value) if isinstance(value, int | float) and value > 0 else None

    @property
    def load_fraction(self) -> float | None:
        """Offered load as × capacity: `run.load_fraction`, else offered rate / capacity;
        None when the run carries no capacity."""
        value = self.section("run").get("load_fraction")
        if isinstance(value, int | float) and self.capacity_rps is not None:
            return float(value)
        rate, cap = self.offered_rate, self.capacity_rps
        return rate / cap if rate is not None and cap is not None else None

    @property
    def n_backends(self) -> int:
        cfg = self.config.get("backends")
        return len(cfg) if isinstance(cfg, list) and cfg else len(self.backends)


def _loads(text: str | None, what: str, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportError(f"store column {what} is not valid JSON: {exc}") from exc


def select_run_ids(store: Store, selection: Selection) -> list[int]:
    """Ids of the completed, non-deleted runs the selection names (store.queries does the filtering).

    Runs named explicitly by id that are missing or not completed are an error, not skipped.
    """
    where = list(selection.where)
    try:
        if selection.run_ids:
            found = export_rows.live_run_statuses(store, list(selection.run_ids))
            missing = sorted(set(selection.run_ids) - set(found))
            if missing:
                raise ExportError(f"--runs: no run with id {', '.join(map(str, missing))}")
            bad = [f"{i} ({st})" for i, st in sorted(found.items()) if st != "completed"]
            if bad:
                raise ExportError(f"--runs: runs not completed: {', '.join(bad)}")
            ids = sorted(found)
            if where or selection.suite:
                keep = {r["id"] for r in queries.list_runs(store, where=where, suite=selection.suite)}
                ids = [i for i in ids if i in keep]
        else:
            exp_ids: list[int | None] = [None]
            if selection.experiment:
                exp_ids = list(_experiment_ids(store, selection.experiment))
            ids = sorted({r["id"] for e in exp_ids for r in queries.list_runs(
                store, status="completed", suite=selection.suite, where=where, experiment_id=e)})
    except StoreError as exc:
        msg = str(exc)
        raise ExportError("--" + msg if msg.startswith("where:") else msg) from exc
    if selection.experiment and selection.run_ids:
        allowed = {i for e in _experiment_ids(store, selection.experiment)
                   for i in (r["id"] for r in queries.list_runs(store, experiment_id=e))}
        ids = [i for i in ids if i in allowed]
    if not ids:
        raise ExportError(f"no completed runs match {selection.describe()}")
    return ids


def _experiment_ids(store: Store, name_or_id: str) -> list[int]:
    ids = export_rows.experiment_ids(store, name_or_id)
    if not ids:
        raise ExportError(f"--experiment: no experiment named {name_or_id!r}")
    return ids


def load_runs(store: Store, selection: Selection) -> list[RunView]:
    """Typed views of the selected runs (see select_run_ids), ordered by id."""
    rows = export_rows.run_rows(store, select_run_ids(store, selection))
    views = []
    for r, e in rows.runs:
        rid = r.id or 0
        summaries = {m.request_class: _summary_view(m) for m in rows.summaries.get(rid, [])}
        hardware = rows.hardware.get(r.hardware_id) if r.hardware_id is not None else None
        views.append(_run_view(r, e, hardware, rows.backends.get(rid, []), summaries))
    return views


def _backend_view(b: Backend, presets: dict[str, str]) -> BackendView:
    return BackendView(
        name=b.name, preset=presets.get(b.name, ""), role=b.role, engine_kind=b.engine_kind, device=b.device,
        device_kind=b.device_kind, model=b.model, engine_version=b.engine_version,
        price_per_hour=b.price_per_hour,
        params=b.params_json or "", launch_args=b.launch_args_json or "",
    )


def _summary_view(m: Summary) -> SummaryView:
    return SummaryView(
        request_class=m.request_class, issued=m.issued, completed=m.completed,
        failed=m.failed, rejected=m.rejected, throughput_rps=m.throughput_rps,
        throughput_tok_s=m.throughput_tok_s, slo_attainment=m.slo_attainment,
        goodput_rps=m.goodput_rps, target_rate_rps=m.target_rate_rps,
        metrics=_loads(m.metrics_json, f"summary.metrics_json (run {m.run_id})", {}),
        extra=_loads(m.extra_json, f"summary.extra_json (run {m.run_id})", {}),
    )


def _run_view(r: Run, e: Experiment | None, h: Hardware | None, backends, summaries) -> RunView:
    assert r.id is not None  # a row read from the store always has its key
    config = _loads(r.config_json, f"run.config_json (run {r.id})", {})
    presets = {str(b.get("name")): str(b.get("preset") or "") for b in config.get("backends", [])
               if isinstance(b, dict)} if isinstance(config.get("backends"), list) else {}
    run_section = config.get("run") if isinstance(config.get("run"), dict) else {}
    hw = None
    if h is not None:
        hw = HardwareView(
            fingerprint=h.fingerprint, cpu_model=h.cpu_model,
            cpu_cores_physical=h.cpu_cores_physical, cpu_cores_logical=h.cpu_cores_logical,
            memory_bytes=h.memory_bytes, os=h.os,
            gpus=_loads(h.gpus_json, f"hardware.gpus_json ({h.fingerprint[:12]})", []),
        )
    return RunView(
        id=r.id, name=r.name, experiment=e.name if e else "", suite=e.suite if e else None,
        experiment_spec=e.spec if e else "", part=str(run_section.get("part") or ""),
        mode=r.mode, status=r.status, config=config,
        config_hash=r.config_hash, seed=r.seed, repetition=r.repetition,
        sagetui_version=r.sagetui_version, git_sha=r.git_sha,
        software=_loads(r.software_json, f"run.software_json (run {r.id})", {}),
        hardware=hw, duration_s=r.duration_s, warmup_s=r.warmup_s,
        backends=tuple(_backend_view(b, presets) for b in backends), summaries=dict(summaries),
    )


def load_histograms(store: Store, run_ids: list[int], metric: str, cls: str) -> HdrHistogram | None:
    """The whole-window histograms of `metric` x `cls` of these runs, merged (µs); None if absent."""
    merged = queries.merged_histogram(store, run_ids, metric, cls)
    return merged if merged.get_total_count() else None


@dataclass(frozen=True)
class SampleView:
    t_s: float
    offered_rps: float
    achieved_rps: float
    queue_depth: int  # every class together


def load_samples(store: Store, run_ids: list[int]) -> dict[int, list[SampleView]]:
    """Per-second samples of these runs, by run id, ordered by time."""
    out: dict[int, list[SampleView]] = defaultdict(list)
    for row in export_rows.samples_of(store, run_ids):
        depth = _loads(row.queue_depth_json, f"sample.queue_depth_json (run {row.run_id})", {})
        out[row.run_id].append(
            SampleView(row.t_s, row.offered_rps, row.achieved_rps,
                       int(sum(v for v in depth.values() if isinstance(v, int | float))))
        )
    return out
