"""Calibration recovers known coefficients and reports its error."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from engine.sim import SimLLMEngine
from engine.sim.calibrate import (
    calibrated,
    embedding_records_from_requests,
    fit_embedding,
    fit_requests,
    fit_steps,
    records_from_requests,
)
from engine.sim.cost import LLMCost
from engine.sim.frontend import Frontend
from engine.sim.presets import get_embed_preset, get_llm_preset, get_preset, save_preset

TRUE = LLMCost(beta0=6e-3, beta1=18e-6, beta2=7e-6, beta3=5e-8, alpha=4e-4)


def test_steps_fit_recovers_beta_within_2_percent_under_noise():
    rng = random.Random(1)
    recs = []
    for _ in range(400):
        p, d = rng.choice([0, rng.randint(1, 4096)]), rng.randint(0, 256)
        kv = d * rng.randint(100, 4000)
        t = TRUE.step_time(p, d, kv) * (1 + rng.gauss(0, 0.01))
        recs.append({"prefill": p, "decode": d, "kv_read": kv, "seconds": t})
    cost, rep = fit_steps(recs)
    for f in ("beta0", "beta1", "beta2", "beta3"):
        assert getattr(cost, f) == pytest.approx(getattr(TRUE, f), rel=0.02), f
    assert rep.r2 > 0.99 and rep.mape < 2.0


def test_steps_logged_by_the_simulator_give_back_its_preset():
    base = get_llm_preset("7b-h200")  # a linear step model (the H100 presets overlap theirs)
    eng = SimLLMEngine(base, record_steps=True)
    rng = random.Random(2)
    t = 0.0
    for i in range(300):
        t += rng.expovariate(30)
        while (te := eng.next_event_time()) is not None and te <= t:
            eng.advance(te)
        eng.submit(i, rng.randint(16, 2048), rng.randint(2, 200), 2, t)
    while (te := eng.next_event_time()) is not None:
        eng.advance(te)
    cost, rep = fit_steps(eng.step_log, fit_alpha=True)
    for f in ("beta0", "beta1", "beta2", "beta3", "alpha"):
        assert getattr(cost, f) == pytest.approx(getattr(base.cost, f), rel=1e-6), f
    assert rep.mape < 1e-6


def _closed_loop_rows(cost: LLMCost, concurrencies=(1, 2, 4, 8, 16), per_client=12,
                      seed=7) -> list[dict]:
    """Per-request rows of closed loops on the simulated engine: what a live
    profiling sweep stores (dispatch, first-token and done stamps per request)."""
    preset = replace(get_llm_preset("tiny-cpu"), cost=cost)
    return [row for c in concurrencies
            for row in _closed_loop(Frontend(SimLLMEngine(preset), cost.frontend), c, per_client,
                                    random.Random(seed + c))]


def _closed_loop(eng, c: int, per_client: int, rng: random.Random) -> list[dict]:
    rows, pending, left = [], {}, dict.fromkeys(range(c), per_client)

    def send(k: int, now: float) -> None:
        rid = (k, left[k])
        left[k] -= 1
        p, o = rng.randint(16, 384), rng.randint(8, 64)
        eng.submit(rid, p, o, 2, now)
        pending[rid] = {"backend": f"c{c}", "prompt_tokens": p, "output_tokens": o,
                        "t_dispatched": now, "status": "completed"}

    for k in range(c):
        send(k, 0.0)
    while (te := eng.next_event_time()) is not None:
        for ev in eng.advance(te):
            row = pending[ev.req_id]
            if ev.kind == "first_token":
                row["t_first_token"] = ev.t
            elif ev.kind == "done":
                row["t_done"] = ev.t
                rows.append(row)
                if left[ev.req_id[0]]:
                    send(ev.req_id[0], ev.t)
    return rows


def test_request_fit_recovers_the_engine_it_profiled():
    """Closed loops of 1–16 clients on a simulated engine with known costs (CPU-like:
    per-sequence decode cost large next to the per-step cost, a front end that delays
    each request by 10 ms) → records → fit gives the costs back. This is the fidelity
    suite's calibration, checked end to end."""
    true = LLMCost(beta0=2.0e-3, beta1=80e-6, beta2=0.4e-3, beta3=0.0, alpha=1e-3,
                   frontend=10e-3)
    recs = records_from_requests(_closed_loop_rows(true))
    assert sum(r["in_flight"] == 0 for r in recs) >= 12  # the single client's requests
    cost, r_ttft, r_tpot = fit_requests(recs)
    for f in ("beta0", "beta1", "beta2"):
        assert getattr(cost, f) == pytest.approx(getattr(true, f), rel=0.05), f
    # How the per-request time splits into blocking (α) and front end is seen only
    # through others' TPOTs, so it is looser; their sum is what a lone TTFT shows.
    assert cost.alpha + cost.frontend == pytest.approx(true.alpha + true.frontend, rel=0.01)
    assert cost.frontend == pytest.approx(true.frontend, rel=0.1)
    assert cost.beta3 < 1e-7
    assert r_ttft.mape < 1.0 and r_tpot.mape < 5.0


