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
TARGET = 0.10  # |relative error| a figure must stay within
REQUIRED = 18 / 21  # share of figures within TARGET for the suite to hold
DESCRIPTION = "Simulator fidelity: live vs calibrated simulation per load — p50/p99 TTFT and E2E, throughput, relative error"


def _within(blocks: list[dict], key: str) -> tuple[int, int]:
    """How many of the blocks' figures under `key` are within TARGET, of how many."""
    errs = [abs(e["rel_error"]) for b in blocks for e in (b.get(key) or {}).values()]
    return sum(x <= TARGET for x in errs), len(errs)


def verdict(blocks: list[dict]) -> str:
    """The suite's verdict from its per-load blocks. A live side that does not repeat
    itself within the target gives no verdict: the simulator cannot be shown closer
    to live than live is to itself, and a verdict there would measure the machine."""
    met, total = _within(blocks, "errors")
    rep, rep_total = _within(blocks, "live_noise")
    figures = f"{met} of {total} figures within ±{100 * TARGET:.0f}%"
    if rep_total and rep < REQUIRED * rep_total:
        return (f"no verdict: the live repeat held only {rep} of {rep_total} figures within "
                f"±{100 * TARGET:.0f}% ({figures}); the machine's speed moved more than the "
                "target allows, so run the suite again on a quieter machine")
    word = "holds" if total and met >= REQUIRED * total else "misses"
    repeat = f"; live repeat {rep} of {rep_total}" if rep_total else "; no live repeat"
    return f"{word}: {figures} (needs {REQUIRED * total:.0f}){repeat}"


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
    blocks = []
    for run in sorted(ctx.runs, key=lambda r: r.id):
        block = _block(run)
        if block is None:
            continue
        used.append(run.id)
        blocks.append(block)
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
        footnotes=[f"Verdict: {verdict(blocks)}."],
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
