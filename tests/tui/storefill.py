"""Fill a store with simulated-run rows, deterministically (tests and bench).

Rows are inserted straight into store.schema tables, shaped like what a
simulated `sagetui run` writes: resolved config, backends, per-class
summaries, HDR histograms (whole run and 10 s windows), per-second samples
and events.
"""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

from hdrh.histogram import HdrHistogram
from sqlalchemy import event, insert
from sqlmodel import Session, create_engine, select

from sagetui.tui.histo import points_ms
from store import open_store
from store.schema import (
    Backend,
    Event,
    Experiment,
    Hardware,
    Histogram,
    Run,
    Sample,
    Summary,
)

POLICIES = ("hybrid", "fifo", "priority", "slo_aware")
BASELINES = ("sage", "vllm", "separate")
CLASSES = ("chat", "embedding")
STARTED = "2026-11-25T10:{:02d}:{:02d}+00:00"


def engine_for(path: str | Path):
    eng = create_engine(f"sqlite:///{path}")

    @event.listens_for(eng, "connect")
    def _pragmas(dbapi_conn, _record):  # the store's own settings: WAL, FKs, busy timeout
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=5000")
        cur.close()

    return eng


def config(i: int, policy: str, baseline: str, rate: float, duration: float = 30.0) -> dict:
    return {
        "run": {"name": f"run-{i}", "mode": "sim", "seed": i, "repetitions": 1,
                "tags": ["paper"] if i % 3 == 0 else []},
        "workload": {"arrival": "poisson", "rate": rate, "duration_s": duration,
                     "warmup_s": 5.0, "mix": {"chat": 0.7, "embedding": 0.3}},
        "control_plane": {"baseline": baseline, "policy": policy},
        "backends": [{"name": "gpu0", "kind": "sim", "device": "gpu", "device_kind": "H100"},
                     {"name": "cpu0", "kind": "sim", "device": "cpu", "device_kind": "x86-64"}],
    }