def test_request_fit_needs_lone_requests_of_varied_prompts():
    recs = [{"prompt_tokens": 64, "output_tokens": 8, "ttft_s": 0.01, "tpot_s": 0.002,
             "in_flight": 3, "batch": 4}] * 10
    with pytest.raises(ValueError, match="found the engine idle"):
        fit_requests(recs)


def test_embedding_fit_and_save_as_named_preset(tmp_path):
    rng = random.Random(4)
    recs = [{"tokens": (n := rng.randint(16, 8192)), "seconds": (5e-3 + 9e-5 * n)
             * (1 + rng.gauss(0, 0.005))} for _ in range(60)]
    cost, rep = fit_embedding(recs)
    assert cost.a == pytest.approx(5e-3, rel=0.02) and cost.b == pytest.approx(9e-5, rel=0.02)
    p = calibrated(get_embed_preset("minilm-cpu"), cost, "minilm-here", str(rep))
    save_preset(p, tmp_path)
    back = get_preset("minilm-here", directory=tmp_path)
    assert back.cost == cost and "R²" in back.source
    with pytest.raises(ValueError, match="LLMCost"):
        calibrated(get_llm_preset("tiny-cpu"), cost, "x", "")


def test_bad_records_name_the_field():
    with pytest.raises(ValueError, match="record 1: missing field 'seconds'"):
        fit_steps([{"prefill": 1, "decode": 1, "seconds": 1.0}, {"prefill": 1, "decode": 1}])
    with pytest.raises(ValueError, match="field 'decode' must be >= 0"):
        fit_steps([{"prefill": 1, "decode": -1, "seconds": 1.0}] * 5)
    with pytest.raises(ValueError, match="need at least 4 records"):
        fit_steps([{"prefill": 1, "decode": 1, "seconds": 1.0}])
    with pytest.raises(ValueError, match="output_tokens > 1: need at least 4"):
        fit_requests([{"prompt_tokens": p, "output_tokens": 1, "ttft_s": 0.1, "tpot_s": 0}
                      for p in (5, 6, 7)])


def _simulated_run_rows(base, rates, n=200):
    """Per-request rows (store `request` columns) of simulated runs at several loads."""
    rows = []
    for rate in rates:
        eng = SimLLMEngine(base)
        rng = random.Random(rate)
        sub: dict = {}

        def adv(upto, eng=eng, sub=sub):
            while (te := eng.next_event_time()) is not None and te <= upto:
                for ev in eng.advance(te):
                    if ev.kind in ("first_token", "done"):
                        sub[ev.req_id]["t_" + ev.kind] = ev.t

        t = 0.0
        for i in range(n):
            t += rng.expovariate(rate)
            adv(t)
            p, o = rng.randint(16, 1024), rng.randint(2, 200)
            eng.submit(i, p, o, 2, t)
            sub[i] = {"t_dispatched": t, "prompt_tokens": p, "output_tokens": o,
                      "backend": f"b{rate}", "status": "completed"}
        adv(float("inf"))
        rows += sub.values()
    return rows


def test_request_records_of_a_run_give_beta0_and_beta1():
    """From TTFT/TPOT alone (no step log): fixed and prefill costs come back within 10 %."""
    base = get_llm_preset("8b-h100")
    rows = _simulated_run_rows(base, (1, 5, 15))
    rows.append({"status": "failed", "t_dispatched": 0.0, "t_first_token": None, "t_done": None,
                 "prompt_tokens": 5, "output_tokens": 0, "backend": "b1"})
    recs = records_from_requests(rows)
    assert len(recs) == 600
    assert all(r["batch"] >= 1.0 and r["prefill_per_step"] >= 0 for r in recs)
    cost, r_ttft, r_tpot = fit_requests(recs)
    assert cost.beta0 == pytest.approx(base.cost.beta0, rel=0.10)
    assert cost.beta1 == pytest.approx(base.cost.beta1, rel=0.10)
    assert r_tpot.r2 > 0.9 and r_tpot.mape < 5.0


