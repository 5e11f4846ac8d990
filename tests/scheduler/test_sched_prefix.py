"""Shared prompt prefixes through the virtual-time runtime: the engines reuse the cached
prefix and the run counts the hits (engine.sim.prefix)."""

from __future__ import annotations

from sched_helpers import chat, llm, poisson

from scheduler.config import ControlPlaneConfig
from scheduler.simrt import simulate


def reqs(prefix: bool):
    out = poisson(20, 5.0, 3, lambda i, t, rng: chat(i, t, prompt=1500, out=16))
    for r in out:
        if prefix:
            r.prefix_id, r.prefix_tokens = "system", 1024
    return out


def test_a_shared_prefix_is_computed_once_per_engine_and_counted():
    cfg = ControlPlaneConfig(policy="fifo", admission="off")
    with_p = simulate(cfg, [llm("g0", conc=16)], reqs(True))
    without = simulate(cfg, [llm("g0", conc=16)], reqs(False))
    pc = with_p.counters["prefix_cache"]
    n = len(with_p.outcomes)
    assert pc["queries"] == 1500 * n and pc["hits"] == 1024 * (n - 1)
    assert without.counters["prefix_cache"]["hits"] == 0

    def ttft(res):
        return sorted(o.t_first_token - o.t_dispatched for o in res.outcomes)[n // 2]

    assert ttft(with_p) < 0.6 * ttft(without)
