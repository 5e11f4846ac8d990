"""ControlPlane mechanics: admission, slots, waiting, failures, conservation, timing."""

from __future__ import annotations

import pytest
from sched_helpers import Ledger, chat, emb, embed, llm, make_cp

from scheduler.actions import Dispatch, Fail, Reject


def dispatched(actions):
    return [a for a in actions if isinstance(a, Dispatch)]


def test_fifo_releases_in_arrival_order_under_the_slot_limit():
    cp = make_cp([llm("g", conc=2)], policy="fifo")
    led = Ledger(cp)
    acts = []
    for i in range(6):
        acts += led.arrive(chat(i, i * 0.01, prio=4 - i % 5), i * 0.01)
    first = dispatched(acts)
    assert [d.requests[0].id for d in first] == ["c0", "c1"]  # only 2 slots
    assert cp.queued["chat"] == 4
    order = []
    now = 1.0
    while led.in_flight:
        did = min(led.in_flight)
        for d in dispatched(led.complete(did, now)):
            order.append(d.requests[0].id)
        now += 0.1
    assert order == ["c2", "c3", "c4", "c5"]
    led.check(final=True)


def test_full_queue_rejects_with_reason_and_others_still_wait():
    cp = make_cp([llm("g", conc=1)], policy="fifo", queue_capacity={"chat": 2})
    led = Ledger(cp)
    acts = []
    for i in range(5):
        acts += led.arrive(chat(i, 0.0), 0.0)
    rejects = [a for a in acts if isinstance(a, Reject)]
    assert [(r.request.id, r.reason) for r in rejects] == [("c3", "queue_full"), ("c4", "queue_full")]
    assert cp.queued["chat"] == 2  # waiting, not dropped
    led.check()


def test_no_capable_backend_is_a_rejection_not_a_hang():
    cp = make_cp([llm("g")], policy="fifo")
    led = Ledger(cp)
    acts = led.arrive(embed(0, 0.0), 0.0)
    assert [(type(a), a.reason) for a in acts] == [(Reject, "no_capable_backend")]
    led.check(final=True)


def test_backend_down_requeues_unstarted_and_fails_started():
    cp = make_cp([llm("a", conc=2), llm("b", conc=2)], policy="fifo", router="round-robin")
    led = Ledger(cp)
    for i in range(4):
        led.arrive(chat(i, 0.0), 0.0)
    on_a = [d for d in led.in_flight.values() if d.backend == "a"]
    assert len(on_a) == 2
    started = on_a[0].requests[0].id
    cp.on_progress("a", started, 0.05, first_token=True)
    # Fill b so re-queued work must wait rather than vanish.
    acts = led.down("a", 0.1)
    fails = [a for a in acts if isinstance(a, Fail)]
    assert [(f.request.id, f.reason) for f in fails] == [(started, "backend_down")]
    assert cp.queued["chat"] == 1 and cp.requeued == 1
    led.check()
    # A late answer from the dead backend is ignored.
    assert cp.on_completion("a", on_a[1].dispatch_id, 0.2) == []
    assert cp.stale_completions == 1
    # b finishes one: the re-queued request goes there.
    did = next(iter(led.in_flight))
    re = dispatched(led.complete(did, 0.3))
    assert [d.requests[0].id for d in re] == [on_a[1].requests[0].id]
    assert re[0].backend == "b"
    led.check()


def test_all_backends_down_requests_wait_then_flow_when_one_returns():
    cp = make_cp([llm("a", conc=1)], policy="priority")
    led = Ledger(cp)
    led.take(cp.on_backend_down("a", 0.0), 0.0)
    for i in range(3):
        assert dispatched(led.arrive(chat(i, 0.1 * i), 0.1 * i)) == []
    assert cp.queued["chat"] == 3
    acts = led.take(cp.on_backend_up("a", 1.0), 1.0)
    assert len(dispatched(acts)) == 1
    led.take(cp.shutdown(2.0), 2.0)
    # The one in flight and the two queued fail with run_ended; nothing is lost.
    assert sum(1 for v in led.left.values() if v == "failed:run_ended") == 3
    led.check(final=True)


def test_engine_error_fails_each_request_of_the_batch():
    cp = make_cp([emb("e", conc=1)], policy="hybrid", hybrid={"batch_max_wait_ms": 0})
    led = Ledger(cp)
    acts = led.arrive(embed(0, 0.0, texts=3), 0.0)
    (d,) = dispatched(acts)
    acts = led.complete(d.dispatch_id, 0.01, ok=False, reason="http_500")
    assert [(type(a), a.reason) for a in acts] == [(Fail, "http_500")]
    led.check(final=True)


def test_duplicate_ids_and_unknown_backends_are_errors():
    cp = make_cp([llm("g")], policy="fifo")
    cp.on_arrival(chat(0, 0.0), 0.0)
    with pytest.raises(ValueError, match="arrived twice"):
        cp.on_arrival(chat(0, 0.1), 0.1)
    with pytest.raises(ValueError, match="unknown backend 'zz'"):
        cp.on_backend_down("zz", 0.2)


def test_decision_time_is_measured_per_event():
    cp = make_cp([llm("g", conc=1)], policy="slo")
    led = Ledger(cp)
    for i in range(50):
        led.arrive(chat(i, i * 1e-3, slo_ttft_ms=100), i * 1e-3)
    assert len(cp.decision_times_us) == 50
    assert all(x > 0 for x in cp.decision_times_us)
    st = cp.decision_stats()
    assert 0 < st["p50"] <= st["p99"] <= st["max"]
    assert all(cp.overhead_us[f"c{i}"] > 0 for i in range(50))


def test_vllm_only_forwards_everything_ignoring_limits():
    cp = make_cp([llm("a", conc=1), llm("b", conc=1), emb("p", conc=1)], baseline="vllm-only")
    led = Ledger(cp)
    acts = []
    for i in range(6):
        acts += led.arrive(chat(i, 0.0), 0.0)
    acts += led.arrive(embed(0, 0.0), 0.0)
    ds = dispatched(acts)
    assert len(ds) == 7 and cp.queued["chat"] == 0  # no central queue
    assert [d.backend for d in ds[:6]] == ["a", "b"] * 3  # round-robin
    assert ds[6].backend == "p"
    led.check()


def test_separate_partitions_llm_and_embedding_pools():
    both = llm("g", caps=("chat", "embedding"))
    cp = make_cp([both, emb("e1"), emb("e2")], baseline="separate")
    led = Ledger(cp)
    acts = []
    for i in range(4):
        acts += led.arrive(embed(i, 0.0), 0.0)
    assert [d.backend for d in dispatched(acts)] == ["e1", "e2", "e1", "e2"]
    cp2 = make_cp([both], baseline="separate")
    acts = Ledger(cp2).arrive(embed(0, 0.0), 0.0)
    assert isinstance(acts[0], Reject) and acts[0].reason == "no_capable_backend"
    # The same backends under sage may use the shared one for embeddings.
    cp3 = make_cp([both], baseline="sage", policy="fifo")
    assert dispatched(Ledger(cp3).arrive(embed(0, 0.0), 0.0))[0].backend == "g"
