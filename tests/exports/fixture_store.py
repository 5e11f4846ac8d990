"""A fixed run store for export tests and the export benchmark.

Why hand-built rows: exports must be tested on known numbers, independent of
the simulator and load generator. Every value is a formula of the run's
parameters, so tests can recompute what a table must show.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from sqlmodel import Session, create_engine, select

from store import config_hash, open_store
from store.histograms import encode, new_histogram
from store.schema import Backend, Experiment, Hardware, Histogram, Run, Sample, Summary

POLICIES = ("fifo", "priority", "slo", "hybrid")
PATTERNS = ("poisson", "bursty")
BASELINES = ("sage", "vllm-only", "separate")
BACKEND_COUNTS = (1, 2, 4, 8)
RATES = (10.0, 20.0, 40.0, 80.0, 160.0)
POOLS = {"GPU-only": ("gpu",) * 2, "CPU-only": ("cpu",) * 4, "mixed": ("gpu", "cpu", "cpu")}
STRATEGIES = ("react", "plan-execute")
CLIENTS = (2, 4, 8)
N_SAMPLES = 20
# The policies experiment's chat SLO tiers (config order: tight before loose).
POLICY_TIERS = [{"name": "tight", "share": 0.5, "ttft_ms": 300}, {"name": "loose", "share": 0.5, "ttft_ms": 3000}]


def dist(p50: float, count: int = 1000) -> dict[str, float]:
    """A latency distribution in ms derived from its median."""
    return {"p50": p50, "p90": round(p50 * 1.8, 3), "p95": round(p50 * 2.2, 3),
            "p99": round(p50 * 3.5, 3), "p999": round(p50 * 5, 3), "mean": round(p50 * 1.3, 3),
            "count": count}


def config(**kw) -> dict:
    """A resolved config with the sections exports read; keyword paths like workload__rate."""
    cfg = {
        "run": {"name": "r", "mode": "sim", "seed": 0, "repetitions": 1},
        "workload": {"arrival": "poisson", "rate": 50.0, "duration_s": 60, "warmup_s": 5,
                     "mix": {"chat": 0.7, "embedding": 0.3},
                     "sizes": {"chat": {"prompt_tokens": {"kind": "lognormal", "mean": 256, "sigma": 0.5},
                                        "output_tokens": {"kind": "uniform", "low": 32, "high": 128}},
                               "embedding": {"text_tokens": {"kind": "fixed", "value": 64}}}},
        "control_plane": {"baseline": "sage", "policy": "hybrid", "router": "least-loaded"},
        "backends": [sim_backend(i) for i in range(2)],
    }
    for key, value in kw.items():
        if key == "backends":
            cfg["backends"] = value
        else:
            section, name = key.split("__")
            cfg[section][name] = value
    return cfg


def sim_backend(i: int, device: str = "gpu", price: float = 0.0) -> dict:
    kind = "H100" if device == "gpu" else "x86-64"
    return {"name": f"b{i}", "kind": "sim", "device": device, "device_kind": kind,
            "model": "llama-8b", "price_per_hour": price, "capabilities": ["chat", "embedding"]}


class Builder:
    def __init__(self, path: Path, n_samples: int = N_SAMPLES):
        self.n_samples = n_samples
        open_store(path).close()  # create (or upgrade) it the way sagetui does
        self.engine = create_engine(f"sqlite:///{path}")
        self.session = Session(self.engine)
        self.hw = {h.fingerprint: h.id for h in self.session.exec(select(Hardware))}
        for fp, cpu in (("hw-a", "AMD EPYC 7B13"), ("hw-b", "Intel Xeon 8480")):
            if fp in self.hw:
                continue
            h = Hardware(fingerprint=fp, hostname=fp, os="Linux 6.1", cpu_model=cpu,
                         cpu_cores_physical=2, cpu_cores_logical=2, memory_bytes=8 * 2**30)
            self.session.add(h)
            self.session.flush()
            self.hw[fp] = h.id

    def experiment(self, name: str, suite: str = "paper", spec: str = "") -> int:
        e = Experiment(name=name, kind="suite", suite=suite, spec=spec, created="2026-11-25T10:00:00Z")
        self.session.add(e)
        self.session.flush()
        return e.id

    def run(self, exp: int, name: str, cfg: dict, rep: int, summaries: dict[str, dict],
            *, hw: str = "hw-a", engine_version: str = "sim-1.0", params: dict | None = None,
            hist: dict[tuple[str, str], float] | None = None, depth: float | None = None,
            status: str = "completed", software: dict | None = None) -> int:
        cfg = json.loads(json.dumps(cfg))
        cfg["run"]["name"] = name.rsplit("-", 1)[0]  # the sweep point; `name` adds the repetition
        cfg["run"]["seed"] = 100 + rep
        r = Run(experiment_id=exp, name=name, mode="sim", status=status, config_json=json.dumps(cfg),
                config_hash=config_hash(cfg), seed=100 + rep, repetition=rep,
                created="2026-11-25T10:00:00Z", sagetui_version="0.1.0", git_sha="abc1234def5678",
                software_json=json.dumps(software or {"python": "3.11.9", "vllm": "0.32.0", "torch": "2.13.0"}),
                hardware_id=self.hw[hw], duration_s=60.0, warmup_s=5.0)
        self.session.add(r)
        self.session.flush()
        for i, b in enumerate(cfg["backends"]):
            self.session.add(Backend(
                run_id=r.id, name=b["name"], role="both", engine_kind=b["kind"], device=b["device"],
                device_kind=b["device_kind"], model=b["model"], engine_version=engine_version,
                price_per_hour=b["price_per_hour"], max_concurrency=8,
                params_json=json.dumps(params or {"max_num_seqs": 64}), launch_args_json="[]"))
            del i
        for cls, s in summaries.items():
            s = dict(s)
            self.session.add(Summary(run_id=r.id, request_class=cls,
                                     metrics_json=json.dumps(s.pop("metrics")),
                                     extra_json=json.dumps(s.pop("extra", {})), **s))
        rng = random.Random(r.id)
        for (metric, cls), median_ms in (hist or {}).items():
            h = new_histogram()
            for _ in range(400):
                h.record_value(max(1, int(rng.lognormvariate(0, 0.6) * median_ms * 1000)))
            self.session.add(Histogram(run_id=r.id, metric=metric, request_class=cls,
                                       encoded=encode(h), count=h.get_total_count(),
                                       min_us=h.get_min_value(), max_us=h.get_max_value(),
                                       mean_us=h.get_mean_value()))
        if depth is not None:
            for t in range(self.n_samples):
                self.session.add(Sample(run_id=r.id, t_s=float(t), offered_rps=50.0, achieved_rps=49.0,
                                        queue_depth_json=json.dumps({"chat": int(depth + (t % 5)), "embedding": 1})))
        return r.id

    def close(self) -> None:
        self.session.commit()
        self.session.close()
        self.engine.dispose()


def summary(throughput: float, *, ttft: float = 20.0, e2e: float = 200.0, slo: float = 0.95,
            target: float | None = None, wait: float = 2.0, extra: dict | None = None,
            embed_e2e: float | None = 15.0, chat_slo: float | None = None,
            embed_slo: float | None = None, tiers: dict[str, float] | None = None,
            shed: int = 0) -> dict[str, dict]:
    """Summaries for the classes all/chat/embedding from a few headline numbers.

    `tiers` maps chat tier names to their attainment (stored as aggregate
    writes them: by name under chat, by `chat.name` under all); `shed` adds
    requests shed from the queue to the 6 rejected at admission.
    """
    chat_tiers = {name: {"issued": 350, "met": round(350 * a), "slo_attainment": a,
                         "goodput_rps": throughput * 0.35 * a} for name, a in (tiers or {}).items()}
    all_extra = {**(extra or {}), "rejected_or_shed": 6 + shed,
                 "slo_tiers": {f"chat.{k}": v for k, v in chat_tiers.items()}}
    out = {
        "all": {"issued": 1000, "completed": 990 - shed, "failed": 4 + shed, "rejected": 6,
                "throughput_rps": throughput, "slo_attainment": slo,
                "goodput_rps": throughput * slo, "target_rate_rps": target,
                "metrics": {"ttft": dist(ttft), "e2e": dist(e2e), "queue_wait": dist(wait)},
                "extra": all_extra},
        "chat": {"issued": 700, "completed": 695, "throughput_rps": throughput * 0.7,
                 "slo_attainment": slo if chat_slo is None else chat_slo,
                 "metrics": {"ttft": dist(ttft), "e2e": dist(e2e)}, "extra": {"slo_tiers": chat_tiers}},
    }
    if embed_e2e is not None:
        out["embedding"] = {"issued": 300, "completed": 295, "throughput_rps": throughput * 0.3,
                            "slo_attainment": slo if embed_slo is None else embed_slo,
                            "metrics": {"e2e": dist(embed_e2e)}}
    return out


def build_store(path: Path, reps: int = 2, suite: str = "paper",
                rates: tuple[float, ...] = RATES, n_samples: int = N_SAMPLES) -> Path:
    """The fixed store: one experiment per paper table, `reps` repetitions of each point."""
    b = Builder(path, n_samples)
    e = b.experiment("effectiveness", suite)
    for wl_i, wl in enumerate(("mixed", "chat-heavy")):
        for bl_i, bl in enumerate(BASELINES):
            for rep in range(reps):
                cfg = config(workload__name=wl, control_plane__baseline=bl)
                b.run(e, f"eff-{wl}-{bl}-{rep}", cfg, rep,
                      summary(100 - 10 * bl_i + rep, ttft=20 + 15 * bl_i + wl_i + rep * 0.5,
                              e2e=200 + 40 * bl_i + rep, slo=0.97 - 0.1 * bl_i - 0.01 * rep,
                              embed_e2e=None if wl == "chat-heavy" else 15 + 5 * bl_i + rep))
    e = b.experiment("policies", suite)
    for pat_i, pat in enumerate(PATTERNS):
        for p_i, pol in enumerate(POLICIES):
            for rep in range(reps):
                cfg = config(workload__arrival=pat, workload__pattern=pat, control_plane__policy=pol,
                             workload__slos={"chat": {"tiers": POLICY_TIERS}})
                ttft = 60 - 10 * p_i + 5 * pat_i + rep
                slo = 0.80 + 0.04 * p_i - 0.005 * rep
                b.run(e, f"pol-{pat}-{pol}-{rep}", cfg, rep,
                      summary(80 + p_i, ttft=ttft, slo=slo, wait=8 - p_i + 0.1 * rep,
                              chat_slo=slo - 0.02, embed_slo=slo + 0.05,
                              tiers={"tight": slo - 0.1 + 0.03 * p_i, "loose": slo + 0.01}, shed=2 * p_i),
                      hist={("ttft", "chat"): ttft, ("queue_wait", "all"): 8 - p_i}, depth=6 - p_i)
    e = b.experiment("scalability", suite)
    for n in BACKEND_COUNTS:
        for rep in range(reps):
            cfg = config(backends=[sim_backend(i) for i in range(n)])
            b.run(e, f"scale-{n}-{rep}", cfg, rep,
                  summary(95.0 * n * (1 - 0.02 * (n - 1)) + rep, e2e=200.0,
                          extra={"control_plane": {"overhead_us_per_request": 150.0 + 10 * n + rep}}))
    e = b.experiment("saturation", suite)
    for pol in ("fifo", "hybrid"):
        knee = 60.0 if pol == "fifo" else 120.0
        for rate in rates:
            for rep in range(reps):
                cfg = config(workload__rate=rate, control_plane__policy=pol)
                thr = min(rate, knee) - 0.2 * rep
                p50 = 30.0 if rate < knee else 30.0 * (1 + (rate - knee) / 10)
                b.run(e, f"sat-{pol}-{rate:g}-{rep}", cfg, rep,
                      summary(thr, e2e=p50 + rep, target=rate, slo=0.99 if rate < knee else 0.5))
    e = b.experiment("heterogeneous", suite)
    prices = {"gpu": 4.0, "cpu": 0.5}
    for p_i, (pool, devices) in enumerate(POOLS.items()):
        for rep in range(reps):
            cfg = config(backends=[sim_backend(i, d, prices[d]) for i, d in enumerate(devices)])
            b.run(e, f"het-{pool}-{rep}", cfg, rep,
                  summary(300 - 100 * p_i + rep, e2e=50 + 20 * p_i, embed_e2e=10 + 8 * p_i + rep))
    e = b.experiment("agents", suite)
    for s_i, strat in enumerate(STRATEGIES):
        for rep in range(reps):
            cfg = config(workload__agent_strategy=strat)
            agent = {"strategy": strat, "metrics": {"task_success_pct": 70 + 10 * s_i + rep,
                                                    "tool_calls_per_task": 3.0 + s_i,
                                                    "latency_per_task_ms": 4000 - 500 * s_i + 10 * rep}}
            b.run(e, f"agent-{strat}-{rep}", cfg, rep, summary(20, extra={"agent": agent}))
    e = b.experiment("fairness", suite)
    for n in CLIENTS:
        for rep in range(reps):
            cfg = config(workload__clients=n)
            clients = {f"c{i}": {"issued": 100, "completed": 100 - i, "e2e_p50_ms": 200.0 + 30 * i * (n / 8) + rep,
                                 "e2e_p99_ms": 600.0 + 30 * i} for i in range(n)}
            b.run(e, f"fair-{n}-{rep}", cfg, rep,
                  summary(50, extra={"clients": clients, "fairness_jain": 1 - 0.02 * n - 0.001 * rep}))
    b.close()
    return path


def add_mismatch_experiment(path: Path) -> None:
    """Scalability runs on two machines and engine versions: the fair-baseline check must refuse."""
    b = Builder(path)
    e = b.experiment("mismatch", "unfair")
    for n, hw, ver in ((1, "hw-a", "sim-1.0"), (2, "hw-b", "sim-1.1")):
        cfg = config(backends=[sim_backend(i) for i in range(n)])
        b.run(e, f"mm-{n}", cfg, 0, summary(100.0 * n, extra={"overhead_us": 100.0}), hw=hw,
              engine_version=ver)
    b.run(e, "mm-failed", config(), 0, summary(1.0), status="failed")
    b.close()


SUITE_SPEC = """
[suite]
name = "scal"
category = "C"

