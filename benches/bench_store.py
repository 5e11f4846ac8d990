"""Store benchmarks against the store's targets; prints one line per measurement.

Targets: 1,000,000 request records inserted <= 10 s; `runs list` over 10,000
runs <= 0.3 s; a run's full summary (get_run) <= 50 ms; histogram
encode + store for 200k samples <= 50 ms. Run: .venv/bin/python benches/bench_store.py
[--quick] (--quick: a tenth of the records and runs, for `make bench`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from click.testing import CliRunner  # noqa: E402

from sagetui.cli import main as cli  # noqa: E402
from store import histograms as hg  # noqa: E402
from store import open_store, queries  # noqa: E402

CLASSES = ("chat", "embedding", "pipeline", "all")
METRICS = ("ttft", "e2e", "tpot", "itl", "queue_wait", "lateness", "overhead")


def best_of(fn, repeat=5) -> tuple[float, float, float]:
    """(best wall, median wall, best CPU of this process) in seconds."""
    times, cpus = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return min(times), statistics.median(times), min(cpus)


def report(name: str, seconds: float, target: float, extra: str = "") -> None:
    verdict = "ok" if seconds <= target else "MISSED"
    print(f"{name:<44} {seconds * 1000:9.1f} ms  (target {target * 1000:.0f} ms: {verdict})"
          + (f"  {extra}" if extra else ""), flush=True)


def config(i: int) -> dict:
    return {"run": {"name": f"run{i}", "mode": "sim", "seed": i % 5, "repetitions": 5},
            "workload": {"arrival": "poisson", "rate": 10 + i % 50, "duration_s": 60,
                         "warmup_s": 10, "mix": {"chat": 0.7, "embedding": 0.3}},
            "control_plane": {"policy": ("hybrid", "fifo", "priority", "slo")[i % 4],
                              "max_queue": 1000},
            "backends": [{"name": f"b{k}", "kind": "sim", "preset": "llama-8b-h100",
                          "max_concurrency": 64} for k in range(4)]}


def summaries() -> dict:
    h = hg.new_histogram()
    for v in range(1000, 200_000, 997):
        h.record_value(v)
    dist = hg.distribution_ms(h)
    return {cls: {"issued": 600, "completed": 590, "failed": 5, "rejected": 5,
                  "throughput_rps": 9.8, "throughput_tok_s": 310.0, "goodput_rps": 9.1,
                  "slo_attainment": 0.93, "metrics": {m: dist for m in METRICS},
                  "extra": {"jain": 0.98}} for cls in CLASSES}


def bench_requests(store, n_records: int = 1_000_000) -> None:
    w = store.create_run(experiment_id=None, name="bulk", mode="sim", config={}, seed=0,
                         repetition=0)
    recs = [{"request_id": str(i), "request_class": "chat", "client_id": f"c{i % 32}",
             "priority": i % 5, "status": "completed", "backend": "b0", "t_intended": i * 1e-3,
             "t_sent": i * 1e-3, "t_received": i * 1e-3, "t_dispatched": i * 1e-3 + 1e-4,
             "t_first_token": i * 1e-3 + 0.01, "t_done": i * 1e-3 + 0.2, "prompt_tokens": 64,
             "output_tokens": 32, "slo_ttft_ms": 200.0, "slo_e2e_ms": 2000.0, "slo_met": True,
             "overhead_us": 12.5} for i in range(n_records)]
    t, c = time.perf_counter(), time.process_time()
    n = w.add_requests(recs)
    report(f"insert {n:,} request records", time.perf_counter() - t, 10.0,
           f"cpu {time.process_time() - c:.2f} s")
    w.finish()


def populate_runs(store, n: int) -> None:
    """n finished runs with 4-class summaries, written through RunWriter like real runs."""
    exp = store.create_experiment("bench", kind="suite", suite="bench")
    summ = summaries()
    for i in range(n):
        w = store.create_run(experiment_id=exp, name=f"run{i}", mode="sim", config=config(i),
                             seed=i % 5, repetition=i % 5, tags=("bench",))
        w.add_summaries(summ)
        w.finish()


def bench_list(db: Path, n_runs: int = 10_000) -> None:
    runner = CliRunner()
    for fmt, target in (("table", 0.3), ("json", 0.3), ("csv", 0.3)):
        def go(fmt=fmt):
            r = runner.invoke(cli, ["--db", str(db), "runs", "list", "--format", fmt])
            assert r.exit_code == 0, r.output
        best, med, cpu = best_of(go, 5)
        report(f"runs list --format {fmt} ({n_runs:,} runs)", best, target,
               f"median {med*1000:.0f} ms, cpu {cpu*1000:.0f} ms")
    def where():
        r = runner.invoke(cli, ["--db", str(db), "runs", "list", "--where",
                                "control_plane.policy=hybrid"])
        assert r.exit_code == 0
    best, med, cpu = best_of(where, 5)
    report(f"runs list --where policy=hybrid ({n_runs:,})", best, 0.3,
           f"median {med*1000:.0f} ms, cpu {cpu*1000:.0f} ms")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sagetui", "--db", str(db), "runs", "list"],
                   check=True, capture_output=True)
    print(f"(a whole `sagetui runs list` process, interpreter start included: "
          f"{time.perf_counter() - t:.2f} s)")


def bench_full_summary(store) -> None:
    w = store.create_run(experiment_id=None, name="full", mode="live", config=config(1), seed=0,
                         repetition=0)
    w.start()
    w.add_backends([{"name": f"b{k}", "engine_kind": "vllm-cpu", "launch_args": ["--x"]}
                    for k in range(8)])
    for t in range(600):
        w.add_sample({"t_s": float(t), "offered_rps": 10.0, "backends": {"b0": {"running": 3}}})
    for t in range(50):
        w.add_event(float(t), "warning", "b0", "slow", {"t": t})
    h = hg.new_histogram()
    for v in range(1000, 200_000, 97):
        h.record_value(v)
    w.add_histograms([(m, c, s, 10.0 if s is not None else None, h) for m in METRICS
                      for c in CLASSES for s in (None, *range(0, 60, 10))])
    w.add_summaries(summaries())
    w.finish()
    best, med, _ = best_of(lambda: queries.get_run(store, w.run_id), 20)
    report("a run's full summary (get_run)", best, 0.05, f"median {med*1000:.1f} ms")
    runner = CliRunner()
    best, med, _ = best_of(lambda: runner.invoke(cli, ["--db", str(store.path), "runs", "show",
                                                       str(w.run_id), "--format", "json"]), 20)
    report("  ... `runs show --format json` in-process", best, 0.05, f"median {med*1000:.1f} ms")


def bench_histogram(store) -> None:
    h = hg.new_histogram()
    t = time.perf_counter()
    for i in range(200_000):
        h.record_value(1000 + (i * 7919) % 5_000_000)
    record_s = time.perf_counter() - t
    w = store.create_run(experiment_id=None, name="hist", mode="sim", config={}, seed=0,
                         repetition=0)
    best, med, _ = best_of(lambda: w.add_histograms([("e2e", "chat", None, None, h)]), 10)
    report("histogram encode+store, 200k samples", best, 0.05,
           f"median {med*1000:.1f} ms; recording the 200k values took {record_s*1000:.0f} ms")
    w.finish()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="100,000 records and 1,000 runs: a smoke check, not the targets' sizes")
    a = ap.parse_args()
    n_records, n_runs = (100_000, 1_000) if a.quick else (1_000_000, 10_000)
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "bulk.db")
        bench_requests(store, n_records)
        bench_histogram(store)
        bench_full_summary(store)
        store.close()
        db = Path(tmp) / "runs.db"
        store = open_store(db)
        t = time.perf_counter()
        populate_runs(store, n_runs)
        print(f"(populating {n_runs:,} runs through RunWriter took {time.perf_counter() - t:.1f} s)")
        store.close()
        bench_list(db, n_runs)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
