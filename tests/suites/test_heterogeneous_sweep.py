"""Suite D's embedding-load sweep shows the pools diverging, in the simulator.

The claim the sweep exists for: below the CPU pool's capacity the mixed pool
behaves like CPU-only (the hybrid policy keeps embeddings on the cheap CPU
nodes); well above it CPU-only collapses while mixed spills to its GPU and keeps
meeting the SLO, like GPU-only.
"""

from __future__ import annotations

import json

from exports.api import export
from exports.selection import Selection
from sagetui.config import Experiment
from sagetui.orchestrate.runner import run_experiment
from sagetui.suites import expand_suite, find_suite
from sagetui.suites.relative import class_rates

LOAD_PARTS = ("load-gpu-only", "load-cpu-only", "load-mixed")
PLACEMENT_PARTS = ("split", "colocated", "cpu-nodes")


def test_placement_chat_load_goes_from_light_past_three_gpus():
    """Chat is offered at fractions of one measured capacity, two 7B H100s' chat alone,
    the same for every placement: below 1, between 1 and the colocated part's three GPUs
    (~1.5), and past them; embeddings stay at their configured rates beside it."""
    for quick in (False, True):
        exp = expand_suite(find_suite("heterogeneous"), quick=quick)
        runs = [c for c in exp.runs if c.run.part in PLACEMENT_PARTS]
        assert {c.run.part for c in runs} == set(PLACEMENT_PARTS)
        assert {c.run.load_class for c in runs} == {"chat"}
        refs = {json.dumps(c.run.capacity_reference, sort_keys=True) for c in runs}
        assert len(refs) == 1
        (ref,) = [c.run.capacity_reference for c in runs[:1]]
        assert [(b["preset"], b["replicas"]) for b in ref["backends"]] == [("7b-h100", 2)]
        fractions = {c.run.load_fraction for c in runs}
        assert min(fractions) <= 0.5 and any(1.0 < f < 1.5 for f in fractions)
        assert quick or max(fractions) > 1.5
        embed = {round(class_rates(c.workload)["embedding"]) for c in runs}
        assert embed == ({100, 1600} if quick else {100, 400, 1600})
    assert all(c.run.load_fraction is None for c in exp.runs if c.run.part in LOAD_PARTS)


def test_load_sweep_spans_the_cpu_pool_capacity():
    exp = expand_suite(find_suite("heterogeneous"))
    rates = {cfg.run.part: set() for cfg in exp.runs}
    for cfg in exp.runs:
        rates[cfg.run.part].add(cfg.workload.rate)
        if cfg.run.part in LOAD_PARTS:
            assert cfg.workload.mix["embedding"] == 1.0
    for part in LOAD_PARTS:
        # The 4-node CPU pool serves ~280 embedding req/s in the simulator.
        assert min(rates[part]) <= 100 and max(rates[part]) >= 600, rates[part]


def test_quick_load_sweep_shows_cpu_saturating_and_mixed_spilling(db_path, tmp_path):
    full = expand_suite(find_suite("heterogeneous"), quick=True)
    runs = [c for c in full.runs if c.run.part in LOAD_PARTS]
    exp = Experiment(name=full.name, source=full.source, spec_text=full.spec_text, runs=runs,
                     sweep=full.sweep)
    reports = run_experiment(exp, str(db_path), kind="suite", suite="heterogeneous")
    assert {r.status for r in reports} == {"completed"}
    export(db_path, fmt="json", selection=Selection(suite="heterogeneous"),
           out_dir=tmp_path / "out", table="heterogeneous")
    table = json.loads((tmp_path / "out" / "heterogeneous.json").read_text())
    cell = {(r["load"], r["pool"]): r for r in table["rows"]}
    low, high = min(k[0] for k in cell), max(k[0] for k in cell)
    slo = {k: v["slo"]["mean"] for k, v in cell.items()}
    thr = {k: v["throughput"]["mean"] for k, v in cell.items()}
    # Low load: every pool keeps up; mixed routes exactly like CPU-only (CPU first).
    assert all(slo[(low, p)] >= 95 for p in ("GPU-only", "CPU-only", "mixed"))
    assert thr[(low, "mixed")] == thr[(low, "CPU-only")]
    assert cell[(low, "mixed")]["p99"]["mean"] == cell[(low, "CPU-only")]["p99"]["mean"]
    # High load: CPU-only saturates, mixed spills to the GPU and keeps (nearly) all.
    # (admission control still serves a quarter on time where FIFO would serve none)
    assert slo[(high, "CPU-only")] < 50 and thr[(high, "CPU-only")] < 0.7 * high
    assert slo[(high, "GPU-only")] >= 99
    assert slo[(high, "mixed")] >= 90 and thr[(high, "mixed")] >= 0.95 * high
