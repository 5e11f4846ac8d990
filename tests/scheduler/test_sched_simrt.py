"""The virtual-time runtime: outcomes, faults, closed loop, samples, speed."""

from __future__ import annotations

import pytest
from sched_helpers import chat, emb, embed, llm, poisson

from scheduler.config import ControlPlaneConfig
from scheduler.simrt import Fault, simulate


def mixed(rate=200, duration=3.0, seed=1):
    return poisson(rate, duration, seed, lambda i, t, rng: (
        chat(i, t, prio=rng.randint(0, 4), slo_ttft_ms=500, prompt=rng.randint(32, 256),
             out=rng.randint(8, 64)) if rng.random() < 0.7
        else embed(i, t, texts=rng.randint(1, 8), slo_e2e_ms=200)))


BACKENDS = [llm("g0", conc=16), llm("g1", conc=16), emb("e0", conc=2)]


@pytest.mark.parametrize("policy", ["fifo", "priority", "slo", "hybrid"])
def test_outcomes_are_complete_and_consistent(policy):
    reqs = mixed()  # past capacity: with admission on, slo and hybrid would refuse some
    res = simulate(ControlPlaneConfig(policy=policy, admission="off"), BACKENDS, reqs)
    assert len(res.outcomes) == len(reqs)
    assert {o.id for o in res.outcomes} == {r.id for r in reqs}
    for o in res.outcomes:
        assert o.status == "completed", (o.id, o.status, o.reason)
        assert o.t_received <= o.t_dispatched <= o.t_done
        assert o.backend in {"g0", "g1", "e0"}
        assert o.overhead_us is not None and o.overhead_us > 0
        if o.cls == "chat":
            assert o.t_dispatched < o.t_first_token <= o.t_done
            assert o.backend != "e0"
        else:
            assert o.backend == "e0"
    assert res.counters["decision"]["p99"] > 0
    assert len(res.decision_times_us) > 0


def test_a_killed_backend_loses_started_work_and_requeues_the_rest():
    # Long prompts just before the fault: their chunked prefill is still running then.
    reqs = mixed(rate=60, duration=4.0) + [chat(f"long{i}", 0.99, prompt=6000, out=8)
                                            for i in range(12)]
    faults = [Fault(1.0, "g0"), Fault(2.5, "g0", up=True)]
    res = simulate(ControlPlaneConfig(policy="hybrid", admission="off"), BACKENDS, reqs,
                   faults=faults)
    by = {}
    for o in res.outcomes:
        by.setdefault(o.status, []).append(o)
    assert set(by) <= {"completed", "failed"}
    failed = by.get("failed", [])
    assert failed and all(o.reason == "backend_down" and o.backend == "g0" for o in failed)
    assert res.counters["requeued"] > 0  # dispatched, not started: served elsewhere
    # Nothing is dispatched to g0 while it is down.
    assert not [o for o in by["completed"] if o.backend == "g0" and 1.0 < o.t_dispatched < 2.5]
    assert [e["kind"] for e in res.events] == ["engine_down", "engine_up"]
    assert len(res.outcomes) == len(reqs)


def _met(o) -> bool:
    if o.status != "completed":
        return False
    if o.slo_ttft_ms is not None and (o.t_first_token - o.t_intended) * 1000 > o.slo_ttft_ms:
        return False
    return o.slo_e2e_ms is None or (o.t_done - o.t_intended) * 1000 <= o.slo_e2e_ms


@pytest.mark.parametrize("policy", ["slo", "hybrid"])
def test_admission_past_capacity_meets_more_slos_than_fifo_and_says_why(policy):
    # 230 req/s: past what two 7b-h100 at 16 each serve (its H100-fitted step serves
    # ~15 % more of this mix than the datasheet roofline did, which 200 req/s overran)
    fifo = simulate(ControlPlaneConfig(policy="fifo"), BACKENDS, mixed(rate=230))
    res = simulate(ControlPlaneConfig(policy=policy), BACKENDS, mixed(rate=230))
    for cls in ("chat", "embedding"):
        base = [o for o in fifo.outcomes if o.cls == cls]
        ours = [o for o in res.outcomes if o.cls == cls]
        assert sum(map(_met, ours)) / len(ours) >= sum(map(_met, base)) / len(base) + 0.1
    refused = [o for o in res.outcomes if o.status != "completed"]
    assert refused and {o.reason for o in refused} <= {"slo_infeasible", "slo_shed"}
    assert all(o.status == "rejected" for o in refused)


def test_horizon_ends_the_run_and_fails_the_rest():
    reqs = [chat(i, 0.0, out=500) for i in range(40)]
    res = simulate(ControlPlaneConfig(policy="fifo"), [llm("g", conc=2)], reqs, horizon_s=0.5)
    st = {o.status for o in res.outcomes}
    assert st == {"completed", "failed"} or st == {"failed"}
    assert all(o.reason == "run_ended" for o in res.outcomes if o.status == "failed")


