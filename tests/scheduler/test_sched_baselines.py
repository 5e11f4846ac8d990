"""The baselines without a control plane: colocated, split and vllm-priority."""

from __future__ import annotations

import pytest
from sched_helpers import Ledger, chat, emb, embed, llm, make_cp

from scheduler.actions import Dispatch

MIXED = ("chat", "completion", "embedding")
PRIO = ["--scheduling-policy", "priority"]


def dispatched(actions):
    return [a for a in actions if isinstance(a, Dispatch)]


def test_colocated_picks_the_least_loaded_capable_backend():
    cp = make_cp([llm("g0", caps=MIXED), llm("g1", caps=MIXED), llm("g2", caps=MIXED)],
                 baseline="colocated")
    led = Ledger(cp)
    first = [dispatched(led.arrive(chat(i, 0.0), 0.0))[0] for i in range(3)]
    assert [d.backend for d in first] == ["g0", "g1", "g2"]  # ties to config order
    led.complete(first[1].dispatch_id, 0.1)  # g1 now has nothing outstanding
    assert dispatched(led.arrive(chat(9, 0.1), 0.1))[0].backend == "g1"
    # Embeddings go to the same shared GPUs, counted with the chat requests there.
    led.complete(first[2].dispatch_id, 0.15)
    assert dispatched(led.arrive(embed(0, 0.2), 0.2))[0].backend == "g2"
    led.check()


def test_colocated_counts_requests_not_slots():
    cp = make_cp([llm("big", conc=64, caps=MIXED), llm("small", conc=1, caps=MIXED)],
                 baseline="colocated")
    led = Ledger(cp)
    got = [dispatched(led.arrive(chat(i, 0.0), 0.0))[0].backend for i in range(4)]
    assert got == ["big", "small", "big", "small"]  # a client balancer sees no slot counts


def test_colocated_refuses_single_model_gpus():
    with pytest.raises(ValueError, match=r"baseline.*'colocated'.*'g0'.*'e0'"):
        make_cp([llm("g0"), llm("g1", caps=MIXED), emb("e0", preset="minilm-h100",
                                                       device="gpu")], baseline="colocated")


def test_split_keeps_embeddings_off_the_chat_gpus():
    gpu_emb = [emb(f"e{i}", preset="minilm-h100", device="gpu") for i in range(2)]
    cp = make_cp([llm("g0"), llm("g1"), *gpu_emb], baseline="split")
    led = Ledger(cp)
    acts = []
    for i in range(6):
        acts += led.arrive(embed(i, 0.0), 0.0)
        acts += led.arrive(chat(i, 0.0), 0.0)
    by_cls = {}
    for d in dispatched(acts):
        by_cls.setdefault(d.requests[0].cls, set()).add(d.backend)
    assert by_cls == {"embedding": {"e0", "e1"}, "chat": {"g0", "g1"}}
    led.check()


def test_split_balances_by_least_request_within_a_pool():
    cp = make_cp([llm("g0"), llm("g1"), emb("e0", preset="minilm-h100", device="gpu")],
                 baseline="split")
    led = Ledger(cp)
    a, b = (dispatched(led.arrive(chat(i, 0.0), 0.0))[0] for i in range(2))
    led.complete(b.dispatch_id, 0.1)
    assert dispatched(led.arrive(chat(5, 0.1), 0.1))[0].backend == "g1"


def test_split_refuses_shared_gpus():
    with pytest.raises(ValueError, match=r"'split'.*'g1'"):
        make_cp([llm("g0"), llm("g1", caps=MIXED), emb("e0")], baseline="split")


def test_vllm_priority_refuses_engines_without_the_flag():
    with pytest.raises(ValueError, match=r"baseline.*'vllm-priority'.*'g1'") as e:
        make_cp([llm("g0", extra_args=PRIO), llm("g1"), emb("e0")], baseline="vllm-priority")
    assert "'g0'" not in str(e.value) and "'e0'" not in str(e.value)
    assert "--scheduling-policy" in str(e.value)


def test_vllm_priority_dispatches_like_vllm_only():
    be = [llm("g0", conc=1, extra_args=PRIO),
          llm("g1", conc=1, extra_args=["--scheduling-policy=priority"]), emb("e0")]
    cp = make_cp(be, baseline="vllm-priority")
    led = Ledger(cp)
    got = [dispatched(led.arrive(chat(i, 0.0, prio=i % 5), 0.0))[0] for i in range(4)]
    assert [d.backend for d in got] == ["g0", "g1"] * 2  # round-robin, no slot limit
    assert all(b.priority_scheduling for b in cp.backend_list[:2])
    led.check()


def test_the_new_baselines_run_end_to_end_in_the_simulator():
    import random

    from sched_helpers import poisson

    from scheduler.config import ControlPlaneConfig
    from scheduler.simrt import simulate

    def make(i, t, rng: random.Random):
        if rng.random() < 0.3:
            return embed(i, t, texts=rng.randint(1, 8))
        return chat(i, t, prio=rng.randint(0, 4), prompt=256, out=32)

    reqs = poisson(80, 2.0, 3, make)
    gpu_emb = emb("e0", preset="minilm-h100", device="gpu", conc=8)
    setups = {"colocated": [llm("g0", caps=MIXED, conc=64), llm("g1", caps=MIXED, conc=64)],
              "split": [llm("g0", conc=64), gpu_emb],
              "vllm-priority": [llm("g0", conc=64, extra_args=PRIO), gpu_emb]}
    for baseline, be in setups.items():
        res = simulate(ControlPlaneConfig(baseline=baseline), be, [r.derive() for r in reqs])
        assert all(o.status == "completed" for o in res.outcomes), baseline
        used = {(o.cls, o.backend) for o in res.outcomes}
        if baseline == "colocated":
            assert {b for c, b in used if c == "embedding"} == {"g0", "g1"}
        if baseline == "split":
            assert {b for c, b in used if c == "embedding"} == {"e0"}
            assert {b for c, b in used if c == "chat"} == {"g0"}


def test_colocated_accepts_an_llm_and_an_embedding_model_sharing_one_gpu():
    from engine.spec import BackendSpec
    from scheduler.baselines import check_baseline

    pair = [BackendSpec(name="llm", kind="sim", preset="7b-h100", capabilities=["chat"],
                        host="gpu0"),
            BackendSpec(name="emb", kind="sim", preset="minilm-h100",
                        capabilities=["embedding"], host="gpu0")]
    check_baseline("colocated", pair)  # one machine hosts both
    with pytest.raises(ValueError, match="colocated"):
        check_baseline("colocated", [pair[0].model_copy(update={"host": "gpu1"}), pair[1]])
