"""Expected wall time of a suite, from costs measured on this machine.

Why a cost model and not one requests-per-second figure: a suite's time is
also per-run overhead (engine construction, store writes of summaries,
histograms and per-second samples) and per-backend work, and an embedding
request costs the simulator far less than a chat request (it is batched; a
chat request is many decode steps). One rate put suite D at 7 s when it took
15.7 s, and C at 41 s for 51.7 s.

The constants are fitted (non-negative least squares) on the per-run wall
times of the full suites A–D and of the agents suite by
`benches/bench_suites.py --calibrate`, which prints them with each suite's
estimate next to its measured time; figures and machine in
docs/benchmarks.md ("suites"). Re-run it when the simulator's
speed changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Experiment, RunConfig

LIVE_ENGINE_START_S = 60  # vLLM on CPU starts in ~50 s on 2 cores (docs/setup.md)
LIVE_RUN_EXTRA_S = 5  # drain and store writes after a live run's schedule ends


@dataclass(frozen=True)
class SimCosts:
    """Seconds of wall time on the 2-core machine (docs/benchmarks.md, "suites")."""

    suite_start_s: float  # `python -m sagetui suite run`: imports, expansion, store open
    run_s: float  # per run: engine construction, store writes
    backend_s: float  # per backend per run (engines, per-second backend samples)
    llm_per_1k_s: float  # per thousand chat/completion requests
    embed_per_1k_s: float  # per thousand embedding requests


@dataclass(frozen=True)
class AgentCosts:
    """The agents suite: a start (embedding engine and gateway, pool embedding, dev
    tuning), then per item; live mode adds the chat engine's start and its calls."""

    start_s: float
    per_item_s: dict[str, float]  # strategy -> seconds per evaluated item
    engine_start_s: float  # live only: launching the chat engine (SmolLM2, vLLM on CPU)
    llm_per_item_s: float  # live only: one chat call per item on the chat engine


# Fitted by benches/bench_suites.py --calibrate (see the module docstring) on the full
# A, B and D suites in sim, quiet machine (load average <= 1): estimates within +37 % of
# the measured wall times, on the safe side (docs/benchmarks.md, "suites"). A chat
# request costs more than it did before the control plane predicted latency and
# admitted by SLO. The agents' costs are from full live agents runs on BFCL (docs/agents.md:
# 4 items in flight, a busy machine; the LLM is SmolLM2 on vLLM-on-CPU, eager, its cost per
# item from the latest run: 1,045 s for 200 items).
SIM = SimCosts(suite_start_s=9.14, run_s=0.0, backend_s=0.0079, llm_per_1k_s=0.1413,
               embed_per_1k_s=0.0816)
AGENTS = AgentCosts(start_s=100.0, per_item_s={"bm25": 0.0078, "embedding": 0.0363,
                                               "fusion": 0.0523},
                    engine_start_s=75.0, llm_per_item_s=5.2)


def offered_requests(cfg: RunConfig) -> float:
    """Requests a run sends: rate × schedule length; a closed loop at most one per client
    per think time (an upper bound: the latency it also waits for is not known in advance)."""
    w = cfg.workload
    if w.clients is not None and w.clients.think_time_s > 0:
        rate = w.clients.n / w.clients.think_time_s
    else:  # open loop; a closed loop without think time is taken at workload.rate
        rate = w.target_rate() or w.rate
    return rate * w.end_s


def sim_features(cfg: RunConfig) -> tuple[float, float, float, float]:
    """(1, backends, thousands of LLM requests, thousands of embedding requests): what the
    constants multiply. A pipeline job counts its calls (calls_per_job)."""
    w = cfg.workload
    n = offered_requests(cfg)
    total = sum(w.mix.values()) or 1.0
    share = {c: v / total for c, v in w.mix.items()}
    pipe = share.get("pipeline", 0.0)
    job_llm, job_emb = calls_per_job(w) if pipe else (0.0, 0.0)
    llm = share.get("chat", 0.0) + share.get("completion", 0.0) + pipe * job_llm
    emb = share.get("embedding", 0.0) + pipe * job_emb
    return (1.0, float(len(cfg.backends)), n * llm / 1e3, n * emb / 1e3)