def test_records_from_requests_measures_decode_overlap_and_prefill_interference():
    rows = [
        # a decodes over [1, 3]; b over [2, 4] overlaps half of it; c is on another backend
        {"backend": "x", "t_dispatched": 0.5, "t_first_token": 1.0, "t_done": 3.0,
         "prompt_tokens": 100, "output_tokens": 5},
        {"backend": "x", "t_dispatched": 1.5, "t_first_token": 2.0, "t_done": 4.0,
         "prompt_tokens": 40, "output_tokens": 3},
        {"backend": "y", "t_dispatched": 1.0, "t_first_token": 1.5, "t_done": 3.5,
         "prompt_tokens": 10, "output_tokens": 2},
    ]
    a, b, c = records_from_requests(rows)
    assert a["batch"] == pytest.approx(1.5) and b["batch"] == pytest.approx(1.5)
    assert c["batch"] == pytest.approx(1.0)
    assert a["ttft_s"] == pytest.approx(0.5) and a["tpot_s"] == pytest.approx(0.5)
    assert a["prefill_per_step"] == pytest.approx(40 / 4)  # b's prompt finished during a's decode
    assert b["prefill_per_step"] == 0.0
    assert (a["in_flight"], b["in_flight"], c["in_flight"]) == (0, 1, 0)  # a busy at b's send
    assert a["new_per_step"] == pytest.approx(1 / 4)


def test_embedding_records_keep_only_what_an_idle_engine_served_for_the_fit():
    rows = [{"backend": "e", "t_dispatched": t0, "t_done": t1, "prompt_tokens": n}
            for t0, t1, n in ((0.0, 0.1, 100), (0.05, 0.3, 50), (0.3, 0.346, 10), (0.4, 0.476, 60))]
    recs = embedding_records_from_requests(rows)
    assert [r["in_flight"] for r in recs] == [0, 1, 0, 0]
    cost, rep = fit_embedding(recs)  # the 3 idle rows are exactly 0.04 s + 0.6 ms per token
    assert rep.n == 3
    assert (cost.a, cost.b) == (pytest.approx(0.04), pytest.approx(0.0006))


def test_lone_request_jitter_becomes_the_front_end_spread():
    """Lone TTFTs with 5–25 ms of front-end jitter: the fit keeps that spread as
    quantiles (and their mean as the front end), not one constant."""
    rng = random.Random(9)
    recs = []
    for _ in range(200):
        p = rng.randint(16, 384)
        recs.append({"prompt_tokens": p, "output_tokens": 9, "in_flight": 0,
                     "ttft_s": rng.uniform(0.005, 0.025) + 2e-3 + 80e-6 * p,
                     "tpot_s": 2.4e-3, "batch": 1.0})
    recs += [{"prompt_tokens": 100, "output_tokens": 9, "in_flight": 3, "ttft_s": 0.05,
              "tpot_s": 2e-3 + 0.4e-3 * b, "batch": float(b)} for b in (2, 4, 8, 16)]
    cost, _, _ = fit_requests(recs)
    qs = cost.frontend_quantiles
    assert len(qs) == 101 and qs == tuple(sorted(qs))
    assert qs[0] < 0.008 and qs[-1] > 0.022 and qs[50] == pytest.approx(0.015, abs=0.003)
    assert cost.frontend == pytest.approx(0.015, abs=0.002)


def _idle_lone_requests() -> list[dict]:
    """Four lone requests of varied prompts: enough for the prefill fit, no spread."""
    return [{"prompt_tokens": p, "output_tokens": 9, "in_flight": 0,
             "ttft_s": 0.012 + 80e-6 * p, "tpot_s": 2.4e-3, "batch": 1.0}
            for p in (32, 64, 128, 256)]


def test_decode_stalls_become_engine_stalls_at_a_rate_per_sequence_step():
    """One decode in ten stalls 40 ms on top of the step model: the fit makes them engine
    stalls of ~40 ms, at the rate per step and decoding sequence that gives one in ten
    requests a stall over its steps (Poisson); the completion lateness keeps no tail;
    the step costs stay those of the typical request."""
    rng = random.Random(11)
    recs = _idle_lone_requests()
    exposure = []
    for i in range(300):
        b, o = rng.choice((1, 2, 4, 8, 16)), rng.randint(8, 64)
        stall = 0.040 if i % 10 == 0 else 0.0
        exposure.append(b * (o - 1))
        recs.append({"prompt_tokens": 100, "output_tokens": o, "in_flight": 3, "ttft_s": 0.05,
                     "tpot_s": 2e-3 + 0.4e-3 * b + stall / (o - 1), "batch": float(b)})
    cost, _, _ = fit_requests(recs)
    stalls = cost.step_stall_quantiles
    assert stalls == tuple(sorted(stalls)) and len(stalls) == 30
    assert stalls[0] == pytest.approx(0.040, abs=0.005) and stalls[-1] < 0.045
    assert cost.step_stall_rate == pytest.approx(-math.log(0.9) / (sum(exposure) / 300), rel=0.01)
    assert cost.completion_quantiles[-1] < 0.02  # the stalls left it
    assert cost.beta2 == pytest.approx(0.4e-3, rel=0.1)


