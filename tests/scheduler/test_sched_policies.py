"""Each policy's defining behaviour on a crafted workload, through the real
virtual-time runtime and the real simulated engines."""

from __future__ import annotations

import random

from sched_helpers import Ledger, chat, emb, embed, llm, make_cp, p99, poisson

from scheduler.actions import Dispatch, SetTimer
from scheduler.config import ControlPlaneConfig
from scheduler.simrt import simulate


def run(backends, reqs, **cfg):
    """Simulate fresh copies: a simulation fills its requests' outcomes in place, and
    the tests compare configurations on one list."""
    return simulate(ControlPlaneConfig(**cfg), backends, [r.derive() for r in reqs])


def ttft(o):
    return o.t_first_token - o.t_intended


def overload_chat(seed=3):
    # One 4-slot 7B backend serves ~16 req/s of these; 24 req/s for 8 s builds a queue.
    return poisson(24, 8.0, seed, lambda i, t, rng: chat(
        i, t, prio=rng.choice([0, 4]), prompt=rng.randint(64, 256), out=rng.randint(16, 64)))


def test_priority_gives_p0_a_lower_p99_than_p4():
    be = [llm("g", conc=4)]
    res = run(be, overload_chat(), policy="priority", priority={"aging_s": 60})
    by = {p: [ttft(o) for o in res.outcomes if o.priority == p] for p in (0, 4)}
    assert all(o.status == "completed" for o in res.outcomes)
    assert p99(by[0]) < 0.5 * p99(by[4])
    fifo = run(be, overload_chat(), policy="fifo")
    fby = {p: [ttft(o) for o in fifo.outcomes if o.priority == p] for p in (0, 4)}
    assert p99(fby[0]) > 0.7 * p99(fby[4])  # without the policy, no such gap


def test_priority_aging_bounds_the_wait_of_background_requests():
    be = [llm("g", conc=4)]
    short = run(be, overload_chat(), policy="priority", priority={"aging_s": 0.05})
    long = run(be, overload_chat(), policy="priority", priority={"aging_s": 60})
    p4 = {n: p99([ttft(o) for o in r.outcomes if o.priority == 4])
          for n, r in (("short", short), ("long", long))}
    assert p4["short"] < p4["long"]


def slo_mix(seed=5, rate=16):
    # 30% tight (300 ms TTFT), 70% loose (3 s); ~16 req/s saturates one 4-slot 7B backend.
    def make(i, t, rng):
        tight = rng.random() < 0.3
        return chat(i, t, slo_ttft_ms=300 if tight else 3000, prompt=rng.randint(64, 256),
                    out=rng.randint(16, 64))
    return poisson(rate, 10.0, seed, make)


def misses(res):
    return sum(1 for o in res.outcomes
               if o.status != "completed" or ttft(o) * 1000 > o.slo_ttft_ms)


def test_edf_misses_no_more_deadlines_than_fifo():
    be = [llm("g", conc=4)]
    edf, fifo = run(be, slo_mix(), policy="slo"), run(be, slo_mix(), policy="fifo")
    assert misses(edf) < misses(fifo)
    for seed in (6, 7):
        assert misses(run(be, slo_mix(seed), policy="slo")) <= \
            misses(run(be, slo_mix(seed), policy="fifo"))


def test_slo_admission_beats_fifo_in_overload():
    # Past saturation plain EDF suffers the domino effect; refusing what the work
    # ahead leaves no time for is what keeps it ahead of FIFO.
    be = [llm("g", conc=4)]
    for seed in (5, 6):
        res = run(be, slo_mix(seed, rate=22), policy="slo")
        rej = [o for o in res.outcomes if o.status == "rejected"]
        assert rej and {o.reason for o in rej} <= {"slo_infeasible", "slo_shed"}
        assert misses(res) < 0.5 * misses(run(be, slo_mix(seed, rate=22), policy="fifo"))


def test_hybrid_holds_a_batch_open_for_the_window_then_flushes():
    cp = make_cp([emb("e", conc=4)], policy="hybrid",
                 hybrid={"batch_max_texts": 32, "batch_max_wait_ms": 10})
    led = Ledger(cp)
    acts = []
    for i in range(4):  # one text every 3 ms, a backend free all along
        acts += led.arrive(embed(i, i * 0.003), i * 0.003)
    assert not [a for a in acts if isinstance(a, Dispatch)], "flushed before the window ended"
    timers = [a.t for a in acts if isinstance(a, SetTimer)]
    assert timers == [0.01]
    acts = led.take(cp.on_timer(0.01), 0.01)
    (d,) = [a for a in acts if isinstance(a, Dispatch)]
    assert [r.id for r in d.requests] == ["e0", "e1", "e2", "e3"]
    # A full batch does not wait for the window.
    acts = led.arrive(embed(10, 0.02, texts=20), 0.02) + led.arrive(embed(11, 0.021, texts=12),
                                                                     0.021)
    (d,) = [a for a in acts if isinstance(a, Dispatch)]
    assert sum(r.n_texts for r in d.requests) == 32
    led.check()