def calls_per_job(w) -> tuple[float, float]:
    """Mean LLM and embedding calls of one pipeline job over the kinds' weights (a loop
    makes (1 + max_calls) / 2 calls on average: its count is drawn uniformly)."""
    kinds = w.pipeline_kinds()
    total = sum(k.weight for k in kinds)
    llm = emb = 0.0
    for k in kinds:
        for s in k.stages:
            if s.kind == "generate":
                llm += k.weight / total
            elif s.kind == "loop":
                llm += k.weight / total * (1 + s.max_calls) / 2
            elif s.kind in ("embed", "rerank"):
                emb += k.weight / total
    return llm, emb


def sim_run_seconds(cfg: RunConfig, costs: SimCosts = SIM) -> float:
    one, backends, llm_k, emb_k = sim_features(cfg)
    return (costs.run_s * one + costs.backend_s * backends + costs.llm_per_1k_s * llm_k
            + costs.embed_per_1k_s * emb_k)


def _as_planned(cfg: RunConfig) -> RunConfig:
    """A relative-load run before its probe: the configured rate (of its load class, with
    one) stands for the capacity, so the run is estimated at fraction × that rate."""
    if cfg.run.load_fraction is None or cfg.run.capacity_rps is not None:
        return cfg
    from .relative import class_rates, offered

    cls = cfg.run.load_class
    base = class_rates(cfg.workload)[cls] if cls else cfg.workload.rate
    w = offered(cfg.workload, cls, base * cfg.run.load_fraction)
    return cfg.model_copy(update={"workload": w})


def probe_seconds(exp: Experiment, costs: SimCosts = SIM) -> float:
    """The capacity probes of relative-load runs: one per configuration probed (the
    reference, or the load class alone, where the runs name one: what `resolve`
    simulates), each PROBE_STEPS short simulations near the configured rate
    (sagetui/suites/capacity.py)."""
    from .capacity import BISECTION_STEPS, PROBE_MEASURE_S, PROBE_WARMUP_S
    from .relative import _probe_target, needs_probe, probe_key

    seen: dict[str, RunConfig] = {}
    for cfg in exp.runs:
        if needs_probe(cfg):
            target = _probe_target(cfg, None)
            seen.setdefault(probe_key(target), target)
    total = 0.0
    for cfg in seen.values():
        w = cfg.workload.model_copy(update={"duration_s": PROBE_MEASURE_S,
                                            "warmup_s": PROBE_WARMUP_S})
        step = sim_run_seconds(cfg.model_copy(update={"workload": w}), costs)
        total += (BISECTION_STEPS + 3) * step
    return total


def estimate_seconds(exp: Experiment, costs: SimCosts = SIM) -> float:
    """Expected wall time: simulated runs at the measured costs; live runs in real time
    plus one start per distinct launched engine; capacity probes first (relative loads)."""
    total = costs.suite_start_s + probe_seconds(exp, costs)
    for cfg in map(_as_planned, exp.runs):
        if cfg.run.mode == "sim":
            total += sim_run_seconds(cfg, costs)
        else:
            total += cfg.workload.end_s + LIVE_RUN_EXTRA_S
    if any(c.run.mode == "live" for c in exp.runs):
        total += LIVE_ENGINE_START_S * len({(b.kind, b.preset, b.model) for c in exp.runs
                                            for b in c.backends if not b.url})
    return total


def agents_seconds(strategies: tuple[str, ...], items: dict[str, int], mode: str,
                   costs: AgentCosts = AGENTS, llm_items: dict[str, int] | None = None) -> float:
    """The agents suite: start + items × each strategy's cost; the LLM strategy (live only)
    adds an engine start and one call per item (`llm_items`, default `items`)."""
    n = sum(items.values())
    total = costs.start_s + sum(costs.per_item_s.get(s, 0.0) * n for s in strategies
                                if s != "llm")
    if mode == "live" and "llm" in strategies:
        total += costs.engine_start_s + costs.llm_per_item_s * sum(
            (llm_items or items).values())
    return total


def agents_suite_seconds(raw: dict, *, quick: bool, mode: str) -> float:
    """`agents_seconds` for an agents suite file (its dataset, strategies and limits)."""
    from ..agents.runner import item_counts, load_dataset, parse_config

    cfg = parse_config(raw.get("agents", {}), "suite", raw.get("quick") if quick else None)
    counts = item_counts(load_dataset(cfg.dataset), cfg)
    retrieval = next((counts[s] for s in cfg.strategies if s != "llm"), {})
    return agents_seconds(cfg.strategies, retrieval, mode, llm_items=counts.get("llm"))
