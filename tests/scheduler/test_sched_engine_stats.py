"""Engine stats (engine_state events) feed the latency estimates that route requests.

A backend whose engine reports a queue of its own is slower than its learnt
estimate says: least-slack (slo) and cost-aware routing must see that.
"""

from __future__ import annotations

import pytest
from sched_helpers import chat, llm, make_cp

from engine.spec import EngineStats
from scheduler.actions import Dispatch


def _dispatched_to(actions) -> str:
    (d,) = [a for a in actions if isinstance(a, Dispatch)]
    return d.backend


def test_estimate_adds_the_engines_queue_in_turnovers_of_its_batch():
    cp = make_cp([llm("a")], policy="slo")
    a = cp.backends["a"]
    a.observe_ttft(0.010)
    assert a.estimate("llm", 64) == pytest.approx(0.010)
    cp.on_engine_state("a", EngineStats(running=4, waiting=0, kv_use=0.2), 0.0)
    assert a.estimate("llm", 64) == pytest.approx(0.010)  # nothing queued inside
    # A completion while stats arrive teaches the turnover time (dispatch -> done).
    (d,) = cp.on_arrival(chat(1, 0.0), 0.0)
    cp.on_progress("a", "c1", 0.010)
    cp.on_completion("a", d.dispatch_id, 0.500)
    assert a.e2e_est == pytest.approx(0.500)
    cp.on_engine_state("a", EngineStats(running=4, waiting=8, kv_use=0.9), 1.0)
    # 8 waiting behind 4 running: two turnovers of 0.5 s before this one starts.
    assert a.estimate("llm", 64) == pytest.approx(0.010 + 8 / 4 * 0.500)


def _two_alike(policy: str, router: str = "least-outstanding"):
    cp = make_cp([llm("a", conc=8), llm("b", conc=8)], policy=policy, router=router)
    for b in cp.backend_list:
        b.observe_ttft(0.020)
        b.observe_e2e(0.400)
    return cp


def test_slo_least_slack_avoids_a_backend_whose_engine_reports_a_queue():
    quiet = _two_alike("slo")
    assert _dispatched_to(quiet.on_arrival(chat(1, 0.0, slo_ttft_ms=200), 0.0)) == "a"
    loaded = _two_alike("slo")
    loaded.on_engine_state("a", EngineStats(running=8, waiting=16, kv_use=0.95), 0.0)
    # a: 0.02 + 2 x 0.4 s > the 200 ms SLO; b still meets it, so b gets the request.
    assert _dispatched_to(loaded.on_arrival(chat(1, 0.0, slo_ttft_ms=200), 0.0)) == "b"
    # Stats that show the queue gone restore the first choice.
    loaded.on_engine_state("a", EngineStats(running=3, waiting=0, kv_use=0.3), 0.1)
    assert _dispatched_to(loaded.on_arrival(chat(2, 0.1, slo_ttft_ms=200), 0.1)) == "a"


def test_cost_aware_router_spills_off_a_cheap_backend_that_reports_a_queue():
    def cp_():
        cp = make_cp([llm("gpu", price_per_hour=2.5),
                      llm("cpu", device="cpu", price_per_hour=0.1, preset="tiny-cpu")],
                     policy="fifo", router="cost-aware")
        gpu, cpu = cp.backends["gpu"], cp.backends["cpu"]
        gpu.observe_ttft(0.010)
        cpu.observe_ttft(0.080)
        cpu.observe_e2e(1.0)
        return cp

    cp = cp_()
    assert _dispatched_to(cp.on_arrival(chat(1, 0.0, slo_ttft_ms=100), 0.0)) == "cpu"
    cp = cp_()
    cp.on_engine_state("cpu", EngineStats(running=2, waiting=3, kv_use=0.5), 0.0)
    assert _dispatched_to(cp.on_arrival(chat(1, 0.0, slo_ttft_ms=100), 0.0)) == "gpu"


def test_stats_cost_nothing_without_them_in_simulation():
    # The simulator sends no engine_state events: no e2e learning, estimates unchanged.
    cp = make_cp([llm("a")], policy="slo")
    (d,) = cp.on_arrival(chat(1, 0.0), 0.0)
    cp.on_completion("a", d.dispatch_id, 0.3)
    a = cp.backends["a"]
    assert not a.e2e_seen and a.stats is None
    assert a.estimate("llm", 64) == pytest.approx(0.3)  # the TTFT EWMA alone