def histogram(rng: random.Random, scale_ms: float, n: int = 400) -> HdrHistogram:
    h = HdrHistogram(1, 3_600_000_000, 3)
    for _ in range(40):  # 40 draws, each counted n/40 times: realistic shape, fast to build
        h.record_value(max(1, int(rng.lognormvariate(0, 0.5) * scale_ms * 1000)), max(n // 40, 1))
    return h


@functools.cache
def _cheap_metrics(scale_ms: float, variant: int) -> dict:
    """Percentiles for summary-only runs, built once per (scale, variant): fills 10k runs fast."""
    return _metrics(histogram(random.Random(variant), scale_ms * (1 + variant / 10), 50))


def _metrics(h: HdrHistogram) -> dict:
    return {p: h.get_value_at_percentile(q) / 1000 for p, q in
            (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 99.9))} | {
        "mean": _mean_us(h) / 1000, "count": h.get_total_count()}


def _mean_us(h: HdrHistogram) -> float:
    """Mean of the recorded values (hdrh's get_mean_value walks every bucket: slow)."""
    pts = points_ms(h)
    return 1000 * sum(v * c for v, c in pts) / max(sum(c for _, c in pts), 1)


def fill(path: str | Path, n_runs: int = 6, *, detailed: int | None = None,
         running: int = 0, running_samples: int = 0, seed: int = 7) -> list[int]:
    """Write `n_runs` completed runs (+ `running` ones); returns their ids.

    `detailed` runs (default all) get histograms, samples and events; the rest
    only run, backend and summary rows (enough for the Runs table).
    """
    rng = random.Random(seed)
    detailed = n_runs if detailed is None else detailed
    open_store(path).close()  # the real schema, migrations and meta rows
    eng = engine_for(path)
    ids: list[int] = []
    with Session(eng) as s:
        hw = Hardware(fingerprint="hw-test", hostname="bench", os="Linux", cpu_model="x86-64",
                      cpu_cores_physical=2, cpu_cores_logical=2, memory_bytes=8 << 30)
        exp = Experiment(name="policies", kind="suite", suite="policies",
                         created="2026-11-25T10:00:00+00:00")
        s.add(hw)
        s.add(exp)
        s.commit()
        s.refresh(hw)
        s.refresh(exp)
        hw_id, exp_id = hw.id, exp.id
        run_rows, back_rows, sum_rows = [], [], []
        total = n_runs + running
        for i in range(1, total + 1):
            policy, baseline = POLICIES[i % 4], BASELINES[i % 3]
            rate = float(10 * (1 + i % 5))
            cfg = config(i, policy, baseline, rate)
            is_running = i > n_runs
            run_rows.append(dict(
                id=i, experiment_id=exp_id, name=f"{policy}-r{rate:g}-{i}", mode="sim",
                status="running" if is_running else "completed", config_json=json.dumps(cfg),
                config_hash=f"h{i % 20}", seed=i, repetition=0,
                tags="paper" if i % 3 == 0 else "", host="bench",
                created=STARTED.format(i // 60 % 60, i % 60),
                started=STARTED.format(i // 60 % 60, i % 60),
                ended=None if is_running else STARTED.format(i // 60 % 60, i % 60),
                software_json=json.dumps({"python": "3.11", "sagetui": "0.1.0"}),
                hardware_id=hw_id, duration_s=30.0, warmup_s=5.0,
                requests_planned=int(rate * 35), requests_done=0 if is_running else int(rate * 35),
                deleted=False, git_sha="abc1234", git_dirty=False, status_reason="",
                sagetui_version="0.1.0", heartbeat=None, pid=None))
            for name, dev in (("gpu0", "gpu"), ("cpu0", "cpu")):
                back_rows.append(dict(run_id=i, name=name, role="both", engine_kind="sim",
                                      device=dev, device_kind="H100" if dev == "gpu" else "x86",
                                      model="tiny-llama", max_concurrency=8))
            if is_running:
                continue
            scale = {"hybrid": 20, "fifo": 35, "priority": 25, "slo_aware": 22}[policy]
            for cls in ("all",) + CLASSES:
                ttft = _cheap_metrics(scale, i % 7) if i > detailed else None
                sum_rows.append(dict(
                    run_id=i, request_class=cls, issued=int(rate * 30), completed=int(rate * 29),
                    failed=1, rejected=0, throughput_rps=rate * 0.97, throughput_tok_s=rate * 30,
                    slo_attainment=0.9 + (i % 10) / 100, goodput_rps=rate * 0.9,
                    target_rate_rps=rate, achieved_rate_rps=rate * 0.99, lateness_p99_ms=0.5,
                    metrics_json=json.dumps({"ttft": ttft, "e2e": ttft} if ttft else {}),
                    extra_json="{}"))
            ids.append(i)
        s.execute(insert(Run), run_rows)
        s.execute(insert(Backend), back_rows)
        s.execute(insert(Summary), sum_rows)
        s.commit()
        for i in range(1, min(detailed, n_runs) + 1):
            _detail(s, rng, i, POLICIES[i % 4])
        for i in range(n_runs + 1, n_runs + running + 1):
            add_samples(s, i, 0, running_samples, rng)
        s.commit()
        s.connection().exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    eng.dispose()
    return ids + list(range(n_runs + 1, n_runs + running + 1))


def _detail(s: Session, rng: random.Random, rid: int, policy: str) -> None:
    """Histograms (whole + windows), metrics in summaries, samples, events for one run."""
    scale = {"hybrid": 20, "fifo": 35, "priority": 25, "slo_aware": 22}[policy]
    summaries = {x.request_class: x for x in s.exec(
        select(Summary).where(Summary.run_id == rid))}
    for cls in ("all",) + CLASSES:
        metrics = {}
        for metric, mult in (("ttft", 1.0), ("e2e", 6.0), ("queue_wait", 0.2)):
            if cls == "embedding" and metric == "ttft":
                continue
            h = histogram(rng, scale * mult)
            metrics[metric] = _metrics(h)
            s.add(Histogram(run_id=rid, metric=metric, request_class=cls, encoded=h.encode(),
                            count=h.get_total_count(), min_us=h.get_min_value(),
                            max_us=h.get_max_value(), mean_us=_mean_us(h)))
            for w in range(3):
                hw = histogram(rng, scale * mult, 100)
                s.add(Histogram(run_id=rid, metric=metric, request_class=cls,
                                window_start_s=5.0 + 10 * w, window_s=10.0, encoded=hw.encode(),
                                count=hw.get_total_count()))
        summaries[cls].metrics_json = json.dumps(metrics)
    add_samples(s, rid, 0, 35, rng)
    s.add(Event(run_id=rid, t_s=12.0, kind="fault", subject="gpu0", message="killed gpu0"))
    s.add(Event(run_id=rid, t_s=17.0, kind="engine_up", subject="gpu0", message="gpu0 back"))


def sample_row(rid: int, t: int, rng: random.Random, rate: float = 20.0) -> Sample:
    """Second `t` of a run at `rate` r/s; `done` is the running total, as loadgen writes it."""
    return Sample(
        run_id=rid, t_s=float(t), offered_rps=rate, achieved_rps=rate * (0.9 + rng.random() / 10),
        in_flight=rng.randint(2, 9), errors=1 if t % 17 == 16 else 0,
        queue_depth_json=json.dumps({"chat": rng.randint(0, 5), "embedding": rng.randint(0, 3)}),
        backends_json=json.dumps({
            "gpu0": {"running": 5, "waiting": 1, "kv_use": 0.4, "in_flight": 6, "util": 0.75},
            "cpu0": {"running": 2, "waiting": 0, "kv_use": 0.1, "in_flight": 2, "util": 0.3}}),
        latency_json=json.dumps({
            "chat": {"ttft_p50": 20.0, "ttft_p95": 41.0, "ttft_p99": 55.5, "e2e_p50": 120.0,
                     "e2e_p95": 210.0, "e2e_p99": 260.0},
            "embedding": {"e2e_p50": 8.0, "e2e_p95": 15.0, "e2e_p99": 19.0}}),
        slo_met=int(rate * 0.9), done=int(rate) * (t + 1))


def add_samples(s: Session, rid: int, t0: int, t1: int, rng: random.Random) -> None:
    for t in range(t0, t1):
        s.add(sample_row(rid, t, rng))