def test_hybrid_batches_never_outlive_the_window_in_simulation():
    # Fast GPU embedders: a slot is always free, so any wait is the policy's.
    be = [llm("g", conc=8), emb("e0", conc=4, preset="minilm-h100", device="gpu"),
          emb("e1", conc=4, preset="minilm-h100", device="gpu")]
    reqs = poisson(600, 2.0, 11, lambda i, t, rng: (
        embed(i, t, texts=rng.randint(1, 6)) if rng.random() < 0.5 else chat(i, t)))
    res = run(be, reqs, policy="hybrid", hybrid={"batch_max_wait_ms": 10})
    waits = [o.t_dispatched - o.t_received for o in res.outcomes if o.cls == "embedding"]
    assert max(waits) <= 0.010 + 1e-9
    sizes = {}
    for o in res.outcomes:
        if o.cls == "embedding":
            sizes.setdefault((o.backend, o.t_dispatched), []).append(o.n_texts)
    assert max(sum(v) for v in sizes.values()) <= 32
    assert sum(len(v) for v in sizes.values()) / len(sizes) > 2  # batches really form


def flood(cls_flood, seed=13):
    rng = random.Random(seed)
    reqs = [embed(i, 0.0 + i * 1e-5, texts=32) if cls_flood == "embedding" else
            chat(i + 10_000, i * 1e-5, prompt=128, out=64) for i in range(1500)]
    # The other class trickles in during the flood.
    for j in range(40):
        t = 0.01 + j * 0.02
        reqs.append(chat(50_000 + j, t, prompt=64, out=8) if cls_flood == "embedding"
                    else embed(50_000 + j, t, texts=2))
    rng.shuffle(reqs)
    return reqs


def test_hybrid_shares_keep_chat_alive_under_an_embedding_flood():
    be = [llm("g", conc=10, caps=("chat", "embedding"))]
    cfg = dict(hybrid={"shares": {"llm": 0.5, "embedding": 0.5}})
    hy = run(be, flood("embedding"), policy="hybrid", **cfg)
    fi = run(be, flood("embedding"), policy="fifo")
    def chat_wait(res):
        return p99([o.t_dispatched - o.t_received for o in res.outcomes if o.cls == "chat"])
    assert all(o.status == "completed" for o in hy.outcomes)
    assert chat_wait(hy) < 0.2 * chat_wait(fi)


def test_hybrid_shares_keep_embeddings_alive_under_a_chat_flood():
    be = [llm("g", conc=10, caps=("chat", "embedding"))]
    hy = run(be, flood("chat"), policy="hybrid")
    fi = run(be, flood("chat"), policy="fifo")
    def emb_wait(res):
        return p99([o.t_dispatched - o.t_received for o in res.outcomes if o.cls == "embedding"])
    assert all(o.status == "completed" for o in hy.outcomes)
    assert emb_wait(hy) < 0.2 * emb_wait(fi)


def test_every_policy_and_router_switch_changes_behaviour():
    # Upstream defect to avoid: a setting that silently does nothing.
    reqs = poisson(30, 4.0, 21, lambda i, t, rng: (
        chat(i, t, prio=rng.randint(0, 4), slo_ttft_ms=rng.choice([200, 3000]),
             prompt=rng.randint(64, 256), out=rng.randint(16, 64)) if rng.random() < 0.8
        else embed(i, t, texts=rng.randint(1, 4), slo_e2e_ms=rng.choice([50, 500]))))
    be = [llm("g0", conc=2), llm("g1", conc=2, caps=("chat", "embedding")), emb("e0", conc=1)]
    # Routers need a real choice: three LLM backends, one cheap CPU among them.
    hetero = [llm("g0", conc=2),
              llm("g1", conc=3, caps=("chat", "embedding"), device="cpu", preset="tiny-cpu",
                  price_per_hour=0.1),
              llm("g2", conc=2, price_per_hour=3.0), emb("e0", conc=1)]

    def signature(res):
        return tuple(sorted((o.id, o.backend, round(o.t_dispatched or -1, 9))
                            for o in res.outcomes))

    policies = {p: signature(run(be, reqs, policy=p))
                for p in ("fifo", "priority", "slo", "hybrid")}
    assert len(set(policies.values())) == 4
    routers = {r: signature(run(hetero, reqs, policy="fifo", router=r))
               for r in ("least-work", "round-robin", "least-outstanding", "p2c",
                         "cost-aware")}
    assert len(set(routers.values())) == 5
    baselines = {b: signature(run(be, reqs, baseline=b)) for b in ("sage", "vllm-only",
                                                                    "separate")}
    assert len(set(baselines.values())) == 3


