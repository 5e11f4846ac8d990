"""Can 8 serve-sim engines take 1000 req/s on this machine? (load generator straight to them)

Why: the gateway benchmark puts 8 serve-sim backends behind the gateway at
1000 req/s; the engines themselves must not be what limits it. This runs the
load generator (loadgen.runner, open-loop Poisson, client-side round-robin)
straight at 6 LLM engines (preset 7b-h100) and 2 embedding engines
(minilm-h100): 70 % streamed chat (32 prompt / 8 output tokens), 30 % one-text
embeddings. It reports the rate achieved, failures, client lateness, latency
against the model's single-request figures, and the engines' total CPU.

    .venv/bin/python benches/bench_sim_fleet.py [--rates 500 1000] [--duration 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.launcher import Launcher  # noqa: E402
from engine.spec import BackendSpec  # noqa: E402
from loadgen.client import ClientConfig  # noqa: E402
from loadgen.runner import run  # noqa: E402
from loadgen.spec import WorkloadSpec  # noqa: E402


def _cpu(engines) -> float:
    return sum(sum(psutil.Process(e.pid).cpu_times()[:2]) for e in engines)


def _pct(xs, q) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def measure(engines, rate: float, duration: float, warmup: float, workers: int) -> dict:
    spec = WorkloadSpec(rate=rate, duration_s=duration, warmup_s=warmup, seed=11,
                        mix={"chat": 0.7, "completion": 0.0, "embedding": 0.3, "pipeline": 0.0},
                        sizes={"chat": {"prompt_tokens": 32, "output_tokens": 8},
                               "embedding": {"n_texts": 1, "text_tokens": 16}},
                        model="llama-2-7b", embedding_model="all-MiniLM-L6-v2")
    llm = [e.url for e in engines if e.spec.capabilities != ["embedding"]]
    emb = [e.url for e in engines if e.spec.capabilities == ["embedding"]]
    c0 = _cpu(engines)
    res = run(spec, ClientConfig(targets={"chat": llm, "embedding": emb}, concurrency=4096),
              workers=workers)
    cpu = _cpu(engines) - c0
    recs = [r for r in res.records if r.t_intended >= warmup]
    ok = [r for r in recs if r.status == "completed"]
    span = max(r.t_done for r in ok) - min(r.t_intended for r in recs)
    chat = [r for r in ok if r.cls == "chat"]
    return {
        "rate": rate, "n": len(recs), "failed": len(recs) - len(ok),
        "done_rps": len(ok) / span,
        "late_p99": _pct([(r.t_sent - r.t_intended) * 1e3 for r in recs if r.t_sent], 99),
        "chat_e2e_p50": _pct([(r.t_done - r.t_sent) * 1e3 for r in chat], 50),
        "chat_e2e_p99": _pct([(r.t_done - r.t_sent) * 1e3 for r in chat], 99),
        "emb_e2e_p50": _pct([(r.t_done - r.t_sent) * 1e3 for r in ok if r.cls == "embedding"], 50),
        "engines_cpu_share": cpu / (duration + warmup),
        "engines_cpu_us_per_req": cpu * 1e6 / max(len(res.records), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[500, 1000])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--workers", type=int, default=1, help="load generator processes")
    a = ap.parse_args()
    specs = [BackendSpec(name=f"llm{i}", kind="sim", capabilities=["chat"], preset="7b-h100")
             for i in range(6)]
    specs += [BackendSpec(name=f"emb{i}", kind="sim", capabilities=["embedding"],
                          preset="minilm-h100") for i in range(2)]
    with tempfile.TemporaryDirectory() as run_dir, Launcher(specs, run_dir) as engines:
        rows = [measure(engines, r, a.duration, a.warmup, a.workers) for r in a.rates]
    print(f"8 serve-sim engines (6x 7b-h100, 2x minilm-h100), {a.duration:g} s measured after "
          f"{a.warmup:g} s warm-up, load generator workers {a.workers}")
    print("| target req/s | done req/s | failed | lateness p99 ms | chat E2E p50 / p99 ms | "
          "embedding E2E p50 ms | engines CPU (cores) | engines CPU µs/req |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['rate']:.0f} | {r['done_rps']:.0f} | {r['failed']} | {r['late_p99']:.1f} | "
              f"{r['chat_e2e_p50']:.1f} / {r['chat_e2e_p99']:.1f} | {r['emb_e2e_p50']:.1f} | "
              f"{r['engines_cpu_share']:.2f} | {r['engines_cpu_us_per_req']:.0f} |")


if __name__ == "__main__":
    main()