def test_closed_loop_clients_send_again_when_served():
    sent = []

    def on_done(o, t):
        n = len(sent)
        if n >= 60:
            return []
        r = chat(1000 + n, t + 0.01, client_id=o.client_id)
        sent.append(r)
        return [r]

    first = [chat(i, 0.0, client_id=f"u{i}") for i in range(3)]
    res = simulate(ControlPlaneConfig(policy="fifo"), [llm("g", conc=2)], first, on_done=on_done)
    assert len(res.outcomes) == 63
    assert all(o.status == "completed" for o in res.outcomes)
    # Each client has at most one request outstanding at a time.
    for u in ("u0", "u1", "u2"):
        mine = sorted((o for o in res.outcomes if o.client_id == u), key=lambda o: o.t_received)
        assert all(a.t_done <= b.t_received for a, b in zip(mine, mine[1:], strict=False))


def test_samples_every_simulated_second():
    res = simulate(ControlPlaneConfig(policy="hybrid"), BACKENDS, mixed(duration=3.0))
    assert [s["t_s"] for s in res.samples][:3] == [1.0, 2.0, 3.0]
    s = res.samples[0]
    assert set(s["queue_depth"]) == {"chat", "completion", "embedding"}
    assert set(s["backends"]) == {"g0", "g1", "e0"}
    assert {"running", "waiting", "kv_use", "in_flight"} <= set(s["backends"]["g0"])
    assert any(s["backends"]["g0"]["running"] > 0 for s in res.samples)


def test_vllm_only_baseline_lets_the_engine_queue_decide():
    reqs = mixed(rate=400, duration=2.0)
    res = simulate(ControlPlaneConfig(baseline="vllm-only"), BACKENDS, reqs)
    assert all(o.t_dispatched == o.t_received for o in res.outcomes)  # never held centrally
    assert all(o.status == "completed" for o in res.outcomes)


def test_unknown_fault_backend_is_named():
    with pytest.raises(ValueError, match="unknown backend 'zz'"):
        simulate(ControlPlaneConfig(), BACKENDS, mixed(), faults=[Fault(1.0, "zz")])


def test_sim_is_fast_enough_for_a_scaled_down_run():
    # 10 s at 1000 req/s on 8 backends: a smoke check of speed (the real figure
    # is in benches/bench_scheduler.py), generous for a loaded 2-core machine.
    be = [llm(f"g{i}", conc=64) for i in range(6)] + [
        emb(f"e{i}", conc=4, preset="minilm-h100", device="gpu") for i in range(2)]
    reqs = poisson(1000, 10.0, 2, lambda i, t, rng: (
        chat(i, t, prompt=rng.randint(32, 256), out=rng.randint(16, 96)) if rng.random() < 0.7
        else embed(i, t, texts=rng.randint(1, 8))))
    res = simulate(ControlPlaneConfig(policy="hybrid"), be, reqs)
    assert all(o.status == "completed" for o in res.outcomes)
    assert len(reqs) / res.wall_s > 5_000


def test_separate_baseline_keeps_embeddings_on_the_embedding_pool():
    be = [llm("g0", conc=8, caps=("chat", "embedding")), emb("e0", conc=2), emb("e1", conc=2)]
    res = simulate(ControlPlaneConfig(baseline="separate"), be, mixed(rate=100, duration=2.0))
    by_cls = {}
    for o in res.outcomes:
        by_cls.setdefault(o.cls, set()).add(o.backend)
    assert by_cls["chat"] == {"g0"} and by_cls["embedding"] == {"e0", "e1"}
    assert all(o.status == "completed" and o.t_dispatched == o.t_received
               for o in res.outcomes)


def test_a_gateway_cost_queues_requests_past_its_capacity_and_counts_as_overhead():
    reqs = mixed(rate=300, duration=2.0)
    free = simulate(ControlPlaneConfig(policy="fifo"), BACKENDS, mixed(rate=300, duration=2.0))
    # 5 ms of gateway CPU per request: one process serves 200 req/s, below the 300 offered
    res = simulate(ControlPlaneConfig(policy="fifo", gateway_us_per_request=5000), BACKENDS,
                   reqs)
    assert len(res.outcomes) == len(reqs)
    ov = sorted(o.overhead_us for o in res.outcomes)
    ov_free = sorted(o.overhead_us for o in free.outcomes)
    assert ov[0] >= 5000  # every request pays the gateway's time
    # past its capacity they queue there (against the median decision: one decision of
    # a loaded machine may stall for milliseconds)
    assert ov[-1] > 1000 * ov_free[len(ov_free) // 2]
    late = [o.t_received - o.t_intended for o in res.outcomes]
    assert max(late) > 0.5  # 2 s at 300 req/s through a 200 req/s gateway


def test_no_gateway_cost_changes_nothing():
    a = simulate(ControlPlaneConfig(policy="hybrid"), BACKENDS, mixed(duration=1.0))
    b = simulate(ControlPlaneConfig(policy="hybrid", gateway_us_per_request=0), BACKENDS,
                 mixed(duration=1.0))
    assert [(o.id, o.backend, o.t_done) for o in a.outcomes] == \
        [(o.id, o.backend, o.t_done) for o in b.outcomes]
