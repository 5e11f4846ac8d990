"""Schedules: deterministic from the seed, distributions as specified (KS tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from loadgen.schedule import Source, build_schedule
from loadgen.spec import WorkloadSpec


def _gaps(spec: WorkloadSpec) -> np.ndarray:
    return np.diff([r.t_intended for r in build_schedule(spec)])


def test_same_seed_same_schedule_other_seed_differs():
    spec = WorkloadSpec(rate=200, duration_s=5, mix={"chat": 0.7, "embedding": 0.3},
                        sizes={"chat": {"prompt_tokens": {"kind": "lognormal", "mean": 100, "sigma": 1}}})
    a, b = build_schedule(spec), build_schedule(WorkloadSpec.model_validate(spec.resolved()))
    assert [r.plan() for r in a] == [r.plan() for r in b]
    c = build_schedule(spec, seed=1)
    assert [r.t_intended for r in a] != [r.t_intended for r in c]


def test_mix_change_keeps_arrival_times():
    a = build_schedule(WorkloadSpec(rate=100, duration_s=3))
    b = build_schedule(WorkloadSpec(rate=100, duration_s=3, mix={"chat": 1, "embedding": 1}))
    assert [r.t_intended for r in a] == [r.t_intended for r in b]


def test_poisson_gaps_are_exponential():
    g = _gaps(WorkloadSpec(rate=100, duration_s=40, seed=7))
    assert stats.kstest(g, "expon", args=(0, 1 / 100)).pvalue > 0.01
    # and not something else: a gamma with cv 2 is rejected
    assert stats.kstest(g, "gamma", args=(0.25, 0, 1 / (100 * 0.25))).pvalue < 1e-6


@pytest.mark.parametrize("cv", [0.5, 2.0])
def test_gamma_gaps(cv):
    g = _gaps(WorkloadSpec(rate=100, duration_s=40, seed=3, arrival={"kind": "gamma", "cv": cv}))
    k = 1 / cv**2
    assert stats.kstest(g, "gamma", args=(k, 0, 1 / (100 * k))).pvalue > 0.01
    assert np.std(g) / np.mean(g) == pytest.approx(cv, rel=0.1)


def test_constant_gaps():
    g = _gaps(WorkloadSpec(rate=50, duration_s=2, arrival="constant"))
    assert np.allclose(g, 0.02)
    assert len(g) == 99


def test_onoff_rates_per_phase():
    spec = WorkloadSpec(rate=50, duration_s=40, arrival={"kind": "onoff", "factor": 4, "on_s": 2, "off_s": 3})
    t = np.array([r.t_intended for r in build_schedule(spec)])
    on = (t % 5) < 2
    assert on.sum() / (8 * 2) == pytest.approx(200, rel=0.08)
    assert (~on).sum() / (8 * 3) == pytest.approx(50, rel=0.15)
    # within on periods the process is Poisson: time-rescaled gaps are Exp(1)
    u = np.where(on, t % 5 * 200, 2 * 200 + (t % 5 - 2) * 50) + (t // 5) * (2 * 200 + 3 * 50)
    assert stats.kstest(np.diff(u), "expon").pvalue > 0.01


def test_ramp_time_rescaled_is_unit_poisson():
    spec = WorkloadSpec(rate=1, duration_s=40, arrival={"kind": "ramp", "start": 10, "end": 190})
    t = np.array([r.t_intended for r in build_schedule(spec)])
    lam = 10 * t + (180 / 40) * t * t / 2  # cumulative intensity
    assert stats.kstest(np.diff(lam), "expon").pvalue > 0.01
    assert (t < 20).sum() < (t >= 20).sum() / 2


def test_mix_and_sizes():
    spec = WorkloadSpec(rate=500, duration_s=10, mix={"chat": 0.7, "embedding": 0.3},
                        sizes={"chat": {"output_tokens": {"kind": "uniform", "low": 10, "high": 20}},
                               "embedding": {"n_texts": 4, "text_tokens": 16}},
                        priorities={"chat": {"weights": [1, 0, 0, 0, 1]}},
                        slos={"chat": {"ttft_ms": 100, "e2e_ms": 1000}}, model="m", embedding_model="e")
    s = build_schedule(spec)
    chat = [r for r in s if r.cls == "chat"]
    emb = [r for r in s if r.cls == "embedding"]
    assert len(chat) / len(s) == pytest.approx(0.7, abs=0.03)
    assert {r.output_tokens for r in chat} == set(range(10, 21))
    assert {r.priority for r in chat} == {0, 4}
    assert all(r.n_texts == 4 and r.text_tokens == 64 and r.prompt_tokens == 64 for r in emb)
    assert all(r.slo_ttft_ms == 100 and r.model == "m" for r in chat)
    assert all(r.slo_ttft_ms is None and r.model == "e" for r in emb)
    assert [r.id for r in s] == [f"r{i:07d}" for i in range(len(s))]


def test_trace_replay_with_time_scale(tmp_path):
    p = tmp_path / "trace.csv"
    p.write_text("timestamp,class,prompt_tokens,output_tokens,priority\n"
                 "100.0,chat,10,5,0\n100.5,embedding,,,\n102.0,chat,,7,\n")
    s = build_schedule(WorkloadSpec(duration_s=10, arrival={"kind": "trace", "path": str(p), "time_scale": 2}))
    assert [r.t_intended for r in s] == [0.0, 1.0, 4.0]
    assert [r.cls for r in s] == ["chat", "embedding", "chat"]
    assert (s[0].prompt_tokens, s[0].output_tokens, s[0].priority) == (10, 5, 0)
    assert (s[2].prompt_tokens, s[2].output_tokens) == (64, 7)  # missing sizes from `sizes`
    short = build_schedule(WorkloadSpec(duration_s=3, arrival={"kind": "trace", "path": str(p), "time_scale": 2}))
    assert len(short) == 2  # rows past the end are dropped


def test_adversarial_priority_inversion():
    spec = WorkloadSpec(rate=10, duration_s=20, arrival={
        "kind": "adversarial", "attack": "priority_inversion", "start_s": 5, "length_s": 5,
        "factor": 10, "trickle_rps": 5})
    s = build_schedule(spec)
    flood = [r for r in s if r.priority == 4]
    trickle = [r for r in s if r.priority == 0]
    assert all(5 <= r.t_intended < 10 for r in flood) and len(flood) == pytest.approx(500, rel=0.15)
    assert all(10 <= r.t_intended < 20 for r in trickle) and len(trickle) == pytest.approx(50, rel=0.4)


def test_adversarial_spike_and_flood():
    s = build_schedule(WorkloadSpec(rate=10, duration_s=10, arrival={
        "kind": "adversarial", "attack": "spike", "period_s": 2, "burst": 30}))
    t = np.array([r.t_intended for r in s])
    for k in (2, 4, 6, 8):
        assert (t == k).sum() == 30
    s = build_schedule(WorkloadSpec(rate=10, duration_s=10, arrival={
        "kind": "adversarial", "attack": "long_prompt_flood", "start_s": 2, "length_s": 3,
        "long_prompt_tokens": 4000}))
    longs = [r for r in s if r.prompt_tokens == 4000]
    assert longs and all(2 <= r.t_intended < 5 for r in longs)


def test_closed_loop_source_is_order_independent():
    spec = WorkloadSpec(duration_s=10, clients={"n": 3, "think_time_s": 0.5},
                        mix={"chat": 1, "embedding": 1})
    a, b = Source(spec), Source(spec)
    ia, ib = a.initial(), b.initial()
    assert [r.plan() for r in ia] == [r.plan() for r in ib] and all(r.t_intended == 0 for r in ia) and len({r.client_id for r in ia}) == 3
    # complete in different orders: each client's next request is the same
    na = [a.on_done(r, 1.0)[0] for r in ia]
    nb = [b.on_done(r, 1.0)[0] for r in reversed(ib)][::-1]
    assert [r.plan() for r in na] == [r.plan() for r in nb] and all(r.t_intended == 1.5 for r in na)
    assert a.on_done(ia[0], 9.6) == []  # past the end
    with pytest.raises(ValueError, match="client_id"):
        a.on_done(type("R", (), {"client_id": "zz"})(), 1.0)
    with pytest.raises(ValueError, match="clients"):
        build_schedule(spec)


def test_same_schedule_in_another_process():
    """The simulator and the live runner may build it in different processes."""
    import hashlib
    import subprocess
    import sys

    code = ("import hashlib; from loadgen.spec import WorkloadSpec; from loadgen.schedule import build_schedule;"
            "s = build_schedule(WorkloadSpec(rate=300, duration_s=2, mix={'chat': 1, 'embedding': 1},"
            " arrival={'kind': 'gamma', 'cv': 3}));"
            "print(hashlib.sha256(repr(s).encode()).hexdigest())")
    here = build_schedule(WorkloadSpec(rate=300, duration_s=2, mix={"chat": 1, "embedding": 1},
                                       arrival={"kind": "gamma", "cv": 3}))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}, cwd=str(Path(__file__).parents[2]))
    assert out.stdout.strip() == hashlib.sha256(repr(here).encode()).hexdigest()
