"""SharedHost: a simulated LLM engine pays its co-host cost while another engine on its
machine is busy."""

from __future__ import annotations

import random

import pytest

from engine.sim import SimEmbeddingEngine, SimLLMEngine
from engine.sim.calibrate import busy_share, busy_spans, fit_requests
from engine.sim.cost import EmbedCost, EmbedPreset, LLMCost, LLMPreset
from engine.sim.factory import make_engine
from engine.sim.host import SharedHost
from engine.spec import BackendSpec

LLM = LLMCost(beta0=2e-3, beta1=0.0, beta2=0.5e-3, cohost_beta2=0.2e-3)
EMB = EmbedCost(a=10e-3, b=0.4e-3)


def engines(shared: bool) -> tuple[SimLLMEngine, SimEmbeddingEngine]:
    host = SharedHost() if shared else None
    llm = SimLLMEngine(LLMPreset(name="l", model="m", device_kind="x", device="cpu", cost=LLM,
                                 kv_capacity_tokens=16 * 1024), host=host, record_steps=True)
    emb = SimEmbeddingEngine(EmbedPreset(name="e", model="m", device_kind="x", device="cpu",
                                         cost=EMB))
    if host is not None:
        host.join("llm", llm)
        host.join("emb", emb)
    return llm, emb


def decode_steps(llm: SimLLMEngine) -> list[float]:
    """Step lengths of three sequences decoding 5 tokens each (one prefill step first)."""
    for i in range(3):
        llm.submit(i, 1, 6, 2, 0.0)
    while (t := llm.next_event_time()) is not None:
        llm.advance(t)
    return [s["seconds"] for s in llm.step_log]


@pytest.mark.parametrize("shared", [True, False])
def test_decode_steps_cost_more_per_sequence_while_the_other_engine_works(shared):
    llm, emb = engines(shared)
    emb.submit("b", 4, 1000, 0.0)  # a 0.41 s pass: busy through every step
    emb.advance(0.0)
    steps = decode_steps(llm)
    extra = 3 * LLM.cohost_beta2 if shared else 0.0
    assert steps[1:] == pytest.approx([LLM.beta0 + 3 * LLM.beta2 + extra] * len(steps[1:]))


def test_an_idle_neighbour_costs_nothing():
    llm, _ = engines(shared=True)
    steps = decode_steps(llm)
    assert steps[1:] == pytest.approx([LLM.beta0 + 3 * LLM.beta2] * len(steps[1:]))


def test_factory_puts_engines_that_name_one_host_on_it():
    def spec(name, preset, caps, host=""):
        return BackendSpec(name=name, kind="sim", preset=preset, capabilities=caps,
                           device="cpu", host=host)

    hosts: dict = {}
    a = make_engine(spec("a", "tiny-cpu", ["chat"], "box"), hosts=hosts)
    b = make_engine(spec("b", "minilm-cpu", ["embedding"], "box"), hosts=hosts)
    c = make_engine(spec("c", "tiny-cpu", ["chat"]), hosts=hosts)
    assert list(hosts) == ["box"] and a.host is hosts["box"]
    assert c.host is None
    llm = getattr(a, "engine", a)  # the step engine inside the front end, if any
    b.submit("x", 1, 10, 0.0)
    b.advance(0.0)
    assert hosts["box"].others_busy(llm, 0.0) and not hosts["box"].others_busy(b, 0.0)
    # a restarted engine replaces its predecessor: the lost one's work is gone
    make_engine(spec("b", "minilm-cpu", ["embedding"], "box"), hosts=hosts)
    assert not hosts["box"].others_busy(llm, 0.0)


def test_busy_share_of_merged_spans():
    spans = busy_spans([{"t_dispatched": 0.0, "t_done": 1.0}, {"t_dispatched": 0.5, "t_done": 2.0},
                        {"t_dispatched": 3.0, "t_done": 4.0}, {"t_dispatched": None, "t_done": 9}])
    assert spans.tolist() == [[0.0, 2.0], [3.0, 4.0]]
    assert busy_share(spans, 1.0, 5.0) == pytest.approx(0.5)
    assert busy_share(spans, 2.0, 3.0) == 0.0 and busy_share(spans, 1.0, 1.0) == 0.0


def test_fits_give_back_the_co_host_costs():
    """Records whose decode overlapped the other engine for a known share: the fit
    recovers the extra per decode token, and finds none where nothing overlapped."""
    rng = random.Random(7)
    recs = []
    for i in range(400):
        p, o, b = rng.randint(16, 384), rng.randint(8, 64), rng.choice([1, 2, 4, 8])
        f = rng.choice([0.0, 0.0, rng.random()])
        tpot = (LLM.beta0 + LLM.beta2 * b + LLM.cohost_beta2 * b * f) * (1 + rng.gauss(0, 0.01))
        recs.append({"prompt_tokens": p, "output_tokens": o, "batch": b, "cohost": f,
                     "in_flight": 0 if i % 4 == 0 else 3, "ttft_s": 0.01 + 50e-6 * p,
                     "tpot_s": tpot})
    cost, _, _ = fit_requests(recs)
    assert cost.cohost_beta2 == pytest.approx(LLM.cohost_beta2, rel=0.1)
    assert cost.beta2 == pytest.approx(LLM.beta2, rel=0.05)
    alone, _, _ = fit_requests([{**r, "cohost": 0.0, "tpot_s": r["tpot_s"] - LLM.cohost_beta2
                                 * r["batch"] * r["cohost"]} for r in recs])
    assert alone.cohost_beta2 == 0.0 and alone.beta2 == pytest.approx(LLM.beta2, rel=0.05)