def test_hybrid_orders_llm_by_deadline_plus_priority_offset():
    cp = make_cp([llm("g", conc=1)], policy="hybrid", hybrid={"aging_s": 1.0},
                 admission="off")
    led = Ledger(cp)
    led.arrive(chat(0, 0.0), 0.0)  # takes the only slot
    led.arrive(chat(1, 0.01, prio=4, slo_ttft_ms=100), 0.01)  # key 0.01 + 0.1 + 4
    led.arrive(chat(2, 0.02, prio=0, slo_ttft_ms=3000), 0.02)  # key 0.02 + 3 + 0
    led.arrive(chat(3, 0.03, prio=0, slo_ttft_ms=500), 0.03)  # key 0.03 + 0.5 + 0
    order = []
    now = 0.1
    while led.in_flight:
        for a in led.complete(min(led.in_flight), now):
            if isinstance(a, Dispatch):
                order.append(a.requests[0].id)
        now += 0.1
    assert order == ["c3", "c2", "c1"]
    led.check(final=True)


def test_a_timer_fired_early_rearms_instead_of_stranding_the_batch():
    cp = make_cp([emb("e", conc=1)], policy="hybrid", hybrid={"batch_max_wait_ms": 10})
    led = Ledger(cp)
    acts = led.arrive(embed(0, 0.0), 0.0)
    assert [a.t for a in acts if isinstance(a, SetTimer)] == [0.01]
    early = led.take(cp.on_timer(0.01 - 1e-7), 0.01 - 1e-7)
    assert [type(a) for a in early] == [SetTimer] and early[0].t == 0.01
    (d,) = [a for a in led.take(cp.on_timer(0.01), 0.01) if isinstance(a, Dispatch)]
    assert [r.id for r in d.requests] == ["e0"]


def _cpu_and_gpu(**hybrid):
    """Hybrid over a cheap CPU embedder and a dear GPU one, each having seen its
    batches cost a + b·tokens (CPU 8 ms + 0.1 ms/token, GPU 2 ms + 3 us/token)."""
    be = [emb("cpu", conc=2, price_per_hour=0.1),
          emb("gpu", conc=1, preset="minilm-h100", device="gpu", price_per_hour=2.5)]
    cp = make_cp(be, policy="hybrid", hybrid=hybrid, admission="off")
    for tokens in (32, 320):
        cp.backends["cpu"].emb_est.observe(tokens, 0.008 + 1e-4 * tokens)
        cp.backends["gpu"].emb_est.observe(tokens, 0.002 + 3e-6 * tokens)
    return cp


def test_hybrid_places_an_embedding_where_it_finishes_first():
    led = Ledger(_cpu_and_gpu())
    (d,) = led.arrive(embed(0, 0.0, texts=10, tokens=320), 0.0)
    assert d.backend == "gpu"  # 3 ms against the CPU's 40 ms: no window, no detour


def test_hybrid_takes_the_cheap_cpu_when_it_is_within_the_cost_tolerance():
    led = Ledger(_cpu_and_gpu(cost_tolerance=20.0))
    (d,) = led.arrive(embed(0, 0.0, texts=10, tokens=320), 0.0)
    assert d.backend == "cpu"  # 40 ms is within 21x of 3 ms
    # a second batch queues behind the first on the CPU's free slot: 40 + 40 ms
    # against the GPU's 3 ms is beyond 21x, so it goes to the GPU
    (d,) = led.arrive(embed(1, 0.001, texts=10, tokens=320), 0.001)
    assert d.backend == "gpu"


def test_hybrid_batches_embeddings_only_while_they_queue():
    cp = make_cp([emb("e", conc=1)], policy="hybrid")
    led = Ledger(cp)
    (first,) = [a for a in led.arrive(embed(0, 0.0), 0.0) if isinstance(a, Dispatch)]
    queued = [a for i in range(1, 4) for a in led.arrive(embed(i, 0.001 * i), 0.001 * i)]
    assert not [a for a in queued if isinstance(a, Dispatch)]  # the backend is busy
    (batch,) = [a for a in led.complete(first.dispatch_id, 0.01) if isinstance(a, Dispatch)]
    assert [r.id for r in batch.requests] == ["e1", "e2", "e3"]
    led.check()


def _embedding_beside_decoding_chats(tpot_slo_ms: float) -> str:
    """Where hybrid sends an embedding batch while six chats with this TPOT SLO
    decode on a GPU that hosts the LLM and an embedding model (a slower CPU
    embedder beside it)."""
    be = [llm("g", conc=8, caps=("chat", "embedding")),
          emb("cpu", conc=1, price_per_hour=0.1)]
    led = Ledger(make_cp(be, policy="hybrid", admission="off"))
    for i in range(6):
        led.arrive(chat(i, 0.0, prompt=512, out=200, slo_tpot_ms=tpot_slo_ms), 0.0)
    (d,) = [a for a in led.arrive(embed(9, 0.001, texts=8, tokens=2048), 0.001)
            if isinstance(a, Dispatch)]
    return d.backend


def test_hybrid_keeps_embedding_batches_off_a_host_near_its_tpot_slo():
    assert _embedding_beside_decoding_chats(7.0) == "cpu"  # the step is near 7 ms already
    assert _embedding_beside_decoding_chats(100.0) == "g"  # slack: the fast GPU takes it
