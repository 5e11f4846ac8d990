"""Simulator fidelity (appendix): calibrated simulation vs live, per load and statistic.

Reads `extra_json.fidelity` of the fidelity suite's simulated runs (summary
`all`): {"live_run", "live_runs" (optional: all live runs of the load, pooled
as the reference), "sim_runs" (optional: all sim runs of the load, pooled; the
block sits on the first), "rate", "errors": {"chat.ttft.p50": {"live_ms", "sim_ms",
"rel_error"}, ..., "all.throughput_rps": {"live", "sim", "rel_error"}},
"live_noise": {same keys, second live run vs first} (optional),
"machine_speed": {"chat"|"embedding": {"change", "p_value", "n_profile", "n_live", ...}}
(optional: the drift probe before this load against the profile's, sagetui.suites.drift)}.
"""

from __future__ import annotations

from exports.context import ExportContext
from exports.errors import ExportError
from exports.table import Column, Table

NAME = "fidelity"
DESCRIPTION = "Simulator fidelity: live vs calibrated simulation per load — p50/p99 TTFT and E2E, throughput, relative error"


def _block(run) -> dict | None:
    s = run.summary("all")
    block = s.extra.get("fidelity") if s else None
    return block if isinstance(block, dict) and isinstance(block.get("errors"), dict) else None


def _ids(block: dict, key: str, single) -> str:
    runs = block.get(key)
    if isinstance(runs, list) and runs:
        return "+".join(str(r) for r in runs)
    return str(single)


def build(ctx: ExportContext) -> Table:
    rows = []
    used = []
    for run in sorted(ctx.runs, key=lambda r: r.id):
        block = _block(run)
        if block is None:
            continue
        used.append(run.id)
        noise = block.get("live_noise") or {}
        speed = block.get("machine_speed") or {}
        for stat, e in sorted(block["errors"].items()):
            live = e.get("live_ms", e.get("live"))
            sim = e.get("sim_ms", e.get("sim"))
            unit = "req/s" if stat.endswith("throughput_rps") else "ms"
            repeat = noise.get(stat, {}).get("rel_error")
            drift = (speed.get(stat.split(".", 1)[0]) or {}).get("change")
            rows.append({"rate": f"{block.get('rate', 0):g}", "stat": f"{stat} ({unit})",
                         "live": live, "sim": sim, "error": 100 * e["rel_error"],
                         "noise": None if repeat is None else 100 * repeat,
                         "drift": None if drift is None else 100 * drift,
                         "runs": f"{_ids(block, 'live_runs', block.get('live_run'))}/"
                                 f"{_ids(block, 'sim_runs', run.id)}"})
    if not rows:
        raise ExportError(f"{NAME}: no run carries extra_json.fidelity (run the fidelity suite: "
                          "sagetui suite run fidelity)")
    return Table(
        name=NAME,
        caption="Simulator fidelity: live runs vs the simulator calibrated from a live profiling run.",
        columns=[Column("rate", "Load (req/s)"), Column("stat", "Statistic"),
                 Column("live", "Live", 2), Column("sim", "Simulated", 2),
                 Column("error", "Error (%)", 1), Column("noise", "Live repeat (%)", 1),
                 Column("drift", "Machine drift (%)", 1),
                 Column("runs", "Runs (live/sim)")],
        rows=rows, run_ids=used,
        notes=["Error = (simulated - live) / live; the target is within 10%. Latencies are "
               "measured from the intended send time in both modes. Where a load ran live "
               "or simulated more than once (runs 8+9), that side is all its runs pooled "
               "(histograms merged).",
               "Live repeat = (second live run - first) / first, same workload and seed: "
               "the live noise floor (blank when the suite ran each load once).",
               "Machine drift = how much slower (+) the drift probe's lone requests of that "
               "class ran just before this load than in the profile the simulator was fitted "
               "on (medians; same workload and seed): a change of the machine, not of the "
               "simulator (blank without a probe or with under 5 lone requests)."],
    )
