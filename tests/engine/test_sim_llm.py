"""SimLLMEngine against its definition (vLLM V1 scheduling) and against queueing theory."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.sim import SimLLMEngine
from engine.sim.cost import LLMCost, LLMPreset
from engine.sim.presets import get_llm_preset

B0, B1, B2, B3, A = 5e-3, 20e-6, 6e-6, 1e-7, 3e-4


def preset(kv_tokens: int = 16 * 4096, seqs: int = 64, budget: int = 2048,
           cost: LLMCost | None = None) -> LLMPreset:
    return LLMPreset(
        name="test", model="m", device_kind="X", device="gpu",
        cost=cost or LLMCost(B0, B1, B2, B3, A), kv_capacity_tokens=kv_tokens,
        max_num_seqs=seqs, max_num_batched_tokens=budget,
    )


def run(eng: SimLLMEngine, arrivals: list[tuple], aborts: dict | None = None) -> dict:
    """Tiny event loop. arrivals: (t, id, prompt, output, priority). Returns per-id events."""
    out: dict = {}
    aborts = dict(aborts or {})  # id -> time
    i = 0
    arrivals = sorted(arrivals)
    while True:
        te = eng.next_event_time()
        ta = arrivals[i][0] if i < len(arrivals) else None
        tb = min(aborts.values()) if aborts else None
        cands = [x for x in (te, ta, tb) if x is not None]
        if not cands:
            break
        now = min(cands)
        if tb is not None and now == tb and (te is None or tb < te):
            rid = min(aborts, key=aborts.get)
            del aborts[rid]
            eng.abort(rid, now)
            out.setdefault(rid, []).append(("aborted", now))
            continue
        if ta is not None and now == ta and (te is None or ta < te):
            t, rid, p, o, prio = arrivals[i]
            eng.submit(rid, p, o, prio, t)
            out.setdefault(rid, []).append(("submit", t))
            i += 1
            continue
        for ev in eng.advance(now):
            assert ev.t == now
            if ev.kind == "tokens":
                for r in ev.req_ids:
                    out[r].append(("token", ev.t))
            else:
                out[ev.req_id].append((ev.kind, ev.t))
        st_ = eng.stats()
        assert 0 <= eng.used_blocks <= eng.num_blocks
        assert st_.running <= eng.max_seqs
    return out


def times(evs, kind):
    return [t for k, t in evs if k == kind]


def test_lone_decode_step_costs_beta0_plus_beta2():
    eng = SimLLMEngine(preset(cost=LLMCost(B0, B1, B2, 0.0, A)), record_steps=True)
    run(eng, [(0.0, "a", 100, 4, 2)])
    steps = eng.step_log
    assert [s["prefill"] for s in steps] == [100, 0, 0, 0]
    assert steps[0]["seconds"] == pytest.approx(B0 + B1 * 100 + A, rel=1e-12)
    for s in steps[1:]:
        assert s["decode"] == 1
        assert s["seconds"] == pytest.approx(B0 + B2, rel=1e-12)


def test_decode_step_reads_the_kv_cache():
    eng = SimLLMEngine(preset(), record_steps=True)
    ev = run(eng, [(0.0, "a", 100, 3, 2)])["a"]
    d1, d2 = eng.step_log[1:]
    assert d1["kv_read"] == 100 and d2["kv_read"] == 101
    assert d2["seconds"] == pytest.approx(B0 + B2 + B3 * 101, rel=1e-12)
    first = B0 + B1 * 100 + A
    assert times(ev, "first_token") == [pytest.approx(first)]
    assert times(ev, "done") == [pytest.approx(first + 2 * (B0 + B2) + B3 * 201)]


def test_chunked_prefill_respects_the_token_budget():
    eng = SimLLMEngine(preset(budget=512, seqs=8), record_steps=True)
    arr = [(0.0, "long", 2000, 2, 2), (0.001, "short", 40, 5, 2)]
    ev = run(eng, arr)
    assert all(s["prefill"] + s["decode"] <= 512 for s in eng.step_log)
    # the long prompt takes 512-token chunks; its first token comes after the 4th chunk
    assert [s["prefill"] for s in eng.step_log[:2]] == [512, 512]
    chunks = sum(s["prefill"] for s in eng.step_log) - 40
    assert chunks == 2000
    t_first_long = times(ev["long"], "first_token")[0]
    n_before = sum(1 for s in eng.step_log if s["t"] < t_first_long)
    assert n_before == 4
    # the short prompt waits for leftover budget: 2000 - 3*512 = 464, so 40 fit into step 4
    assert eng.step_log[3]["prefill"] == 464 + 40
    assert times(ev["short"], "first_token") == [t_first_long]


def test_running_decodes_come_before_waiting_prefills():
    eng = SimLLMEngine(preset(budget=64, seqs=64), record_steps=True)
    arr = [(0.0, f"d{i}", 8, 50, 2) for i in range(8)] + [(0.05, "p", 500, 2, 2)]
    run(eng, arr)
    for s in eng.step_log:
        if s["decode"] and s["prefill"]:
            assert s["prefill"] <= 64 - s["decode"]


def test_max_num_seqs_is_respected():
    eng = SimLLMEngine(preset(seqs=4), record_steps=True)
    arr = [(0.0001 * i, i, 50, 20, 2) for i in range(20)]
    ev = run(eng, arr)
    assert max(s["running"] for s in eng.step_log) == 4
    assert all(len(times(ev[i], "done")) == 1 for i in range(20))


def test_kv_exhaustion_preempts_and_counts():
    # 40 blocks of 16 tokens; 8 requests that each grow to 200 tokens cannot all fit
    eng = SimLLMEngine(preset(kv_tokens=640, seqs=8), record_steps=True)
    ev = run(eng, [(0.0, i, 40, 160, 2) for i in range(8)])
    pre = sum(len(times(e, "preempted")) for e in ev.values())
    assert eng.preemptions == pre > 0
    assert max(s["kv_blocks"] for s in eng.step_log) <= 40
    assert all(len(times(ev[i], "done")) == 1 for i in range(8))
    assert all(len(times(ev[i], "first_token")) == 1 for i in range(8))
    assert eng.used_blocks == 0 and eng.stats().running == 0


def test_fcfs_preempts_the_newest_request():
    eng = SimLLMEngine(preset(kv_tokens=640, seqs=8))
    ev = run(eng, [(0.0, 0, 40, 300, 2), (0.001, 1, 40, 300, 2)])
    assert times(ev[1], "preempted") and not times(ev[0], "preempted")
    assert times(ev[0], "done")[0] < times(ev[1], "done")[0]


def test_priority_scheduling_serves_urgent_first():
    eng = SimLLMEngine(preset(seqs=1), priority_scheduling=True)
    arr = [(0.0, "first", 10, 50, 2), (0.001, "low", 10, 5, 4), (0.002, "high", 10, 5, 0)]
    ev = run(eng, arr)
    assert times(ev["high"], "done")[0] < times(ev["low"], "done")[0]
    fifo = run(SimLLMEngine(preset(seqs=1)), arr)
    assert times(fifo["low"], "done")[0] < times(fifo["high"], "done")[0]


def test_abort_frees_blocks_and_silences_the_request():
    eng = SimLLMEngine(preset())
    ev = run(eng, [(0.0, "a", 100, 400, 2), (0.0, "b", 100, 10, 2)], aborts={"a": 0.2})
    assert not times(ev["a"], "done")
    assert len(times(ev["b"], "done")) == 1
    assert eng.used_blocks == 0 and eng.next_event_time() is None


def test_bad_requests_are_refused_with_the_field_named():
    eng = SimLLMEngine(preset(kv_tokens=160))
    with pytest.raises(ValueError, match="prompt_tokens"):
        eng.submit("x", 0, 5, 2, 0.0)
    with pytest.raises(ValueError, match="output_tokens"):
        eng.submit("x", 5, 0, 2, 0.0)
    with pytest.raises(ValueError, match="KV capacity"):
        eng.submit("x", 150, 50, 2, 0.0)
    eng.submit("x", 5, 5, 2, 0.0)
    with pytest.raises(ValueError, match="req_id"):
        eng.submit("x", 5, 5, 2, 0.0)
    with pytest.raises(ValueError, match="max_num_batched_tokens"):
        SimLLMEngine(preset(seqs=64, budget=32))


workload = st.lists(
    st.tuples(
        st.floats(0, 2.0, allow_nan=False), st.integers(1, 600), st.integers(1, 120),
        st.integers(0, 4), st.booleans(),
    ),
    min_size=1, max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workload, st.booleans(), st.sampled_from([48, 200, 4096]), st.integers(1, 16),
       st.sampled_from([16, 64, 512]))
def test_conservation_and_fast_forward_equivalence(reqs, prio, kv_blocks, seqs, budget):
    """Every request not aborted ends with exactly one done, after one first token;
    fast-forwarded decode runs give the very same event times as step-by-step."""
    budget = max(budget, seqs)
    p = preset(kv_tokens=16 * kv_blocks, seqs=seqs, budget=budget)
    cap = 16 * kv_blocks
    arr = [(t, i, min(pt, cap // 2), min(o, cap // 2), pr) for i, (t, pt, o, pr, _) in
           enumerate(reqs)]
    aborts = {i: t + 0.01 for i, (t, *_, ab) in enumerate(reqs) if ab and i % 3 == 0}
    fast = SimLLMEngine(p, priority_scheduling=prio)
    slow = SimLLMEngine(p, priority_scheduling=prio, token_events=True)
    ev_f = run(fast, arr, aborts)
    ev_s = run(slow, arr, aborts)
    for i, *_ in enumerate(arr):
        f = ev_f[i]
        if i in aborts:
            after = [k for k, t in f if t > aborts[i] and k in ("done", "first_token")]
            assert not after
            continue
        assert len(times(f, "done")) == 1
        assert len(times(f, "first_token")) == 1
        assert times(f, "first_token")[0] <= times(f, "done")[0]
        # step-by-step: one token event per output token after the first
        assert len(times(ev_s[i], "token")) == arr[i][3] - 1
        for kind in ("first_token", "done", "preempted"):
            assert times(f, kind) == pytest.approx(times(ev_s[i], kind), rel=1e-9, abs=1e-12)
    assert fast.preemptions == slow.preemptions
    assert fast.used_blocks == slow.used_blocks == 0


def test_md1_mean_wait_matches_pollaczek_khinchine():
    """One sequence at a time, fixed sizes (deterministic service), Poisson arrivals."""
    cost = LLMCost(B0, B1, B2, 0.0, 0.0)
    P, OUT = 200, 20
    service = (B0 + B1 * P) + (OUT - 1) * (B0 + B2)
    rho = 0.7
    lam = rho / service
    rng = random.Random(7)
    t, arr = 0.0, []
    for i in range(40000):
        t += rng.expovariate(lam)
        arr.append((t, i, P, OUT, 2))
    eng = SimLLMEngine(preset(seqs=1, cost=cost))
    ev = run(eng, arr)
    first_step = B0 + B1 * P
    waits = [times(ev[i], "first_token")[0] - first_step - arr[i][0] for i in range(len(arr))]
    assert min(waits) > -1e-9
    e2e = [times(ev[i], "done")[0] - arr[i][0] - w for i, w in enumerate(waits)]
    assert max(e2e) == pytest.approx(service) and min(e2e) == pytest.approx(service)
    pk = rho * service / (2 * (1 - rho))
    assert sum(waits) / len(waits) == pytest.approx(pk, rel=0.05)


def test_roofline_preset_runs_a_loaded_engine():
    eng = SimLLMEngine(get_llm_preset("7b-h100"))
    rng = random.Random(3)
    arr, t = [], 0.0
    for i in range(500):
        t += rng.expovariate(40)
        arr.append((t, i, rng.randint(64, 1024), rng.randint(16, 256), 2))
    ev = run(eng, arr)
    assert all(len(times(ev[i], "done")) == 1 for i in range(500))
    assert eng.stats().running == 0 and eng.used_blocks == 0



def test_abort_without_now_during_a_fast_forward_keeps_the_books():
    eng = SimLLMEngine(preset())
    for i in range(6):
        eng.submit(i, 50, 100 + 50 * i, 2, 0.0)
    done, aborted_in_ff = [], False
    while (te := eng.next_event_time()) is not None:
        for ev in eng.advance(te):
            if ev.kind == "done":
                done.append(ev.req_id)
        if len(done) == 1 and eng._macro_k and 3 in eng._reqs:
            eng.abort(3)  # no `now`: the fast-forward runs on, the request is gone
            aborted_in_ff = True
    assert aborted_in_ff
    assert sorted(done) == [0, 1, 2, 4, 5]
    assert eng.used_blocks == 0 and eng.stats().running == 0


def test_an_engine_stall_holds_every_request_in_the_step():
    """Stalls of exactly 30 ms at 20 % per step and sequence: two requests that decode
    side by side are held by the same stalls, so both finish the same whole number of
    stalls late; a third that arrives meanwhile waits for them too (its first token is
    late as well); the seed fixes the draws; no rate, no stalls."""
    def go(rate, seed=1):
        c = LLMCost(B0, B1, B2, 0.0, A, step_stall_rate=rate, step_stall_quantiles=(0.03, 0.03))
        ev = run(SimLLMEngine(preset(cost=c), seed=seed),
                 [(0.0, "a", 16, 40, 2), (0.0, "b", 16, 40, 2), (0.05, "c", 16, 2, 2)])
        return {r: (times(e, "first_token")[0], times(e, "done")[0]) for r, e in ev.items()}

    plain, stalled = go(0.0), go(0.2)
    late_a = stalled["a"][1] - plain["a"][1]
    assert late_a == pytest.approx(stalled["b"][1] - plain["b"][1])
    assert late_a > 0.03 - 1e-9 and (late_a / 0.03) == pytest.approx(round(late_a / 0.03))
    assert stalled["c"][0] > plain["c"][0]
    assert go(0.2) == stalled and go(0.2, seed=2) != stalled
    with pytest.raises(ValueError, match="step_stall_quantiles"):
        SimLLMEngine(preset(cost=LLMCost(B0, B1, B2, step_stall_rate=0.1)))
    with pytest.raises(ValueError, match="step_stall_rate"):
        SimLLMEngine(preset(cost=LLMCost(B0, B1, B2, step_stall_rate=1.5,
                                         step_stall_quantiles=(0.01, 0.02))))


# Priority scheduling as vLLM V1 does it (vllm/v1/core/sched/scheduler.py, Scheduler.schedule):
# the waiting queue is ordered by (priority, arrival); when a running request's new KV
# blocks do not fit, the running request with the largest (priority, arrival) is preempted
# (recompute) and goes back to the waiting queue; a waiting request never preempts one.

def _background_then_urgent(prio: bool, token_events: bool = False):
    """Ten p4 requests fill a 4-sequence engine whose KV pool (40 blocks) the four running
    ones outgrow; a p0 request arrives while they decode."""
    eng = SimLLMEngine(preset(kv_tokens=640, seqs=4), priority_scheduling=prio,
                       token_events=token_events)
    arr = [(0.0, i, 40, 200, 4) for i in range(10)] + [(0.05, "urgent", 40, 10, 0)]
    return eng, run(eng, arr)


def test_priority_urgent_request_overtakes_the_waiting_background_work():
    eng, ev = _background_then_urgent(prio=True)
    urgent = times(ev["urgent"], "first_token")[0]
    first_preemption = min(t for e in ev.values() for t in times(e, "preempted"))
    assert eng.preemptions == sum(len(times(e, "preempted")) for e in ev.values()) > 0
    assert not times(ev["urgent"], "preempted")
    # it waited for a slot (no waiting request preempts), then went before every p4
    # still waiting and before the preempted ones coming back
    assert first_preemption < urgent
    assert urgent < min(times(ev[i], "first_token")[0] for i in range(4, 10))
    assert all(len(times(ev[i], "done")) == 1 for i in range(10))
    _, fifo = _background_then_urgent(prio=False)
    assert times(fifo["urgent"], "first_token")[0] > max(
        times(fifo[i], "first_token")[0] for i in range(4, 10))


def test_priority_urgent_request_is_the_same_fast_forwarded_or_step_by_step():
    """The p0 arrives during a fast-forwarded decode run: the run is cut, and every event
    time (its first token, the preemptions) is the one of a step-by-step engine."""
    fast, ev_f = _background_then_urgent(prio=True)
    slow, ev_s = _background_then_urgent(prio=True, token_events=True)
    for rid in ev_s:
        for kind in ("first_token", "done", "preempted"):
            assert times(ev_f[rid], kind) == pytest.approx(times(ev_s[rid], kind), rel=1e-9)
    assert fast.preemptions == slow.preemptions > 0
    probe = SimLLMEngine(preset(kv_tokens=640, seqs=4), priority_scheduling=True)
    for i in range(4):
        probe.submit(i, 40, 200, 4, 0.0)
    while probe._macro_k == 0:
        probe.advance(probe.next_event_time())
    end = probe.next_event_time()
    probe.submit("urgent", 40, 10, 0, probe._t_start + 1e-6)
    assert probe.next_event_time() < end  # cut at the next step boundary


def test_priority_preempts_the_lowest_priority_newest_not_the_newest():
    arr = [(0.0, "a", 40, 300, 4), (0.001, "b", 40, 300, 4), (0.002, "c", 40, 300, 0)]
    ev = run(SimLLMEngine(preset(kv_tokens=640, seqs=8), priority_scheduling=True), arr)
    assert times(ev["b"], "preempted") and not times(ev["c"], "preempted")
    assert times(ev["c"], "done")[0] < times(ev["b"], "done")[0]
    fifo = run(SimLLMEngine(preset(kv_tokens=640, seqs=8)), arr)
    first = min((t, rid) for rid, e in fifo.items() for t in times(e, "preempted"))
    assert first[1] == "c"  # FCFS: the newest


def test_priority_waiting_request_does_not_preempt_a_running_one():
    """At max_num_seqs with KV to spare, a p0 waits for a p4 to finish (vLLM's waiting
    loop stops at max_num_seqs without preempting)."""
    eng = SimLLMEngine(preset(seqs=2), priority_scheduling=True)
    ev = run(eng, [(0.0, "a", 40, 100, 4), (0.0, "b", 40, 300, 4), (0.01, "p0", 40, 5, 0)])
    assert eng.preemptions == 0
    assert times(ev["p0"], "first_token")[0] >= times(ev["a"], "done")[0]