def test_a_profile_phase_the_step_model_misfits_is_not_taken_for_stalls():
    """Phase "b" (batch 8) decodes 10 ms per step slower than the linear step model can
    follow; both phases stall 40 ms one decode in ten. Measured against each phase's
    own upper quartile the stalls are those 40 ms only; against all records' together
    phase b's misfit is drawn as a stall of well over 100 ms."""
    rng = random.Random(13)
    lone = _idle_lone_requests()
    recs = []
    for i in range(400):
        group = "b" if i % 4 == 0 else "a"
        b = 8 if group == "b" else rng.choice((1, 2, 4, 16))
        slow = 10e-3 if group == "b" else 0.0
        stall = 0.040 if rng.random() < 0.1 else 0.0
        recs.append({"prompt_tokens": 100, "output_tokens": 20, "in_flight": 3, "ttft_s": 0.05,
                     "tpot_s": 2e-3 + 0.4e-3 * b + slow + stall / 19, "batch": float(b),
                     "group": group})
    stalls = fit_requests(lone + recs)[0].step_stall_quantiles
    assert stalls[len(stalls) // 2] == pytest.approx(0.040, abs=0.010) and stalls[-1] < 0.05
    pooled = fit_requests(lone + [{k: v for k, v in r.items() if k != "group"}
                                  for r in recs])[0].step_stall_quantiles
    assert pooled[-1] > 0.1  # the same records without phases: the misfit is drawn


def test_embedding_fit_keeps_the_body_of_the_spread_only():
    """Passes ±10 % around the line plus one pass in twenty twice as slow: the fit's
    spread is the body (no factor near 2), scaled to mean 1; with few records, none."""
    rng = random.Random(12)
    recs = []
    for i in range(200):
        n = rng.randint(32, 256)
        factor = 2.0 if i % 20 == 0 else rng.uniform(0.9, 1.1)
        recs.append({"tokens": n, "seconds": (15e-3 + 4e-4 * n) * factor})
    cost, _ = fit_embedding(recs)
    qs = cost.spread_quantiles
    assert len(qs) == 101 and qs == tuple(sorted(qs))
    assert sum(qs) / len(qs) == pytest.approx(1.0, abs=0.01)
    assert qs[-1] < 1.3 and qs[0] > 0.7  # the slow passes are not drawn
    assert qs[-1] - qs[0] > 0.1  # but the body's spread is
    assert fit_embedding(recs[:10])[0].spread_quantiles == ()


def test_idle_time_at_dispatch_is_measured_from_the_last_request_out():
    rows = [{"backend": "x", "t_dispatched": t0, "t_first_token": t0 + 0.01, "t_done": t1,
             "prompt_tokens": 10, "output_tokens": 4}
            for t0, t1 in ((1.0, 2.0), (1.5, 2.5), (2.5, 3.0), (3.25, 3.5))]
    idle = [r["idle_s"] for r in records_from_requests(rows)]
    # the first found nothing before it; the second came while the first was open;
    # the third as the second finished; the fourth after 0.25 s of idle
    assert idle == [float("inf"), 0.0, pytest.approx(0.0), pytest.approx(0.25)]


def _lone(rng, n, jitter, idle_s):
    return [{"prompt_tokens": (p := rng.randint(16, 384)), "output_tokens": 9, "in_flight": 0,
             "idle_s": idle_s, "ttft_s": rng.uniform(*jitter) + 2e-3 + 80e-6 * p,
             "tpot_s": 2.4e-3, "batch": 1.0} for _ in range(n)]


def test_a_runs_first_request_is_left_out_of_the_front_end_spread():
    """The first lone request of a run (idle time unknown: it met a new connection)
    took 80 ms; the spread of the others (5-15 ms) must not carry it."""
    rng = random.Random(5)
    busy = [{"prompt_tokens": 100, "output_tokens": 9, "in_flight": 3, "ttft_s": 0.05,
             "tpot_s": 2e-3 + 0.4e-3 * b, "batch": float(b)} for b in (2, 4, 8, 16)]
    lone = _lone(rng, 100, (0.005, 0.015), 0.004)
    first = {**lone[0], "idle_s": float("inf"), "ttft_s": 0.08}
    cost, _, _ = fit_requests([first, *lone[1:], *busy])
    assert len(cost.frontend_quantiles) == 99
    assert cost.frontend_quantiles[-1] < 0.017
    with_it, _, _ = fit_requests([{**first, "idle_s": 1.0}, *lone[1:], *busy])
    assert with_it.frontend_quantiles[-1] > 0.04  # the same request with a known idle counts
