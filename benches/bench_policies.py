"""Policies against scheduling theory, in simulation: the acceptance workload.

    .venv/bin/python benches/bench_policies.py [--seeds 3] [--loads 0.5,0.85,1.2,1.5]
        [--policies fifo,priority,slo,hybrid,vllm-priority] [--duration 60]

The workload is suite B's base (two 7B engines on H100s for chat, a MiniLM GPU
and a MiniLM CPU backend for embeddings, 70 % chat / 30 % embeddings) with two
chat SLO tiers (30 % TTFT <= 300 ms, 70 % TTFT <= 3 s). Capacity is measured
first (fifo, bisection on the rate: achieved >= 95 % of offered and chat TTFT
p99 under the loose tier's 3 s), then every policy runs at fractions of it.
Printed per point, mean and 95 % CI over seeds: chat SLO attainment (all, per
tier, priority 0), goodput, chat TTFT p50, embedding p50, per-engine in-flight
CV, KV preemptions and rejections/sheds. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadgen.schedule import build_schedule  # noqa: E402
from sagetui.config import expand_raw, read_toml  # noqa: E402
from scheduler.simrt import simulate  # noqa: E402

SUITE_B = Path(__file__).resolve().parents[1] / "sagetui/suites/b-policies.toml"
TIERS = ["workload.slos.chat.tiers=[{name='tight',share=0.3,ttft_ms=300},"
         "{name='loose',share=0.7,ttft_ms=3000}]"]
WARMUP_S = 10.0
# suite B's traffic patterns (each at the swept rate)
PATTERNS = {
    "steady": [],
    "gamma": ["workload.arrival={kind='gamma',cv=3.0}"],
    "onoff": ["workload.arrival={kind='onoff',factor=2.0,on_s=5.0,off_s=5.0}"],
    "adversarial": ["workload.arrival={kind='adversarial',attack='priority_inversion',"
                    "start_s=10.0,length_s=10.0,factor=0.5,trickle_rps=5.0}"],
}


def config(policy: str, rate: float, duration: float, seed: int, pattern: str = "steady"):
    """Suite B's base at `rate`, with the two tiers; `vllm-priority` is the baseline
    with no control plane and vLLM's own priority scheduling on the engines."""
    sets = [f"workload.rate={rate}", f"workload.duration_s={duration}",
            f"workload.warmup_s={WARMUP_S}", "run.repetitions=1", f"run.seed={seed}", *TIERS,
            *PATTERNS[pattern],
            # as many slots as vLLM runs sequences: the KV capacity bounds dispatch
            "backends.0.max_concurrency=256", "backends.1.max_concurrency=256"]
    if policy == "vllm-priority":
        sets += ["control_plane.baseline='vllm-only'"]
        sets += [f"backends.{i}.extra_args=['--scheduling-policy','priority']" for i in (0, 1)]
    else:
        sets.append(f"control_plane.policy='{policy}'")
    # the suite's relative loads are swept here by hand (fractions of `capacity()`)
    base = {k: v for k, v in read_toml(SUITE_B)[0]["base"].items() if k != "relative_load"}
    return expand_raw(base, source=str(SUITE_B), spec_text="", overrides=sets).runs[0]


def run_point(policy: str, rate: float, duration: float, seed: int,
              pattern: str = "steady") -> dict:
    cfg = config(policy, rate, duration, seed, pattern)
    reqs = build_schedule(cfg.workload)
    res = simulate(cfg.control_plane, cfg.backends, reqs, horizon_s=cfg.workload.end_s + 120,
                   seed=seed)
    return measure(res, cfg, rate)


def _met(o) -> bool:
    if o.status != "completed":
        return False
    t0 = o.t_intended
    if o.slo_ttft_ms is not None and (o.t_first_token - t0) * 1000 > o.slo_ttft_ms:
        return False
    return o.slo_e2e_ms is None or (o.t_done - t0) * 1000 <= o.slo_e2e_ms


