"""GPU fidelity: the published vLLM 0.11 H100 traces replayed against the presets.

    .venv/bin/python benches/bench_gpu_traces.py [table|fit|ablate|phases|lone|jitter]

table  — every trace against its preset: TTFT / E2E / TPOT error (mean, p50, p90),
         per-request MAPE, the burst phase's E2E error, and the prefix cache hit rate
         simulated (as vLLM 0.11 logs it) beside the one vLLM logged.
fit    — the H100 roofline fitted on each CodeLlama-34B trace in turn (engine.sim.tracefit),
         each fit's errors on the other two and on the held-out Llama-2-7B trace.
ablate — what each modelling step is worth: the datasheet roofline (linear step, no
         prefix caching), the fitted one without prefix caching, and the fitted one
         with its KV reads at the split-KV cost at every batch size.
phases — each trace's TTFT MAPE per load phase, and the points of the whole trace's
         MAPE each phase contributes.
lone   — requests that met an idle engine: measured minus simulated TTFT fitted as
         a + b·prompt (engine.sim.replay.lone_residual), prompts within one step's budget.
jitter — every arrival moved by U(-1, 1) ms, 20 seeds: the spread of each trace's TTFT
         and E2E MAPE (where a short prompt lands in a running decode step).
Figures go to docs/fidelity.md (## GPU fidelity). Traces: tests/data/gpu_traces.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.sim.cost import derive_llm_cost  # noqa: E402
from engine.sim.otel import (
    GpuTrace,  # noqa: E402
    read_trace,  # noqa: E402
)
from engine.sim.presets import (  # noqa: E402
    CODELLAMA_34B,
    DEVICES,
    GPU_COHOST_SLOWDOWN,
    MODELS,
    get_llm_preset,
)
from engine.sim.replay import lone_residual, replay, report  # noqa: E402
from engine.sim.tracefit import FITTED, fit_roofline, roofline_preset  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "gpu_traces"
TRACES = {  # name -> (file, preset, role)
    "codellama34b sweep": ("codellama34b-h100-sweep.jsonl", "codellama-34b-h100", "fitted"),
    "codellama34b prefix1024": ("codellama34b-h100-prefix1024.jsonl", "codellama-34b-h100",
                                "held out"),
    "codellama34b prefix1024 budget64": ("codellama34b-h100-prefix1024-budget64.jsonl",
                                         "codellama-34b-h100", "held out"),
    "llama2-7b sweep": ("llama2-7b-h100-sweep.jsonl", "7b-h100", "held out"),
}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:+.1f}"


def row(name: str, role: str, preset_name: str, rep: dict) -> str:
    w = rep["parts"][0]
    burst = next((p for p in rep["parts"] if p["phase"] == "burst"), None)
    stats = " | ".join(f"{_pct(w[m]['error']['mean'])} / {_pct(w[m]['error']['p50'])} / "
                       f"{_pct(w[m]['error']['p90'])}" for m in ("ttft", "e2e", "tpot"))
    hit, logged = rep["prefix_hit_rate_as_logged"], rep["prefix_hit_rate_logged"]
    return (f"| {name} | {role} | `{preset_name}` | {stats} | {100 * w['ttft']['mape']:.1f} | "
            f"{100 * w['e2e']['mape']:.1f} | {_pct(burst['e2e']['error']['mean'] if burst else None)}"
            f" | {100 * (hit or 0):.1f} / {100 * (logged or 0):.1f} |")


HEAD = ("| trace | | preset | TTFT mean / p50 / p90 % | E2E mean / p50 / p90 % | "
        "TPOT mean / p50 / p90 % | TTFT MAPE % | E2E MAPE % | burst E2E % | "
        "prefix hits sim / vLLM % |\n|---|---|---|---|---|---|---|---|---|---|")


def table() -> None:
    print(HEAD)
    for name, (f, preset, role) in TRACES.items():
        rep = report(replay(read_trace(DATA / f), get_llm_preset(preset)))
        print(row(name, role, preset, rep))


def fit() -> None:
    h100 = DEVICES["H100"]
    traces = {n: read_trace(DATA / f) for n, (f, _, _) in TRACES.items()}
    for name in [n for n in TRACES if n.startswith("codellama")]:
        t0 = time.perf_counter()
        f = fit_roofline([traces[name]], CODELLAMA_34B, h100)
        print(f"\n### fitted on {name} ({time.perf_counter() - t0:.0f} s, "
              f"{f.evaluations} replays, score {f.score:.4f})")
        print(", ".join(f"{k} {getattr(f.roofline, k):.4g}" for k in FITTED))
        print(HEAD)
        for other, t in traces.items():
            model = MODELS["7b"] if other.startswith("llama2") else CODELLAMA_34B
            p = roofline_preset("fit", model, h100, 1, f.roofline, 16 * 1024)
            print(row(other, "fitted" if other == name else "held out", "fit",
                      report(replay(t, p))))


def ablate() -> None:
    h100 = DEVICES["H100"]
    print(HEAD)
    for name, (f, preset, _) in TRACES.items():
        t = read_trace(DATA / f)
        model = MODELS["7b"] if name.startswith("llama2") else CODELLAMA_34B
        fitted = get_llm_preset(preset)
        roof = replace(fitted, name="roofline", cost=replace(
            derive_llm_cost(model, h100, 1), cohost_slowdown=GPU_COHOST_SLOWDOWN))
        print(row(name, "datasheet roofline, no prefix caching", "roofline",
                  report(replay(t, roof, prefix_caching=False))))
        print(row(name, "datasheet roofline", "roofline", report(replay(t, roof))))
        print(row(name, "fitted, no prefix caching", preset,
                  report(replay(t, fitted, prefix_caching=False))))
        split = replace(fitted, cost=replace(fitted.cost, attn_split_tiles=0.0))
        print(row(name, "fitted, KV read split at every batch size", preset,
                  report(replay(t, split))))


def phases_table() -> None:
    for name, (f, preset, _) in TRACES.items():
        rep = report(replay(read_trace(DATA / f), get_llm_preset(preset)))
        total = rep["parts"][0]["ttft"]["n"]
        print(f"\n### {name} (`{preset}`)\n\n| phase | n | TTFT mean error % | TTFT MAPE % "
              f"| points of the whole MAPE |\n|---|---|---|---|---|")
        for part in rep["parts"]:
            e = part["ttft"]
            print(f"| {part['phase']} | {e['n']} | {_pct(e['error']['mean'])} | "
                  f"{100 * e['mape']:.1f} | {100 * e['mape'] * e['n'] / total:.2f} |")


def lone() -> None:
    print("| trace | lone requests | prompt tokens | measured - simulated TTFT: a ms | b µs/token "
          "| mean ms |\n|---|---|---|---|---|---|")
    for name, (f, preset, _) in TRACES.items():
        t = read_trace(DATA / f)
        budget = int(t.meta.get("max_num_batched_tokens") or 0) or None
        try:
            r = lone_residual(replay(t, get_llm_preset(preset)), budget)
        except ValueError:  # too few prompts within the budget: chunked, not one step
            print(f"| {name} | under 3 within one step ({budget} tokens) | | | | |")
            continue
        print(f"| {name} | {r['n']} | {r['prompt_min']}–{r['prompt_max']} | "
              f"{1e3 * r['intercept']:+.2f} ± {1e3 * r['intercept_se']:.2f} | "
              f"{1e6 * r['slope']:+.2f} ± {1e6 * r['slope_se']:.2f} | {1e3 * r['mean']:+.2f} |")


def jittered(t: GpuTrace, seed: int, ms: float = 1.0) -> GpuTrace:
    """The trace with every arrival moved by U(-ms, ms) milliseconds (order re-sorted)."""
    rng = random.Random(seed)
    reqs = sorted((replace(r, t=max(0.0, r.t + rng.uniform(-ms, ms) / 1e3))
                   for r in t.requests), key=lambda r: r.t)
    return GpuTrace(t.path, reqs, t.meta)


def jitter(seeds: int = 20) -> None:
    print("| trace | TTFT MAPE % min / median / max | E2E MAPE % min / median / max |\n|---|---|---|")
    for name, (f, preset, _) in TRACES.items():
        t, p = read_trace(DATA / f), get_llm_preset(preset)
        wholes = [report(replay(jittered(t, s), p))["parts"][0] for s in range(seeds)]
        cells = []
        for m in ("ttft", "e2e"):
            xs = [100 * w[m]["mape"] for w in wholes]
            cells.append(f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f}")
        print(f"| {name} | {cells[0]} | {cells[1]} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = {"table": table, "fit": fit, "ablate": ablate, "phases": phases_table,
                "lone": lone, "jitter": jitter}
    ap.add_argument("what", choices=tuple(commands), nargs="?", default="table")
    commands[ap.parse_args().what]()


if __name__ == "__main__":
    main()
