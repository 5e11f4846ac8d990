"""Routers pick by their rule among free backends."""

from __future__ import annotations

from sched_helpers import emb, llm, make_cp

from scheduler.config import ControlPlaneConfig
from scheduler.routers import CostAware, LeastOutstanding, PowerOfTwo, RoundRobin, make_router


def states(*specs, **cfg):
    return make_cp(list(specs), **cfg).backend_list


def test_round_robin_rotates_and_skips_busy():
    a, b, c = states(llm("a"), llm("b"), llm("c"))
    rr = RoundRobin()
    picks = [rr.pick("chat", [a, b, c], "llm", 0, float("inf"), 0).name for _ in range(4)]
    assert picks == ["a", "b", "c", "a"]
    assert rr.pick("chat", [a, c], "llm", 0, float("inf"), 0).name == "c"  # b busy


def test_least_outstanding_normalises_by_slots():
    a, b = states(llm("a", conc=2), llm("b", conc=8))
    a.outstanding, b.outstanding = 1, 3  # 0.5 vs 0.375 per slot
    assert LeastOutstanding().pick("chat", [a, b], "llm", 0, 1.0, 0).name == "b"


def test_p2c_is_seeded_and_picks_the_lesser_of_two():
    bs = states(*(llm(f"b{i}") for i in range(6)))
    for i, b in enumerate(bs):
        b.outstanding = i
    r1, r2 = PowerOfTwo(7), PowerOfTwo(7)
    seq1 = [r1.pick("chat", bs, "llm", 0, 1.0, 0).name for _ in range(50)]
    seq2 = [r2.pick("chat", bs, "llm", 0, 1.0, 0).name for _ in range(50)]
    assert seq1 == seq2
    assert "b5" not in seq1  # the most loaded never wins a pair
    assert len(set(seq1)) > 2


def set_ttft(b, seconds: float, prompt: int = 64) -> None:
    """Make a backend's predicted first token for `prompt` take `seconds` (as the
    observed/predicted correction would after such observations)."""
    b.ttft_corr.factor = 1.0
    b.ttft_corr.factor = seconds / b.predict_ttft(prompt)


def test_cost_aware_prefers_cheap_cpu_that_meets_the_deadline_else_fastest():
    cpu, gpu = states(llm("cpu", device="cpu", price_per_hour=0.1, preset="tiny-cpu"),
                      llm("gpu", price_per_hour=2.5))
    set_ttft(cpu, 0.080)
    set_ttft(gpu, 0.010)
    r = CostAware()
    assert r.pick("chat", [gpu, cpu], "llm", 64, 0.100, 0.0).name == "cpu"
    assert r.pick("chat", [gpu, cpu], "llm", 64, 0.050, 0.0).name == "gpu"
    assert r.pick("chat", [gpu, cpu], "llm", 64, float("inf"), 0.0).name == "cpu"


def test_dedicated_embedding_backends_rank_first_for_cost_aware():
    shared, ded = states(llm("shared", caps=("chat", "embedding"), price_per_hour=0.0),
                         emb("ded", price_per_hour=1.0))
    assert CostAware().pick("embedding", [shared, ded], "embedding", 32, 1.0, 0).name == "ded"


def test_make_router_by_name():
    for name, cls in [("round-robin", RoundRobin), ("least-outstanding", LeastOutstanding),
                      ("p2c", PowerOfTwo), ("cost-aware", CostAware)]:
        assert isinstance(make_router(ControlPlaneConfig(router=name)), cls)