def measure(res, cfg, rate: float) -> dict:
    lo, hi = WARMUP_S, cfg.workload.end_s
    win = [o for o in res.outcomes if lo <= o.t_intended < hi]
    chat = [o for o in win if o.cls == "chat"]
    emb = [o for o in win if o.cls == "embedding"]

    def att(rows):
        return sum(map(_met, rows)) / len(rows) if rows else float("nan")

    def p50(xs):
        return statistics.median(xs) if xs else float("nan")

    done_chat = [o for o in chat if o.status == "completed"]
    by_backend = {}
    for s in res.samples:
        if lo <= s["t_s"] < hi:
            for name, b in s["backends"].items():
                if name.startswith("gpu") and name != "gpu-embed":
                    by_backend.setdefault(name, []).append(b["in_flight"])
    means = [statistics.mean(v) for v in by_backend.values() if v]
    cv = statistics.pstdev(means) / statistics.mean(means) if means and statistics.mean(means) else 0
    reasons = {}
    for o in win:
        if o.status != "completed":
            reasons[o.reason] = reasons.get(o.reason, 0) + 1
    return {
        "att_chat": att(chat),
        "att_tight": att([o for o in chat if o.slo_tier == "tight"]),
        "att_loose": att([o for o in chat if o.slo_tier == "loose"]),
        "att_p0": att([o for o in chat if o.priority == 0]),
        "att_emb": att(emb),
        "goodput": sum(map(_met, win)) / (hi - lo),
        "goodput_chat": sum(map(_met, chat)) / (hi - lo),
        "achieved": sum(o.status == "completed" for o in win) / (hi - lo),
        "ttft_p50_ms": 1000 * p50([o.t_first_token - o.t_intended for o in done_chat]),
        "ttft_p99_ms": 1000 * (sorted(o.t_first_token - o.t_intended for o in done_chat)
                               [int(0.99 * (len(done_chat) - 1))] if done_chat else float("nan")),
        "emb_p50_ms": 1000 * p50([o.t_done - o.t_intended for o in emb if o.status == "completed"]),
        "cv": cv,
        "preempt": res.counters.get("preemptions", 0),
        "reasons": reasons,
        "offered": rate,
    }


def capacity(duration: float, seed: int, lo: float = 20, hi: float = 200) -> float:
    """Highest rate fifo sustains: achieved >= 95 % of offered, chat TTFT p99 <= 3 s."""
    for _ in range(8):
        mid = (lo + hi) / 2
        m = run_point("fifo", mid, duration, seed)
        ok = m["achieved"] >= 0.95 * mid and m["ttft_p99_ms"] <= 3000
        lo, hi = (mid, hi) if ok else (lo, mid)
    return lo


def _ci(xs: list[float]) -> str:
    m = statistics.mean(xs)
    if len(xs) < 2:
        return f"{m:.3f}"
    from scipy import stats

    h = stats.t.ppf(0.975, len(xs) - 1) * statistics.stdev(xs) / len(xs) ** 0.5
    return f"{m:.3f}±{h:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--loads", default="0.5,0.85,1.2,1.5")
    ap.add_argument("--policies", default="fifo,priority,slo,hybrid,vllm-priority")
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--capacity", type=float, default=0, help="skip the probe")
    ap.add_argument("--patterns", default="steady", help=f"of {','.join(PATTERNS)}")
    a = ap.parse_args()
    t0 = time.perf_counter()
    cap = a.capacity or capacity(max(a.duration, 60), 1)
    print(f"capacity (fifo, measured): {cap:.1f} req/s  [{time.perf_counter() - t0:.0f} s]")
    keys = ["att_chat", "att_tight", "att_loose", "att_p0", "att_emb", "goodput",
            "ttft_p50_ms", "emb_p50_ms", "cv", "preempt"]
    print("pattern load policy " + " ".join(keys) + " reasons")
    for pattern in a.patterns.split(","):
        for x in map(float, a.loads.split(",")):
            for pol in a.policies.split(","):
                ms = [run_point(pol, x * cap, a.duration, s, pattern)
                      for s in range(1, a.seeds + 1)]
                cells = [_ci([m[k] for m in ms]) for k in keys]
                print(f"{pattern} {x:.2f} {pol} " + " ".join(cells) + f" {ms[0]['reasons']}",
                      flush=True)
    print(f"[{time.perf_counter() - t0:.0f} s]")


if __name__ == "__main__":
    main()
