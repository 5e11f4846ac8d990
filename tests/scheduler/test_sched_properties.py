"""Property tests: conservation and no double dispatch, for every policy x router
and every immediate baseline, under random workloads, engine errors,
backend failures/recoveries, tiny queues (rejections) and timers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sched_helpers import Ledger, chat, emb, embed, llm, make_cp

from scheduler.config import POLICIES, ROUTERS
from vocab import Request

ops = st.lists(
    st.one_of(
        st.tuples(st.just("chat"), st.integers(0, 4), st.sampled_from([None, 5.0, 50.0, 500.0])),
        st.tuples(st.just("embed"), st.integers(1, 40), st.sampled_from([None, 20.0, 300.0])),
        st.tuples(st.just("done"), st.integers(0, 50), st.booleans()),
        st.tuples(st.just("down"), st.integers(0, 3), st.none()),
        st.tuples(st.just("up"), st.integers(0, 3), st.none()),
        st.tuples(st.just("tick"), st.floats(0.0005, 0.05), st.none()),
    ),
    min_size=1, max_size=120,
)

CASES = [dict(policy=p, router=r) for p, r in itertools.product(POLICIES, ROUTERS)]
CASES += [dict(baseline=b) for b in ("vllm-only", "separate", "colocated", "split",
                                       "vllm-priority")]
MIXED = ("chat", "completion", "embedding")
PRIO = ["--scheduling-policy", "priority"]


def backends(baseline: str = "sage"):
    """Four backends of every kind; each baseline that refuses some gets its own kind."""
    if baseline == "colocated":
        return [llm("g0", conc=2, caps=MIXED), llm("g1", conc=3, caps=MIXED, price_per_hour=2.0),
                emb("e0", conc=1, price_per_hour=0.1), llm("g2", conc=1, caps=MIXED)]
    if baseline == "split":
        return [llm("g0", conc=2), llm("g1", conc=3), emb("e0", conc=1),
                emb("e1", conc=2, preset="minilm-h100", device="gpu")]
    if baseline == "vllm-priority":
        return [llm("g0", conc=2, extra_args=PRIO), llm("g1", conc=3, caps=MIXED, extra_args=PRIO),
                emb("e0", conc=1), emb("e1", conc=2, preset="minilm-h100", device="gpu")]
    return [llm("g0", conc=2), llm("g1", conc=3, caps=("chat", "completion", "embedding"),
                                   price_per_hour=2.0),
            emb("e0", conc=1, price_per_hour=0.1), emb("e1", conc=2, preset="minilm-h100",
                                                      device="gpu", price_per_hour=2.5)]


def drive(cp, script) -> Ledger:
    led = Ledger(cp)
    names = [b.name for b in cp.backend_list]
    now, n = 0.0, 0
    for kind, a, b in script:
        n += 1
        if kind == "chat":
            r = chat(n, now, prio=a, slo_ttft_ms=b)
            if n % 7 == 0:
                r = Request(id=f"x{n}", cls="completion", arrival=now, prompt_tokens=8,
                            output_tokens=4)
            led.arrive(r, now)
        elif kind == "embed":
            led.arrive(embed(n, now, texts=a, slo_e2e_ms=b, model=f"m{n % 2}"), now)
        elif kind == "done" and led.in_flight:
            did = sorted(led.in_flight)[a % len(led.in_flight)]
            d = led.in_flight[did]
            if d.requests[0].cls != "embedding":
                cp.on_progress(d.backend, d.requests[0].id, now, first_token=True)
            led.complete(did, now, ok=b, reason="" if b else "engine_error")
        elif kind == "down":
            led.down(names[a], now)
        elif kind == "up":
            led.take(cp.on_backend_up(names[a], now), now)
        elif kind == "tick":
            now += a
            due = [t for t in led.timers if t <= now]
            led.timers = [t for t in led.timers if t > now]
            if due:
                led.take(cp.on_timer(now), now)
        led.check()
    # Finish: bring everything up, complete all in flight, fire timers, then drain.
    for name in names:
        led.take(cp.on_backend_up(name, now), now)
    for _ in range(10_000):
        if led.in_flight:
            led.complete(min(led.in_flight), now)
        elif led.timers:
            now = max(now, max(led.timers))
            led.timers.clear()
            led.take(cp.on_timer(now), now)
        else:
            break
        led.check()
    assert sum(cp.queued.values()) == 0, "requests stranded with backends up and nothing flying"
    led.take(cp.shutdown(now), now)
    led.check(final=True)
    return led


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(c.values()))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=ops, cap=st.integers(1, 6))
def test_every_request_leaves_exactly_once(case, script, cap):
    cp = make_cp(backends(case.get("baseline", "sage")), queue_capacity={"chat": cap, "completion": cap, "embedding": cap},
                 admission="on", hybrid={"batch_max_texts": 16}, **case)
    drive(cp, script)