[[suite.exports]]
table = "scalability"
parts = ["backends"]

[[suite.exports]]
figure = "latency_vs_rate"
parts = ["rate"]

[[parts]]
name = "backends"

[[parts]]
name = "rate"
"""


def add_suite_experiment(path: Path) -> None:
    """A built-in-suite-like experiment: two parts in one experiment, a manifest naming outputs."""
    b = Builder(path)
    e = b.experiment("scal (quick)", "scal", spec=SUITE_SPEC)
    for n in (1, 2):
        cfg = config(backends=[sim_backend(i) for i in range(n)], run__part="backends")
        b.run(e, f"scal/backends-{n}-0", cfg, 0, summary(90.0 * n, extra={"overhead_us": 50.0}))
    for rate in (10.0, 20.0, 40.0):
        cfg = config(workload__rate=rate, run__part="rate")
        b.run(e, f"scal/rate-{rate:g}-0", cfg, 0, summary(min(rate, 25.0), target=rate))
    b.close()


# BFCL's files by id, as timing's items are named: odd items need a call (labels k % 2).
AGENT_TIMING_IDS = [(f"live_relevance_{k}-0-0" if k < 5 else f"live_simple_{k}-0-0") if k % 2
                    else (f"irrelevance_{k}" if k % 4 == 0 else f"live_irrelevance_{k}-0-0")
                    for k in range(20)]


def add_agent_items_experiment(path: Path) -> None:
    """Suite E's shape: per-item outcomes and latencies per category (the bootstrap table
    and the accuracy-vs-latency figure), three strategies, one pass each."""
    b = Builder(path)
    e = b.experiment("agents-items", "agents-bfcl")
    info = {"name": "BFCL v4", "package": "bfcl-eval", "version": "2026.3.23",
            "licence": "Apache-2.0", "files": {"BFCL_v4_multiple.json": "0" * 64}}
    for s_i, strat in enumerate(("bm25", "embedding", "fusion")):
        n = 20
        right = lambda k, s_i=s_i: float((k * 7 + s_i) % 10 < 6 + s_i)  # noqa: E731
        lat = [0.5 + 40 * s_i + k for k in range(n)]
        items = {
            "selection": {"n": n, "outcomes": {"top1": [right(k) for k in range(n)],
                                               "mrr": [right(k) for k in range(n)]},
                          "latency_ms": lat},
            "selection_pool": {"n": n, "outcomes": {"top1": [right(k + 1) for k in range(n)],
                                                    "top5": [1.0] * n,
                                                    "mrr": [right(k + 1) for k in range(n)]},
                               "latency_ms": lat},
            "timing": {"n": n, "outcomes": {"correct": [right(k + 2) for k in range(n)]},
                       "labels": [k % 2 for k in range(n)], "latency_ms": lat},
            "planning": {"n": n, "outcomes": {"exact": [right(k + 3) for k in range(n)],
                                              "f1": [0.5] * n}, "latency_ms": lat},
        }
        for cat, block in items.items():  # the same items for every strategy, as suite E
            block["ids"] = AGENT_TIMING_IDS if cat == "timing" else [f"{cat}_{k}" for k in range(n)]
        agent = {"strategy": strat, "metrics": {"selection_top1_pct": 60.0 + 10 * s_i},
                 "split": "test", "dataset": info,
                 "dev_test": {"selection": {"dev": 6, "test": 20}},
                 "tuning": {"alpha": 0.5, "thresholds": {"bm25": 7.9}}, "items": items}
        b.run(e, f"agent-items-{strat}-0", config(workload__agent_strategy=strat), 0,
              summary(20, extra={"agent": agent}))
    b.close()


PIPELINE_POLICIES = ("fifo", "staggered", "pipeline-slack")


def add_pipelines_experiment(path: Path) -> None:
    """The pipelines suite's shape: policies × two loads, a `pipeline` summary with its
    per-kind, per-stage breakdown (extra.pipelines) as loadgen.metrics writes it."""
    b = Builder(path)
    e = b.experiment("pipelines", "pipelines")
    for load in (0.9, 1.1):
        for p_i, pol in enumerate(PIPELINE_POLICIES):
            for rep in range(2):
                cfg = config(control_plane__policy=pol, run__load_fraction=load,
                             run__capacity_rps=10.0, workload__rate=10.0 * load)
                p50 = 2000.0 - 300 * p_i + 500 * (load > 1) + rep
                kinds = {"rag": {"issued": 100, "completed": 99, "e2e_p50_ms": p50,
                                 "e2e_p95_ms": 2 * p50, "e2e_p99_ms": 3 * p50,
                                 "deadline_attainment": 0.6 + 0.1 * p_i, "goodput_rps": 5.0,
                                 "stages": {"q": {"mean_ms": 20.0, "p99_ms": 50.0},
                                            "docs": {"mean_ms": 5.0, "p99_ms": 8.0},
                                            "answer": {"mean_ms": p50 - 25, "p99_ms": 3 * p50}}}}
                s = summary(9.0 - 0.1 * rep)
                s["pipeline"] = {"issued": 100, "completed": 99, "throughput_rps": 9.0 - 0.1 * rep,
                                 "slo_attainment": 0.6 + 0.1 * p_i, "goodput_rps": 5.0 + p_i,
                                 "metrics": {"e2e": dist(p50)}, "extra": {"pipelines": kinds}}
                b.run(e, f"pipe-{load:g}-{pol}-{rep}", cfg, rep, s)
    b.close()
