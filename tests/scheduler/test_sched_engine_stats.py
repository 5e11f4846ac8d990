"""Predictions from the work ahead, and the engine stats (engine_state events) that
add a live engine's own queue to them.

A backend's predicted first token comes from the tokens dispatched there and its
cost model, corrected by what was observed; an engine that reports a queue of its
own is slower still, and routing must see both.
"""

from __future__ import annotations

import pytest
from sched_helpers import chat, llm, make_cp

from engine.spec import EngineStats
from scheduler.actions import Dispatch


def _dispatched_to(actions) -> str:
    (d,) = [a for a in actions if isinstance(a, Dispatch)]
    return d.backend


def test_an_unseen_backend_is_predicted_from_its_prior_never_zero():
    cp = make_cp([llm("a")], policy="slo")
    a = cp.backends["a"]
    assert a.predict_ttft(64) > 0.005  # 7B on an H100: at least one step
    assert a.predict_tpot() > 0.005


def test_prediction_grows_with_the_prefill_ahead_and_the_decode_batch():
    cp = make_cp([llm("a", conc=64)], policy="fifo")
    a = cp.backends["a"]
    idle = a.predict_ttft(512)
    for i in range(20):
        cp.on_arrival(chat(i, 0.0, prompt=2000, out=100), 0.0)
    assert a.prefill_ahead == 40_000 and a.n_prefilling == 20
    behind = a.predict_ttft(512)
    assert behind > 4 * idle  # 40k tokens of prefill ahead take several steps
    for i in range(20):
        cp.on_progress("a", f"c{i}", 0.5)
    assert a.prefill_ahead == 0
    assert idle < a.predict_ttft(512) < behind  # only the decode batch slows it now
    assert a.predict_tpot() > cp.backends["a"].model.beta0


def test_observations_correct_the_prediction():
    cp = make_cp([llm("a")], policy="fifo")
    a = cp.backends["a"]
    prior = a.predict_ttft(64)
    for i in range(30):  # every first token comes 3x later than predicted
        (d,) = cp.on_arrival(chat(i, float(i)), float(i))
        cp.on_progress("a", f"c{i}", i + 3 * prior)
        cp.on_completion("a", d.dispatch_id, i + 0.5)
    assert a.predict_ttft(64) == pytest.approx(3 * prior, rel=0.05)


def test_dispatch_stops_at_the_kv_capacity_and_keeps_the_rest_central():
    cp = make_cp([llm("a", conc=256)], policy="fifo")
    a = cp.backends["a"]
    need = 20_000  # a 7B on an H100 holds ~111k KV tokens: five of these
    acts = [x for i in range(8) for x in cp.on_arrival(chat(i, 0.0, prompt=16_000, out=4000),
                                                       0.0)]
    assert len([x for x in acts if isinstance(x, Dispatch)]) == a.kv_cap // need
    assert cp.queued["chat"] == 8 - a.kv_cap // need


def test_estimate_adds_the_engines_queue_in_turnovers_of_its_batch():
    cp = make_cp([llm("a")], policy="slo")
    a = cp.backends["a"]
    base = a.estimate("llm", 64)
    cp.on_engine_state("a", EngineStats(running=4, waiting=0, kv_use=0.2), 0.0)
    assert a.estimate("llm", 64) == pytest.approx(base)  # nothing queued inside
    # A completion teaches the turnover time (dispatch -> done).
    (d,) = cp.on_arrival(chat(1, 0.0), 0.0)
    cp.on_progress("a", "c1", 0.010)
    cp.on_completion("a", d.dispatch_id, 0.500)
    assert a.e2e_est == pytest.approx(0.500)
    cp.on_engine_state("a", EngineStats(running=4, waiting=8, kv_use=0.9), 1.0)
    # 8 waiting behind 4 running: two turnovers of 0.5 s before this one starts.
    assert a.estimate("llm", 64) == pytest.approx(a.predict_ttft(64) + 8 / 4 * 0.500)


def _two_alike(policy: str, router: str = "least-work"):
    cp = make_cp([llm("a", conc=8), llm("b", conc=8)], policy=policy, router=router)
    for b in cp.backend_list:
        b.observe_e2e(0.400)
    return cp


def test_least_work_avoids_a_backend_whose_engine_reports_a_queue():
    quiet = _two_alike("slo")
    assert _dispatched_to(quiet.on_arrival(chat(1, 0.0, slo_ttft_ms=2000), 0.0)) == "a"
    loaded = _two_alike("slo")
    loaded.on_engine_state("a", EngineStats(running=8, waiting=16, kv_use=0.95), 0.0)
    assert _dispatched_to(loaded.on_arrival(chat(1, 0.0, slo_ttft_ms=2000), 0.0)) == "b"
    # Stats that show the queue gone restore the first choice.
    loaded.on_engine_state("a", EngineStats(running=3, waiting=0, kv_use=0.3), 0.1)
    loaded.on_engine_state("b", EngineStats(running=3, waiting=0, kv_use=0.3), 0.1)
    cp = _two_alike("slo")
    assert _dispatched_to(cp.on_arrival(chat(2, 0.1, slo_ttft_ms=2000), 0.1)) == "a"


def test_least_work_spreads_equal_engines_evenly():
    cp = _two_alike("fifo")
    sent = [_dispatched_to(cp.on_arrival(chat(i, 0.0, prompt=256), 0.0)) for i in range(8)]
    assert sent.count("a") == sent.count("b") == 4


def test_cost_aware_router_spills_off_a_cheap_backend_that_reports_a_queue():
    def cp_():
        cp = make_cp([llm("gpu", price_per_hour=2.5),
                      llm("cpu", device="cpu", price_per_hour=0.1, preset="tiny-cpu")],
                     policy="fifo", router="cost-aware")
        cp.backends["cpu"].observe_e2e(1.0)
        return cp

    cp = cp_()
    assert _dispatched_to(cp.on_arrival(chat(1, 0.0, slo_ttft_ms=100), 0.0)) == "cpu"
    cp = cp_()
    cp.on_engine_state("cpu", EngineStats(running=2, waiting=3, kv_use=0.5), 0.0)
    assert _dispatched_to(cp.on_arrival(chat(1, 0.0, slo_ttft_ms=100), 0.0)) == "gpu"


def test_stats_cost_nothing_without_them_in_simulation():
    # The simulator sends no engine_state events: the prediction has no queue term.
    cp = make_cp([llm("a")], policy="slo")
    a = cp.backends["a"]
    assert a.stats is None
    assert a.estimate("llm", 64) == pytest.approx(a.predict_ttft(64))
