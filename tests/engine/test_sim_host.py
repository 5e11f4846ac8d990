"""SharedHost: a simulated LLM engine pays its co-host cost while another engine on its
machine is busy, and an embedding pass stretches with the sequences decoding beside it."""

from __future__ import annotations

import random

import pytest

from engine.sim import SimEmbeddingEngine, SimLLMEngine
from engine.sim.calibrate import (
    busy_share,
    busy_spans,
    embedding_records_from_requests,
    fit_embedding,
    fit_requests,
)
from engine.sim.cost import EmbedCost, EmbedPreset, LLMCost, LLMPreset
from engine.sim.factory import make_engine
from engine.sim.host import SharedHost
from engine.spec import BackendSpec

LLM = LLMCost(beta0=2e-3, beta1=0.0, beta2=0.5e-3, cohost_beta2=0.2e-3)
EMB = EmbedCost(a=10e-3, b=0.4e-3)


def engines(shared: bool, emb_cost: EmbedCost = EMB) -> tuple[SimLLMEngine, SimEmbeddingEngine]:
    host = SharedHost() if shared else None
    llm = SimLLMEngine(LLMPreset(name="l", model="m", device_kind="x", device="cpu", cost=LLM,
                                 kv_capacity_tokens=16 * 1024), host=host, record_steps=True)
    emb = SimEmbeddingEngine(EmbedPreset(name="e", model="m", device_kind="x", device="cpu",
                                         cost=emb_cost), host=host)
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


def pass_time(shared: bool, decoding: int, k: float = 0.05) -> float:
    """One 100-token pass, started while `decoding` sequences decode on the LLM engine."""
    llm, emb = engines(shared, EmbedCost(a=EMB.a, b=EMB.b, cohost_per_seq=k))
    for i in range(decoding):
        llm.submit(i, 1, 1000, 2, 0.0)
    while llm.decoding() < decoding:  # through the prefill step
        llm.advance(llm.next_event_time())
    t0 = llm.next_event_time() - 1e-4 if decoding else 0.0  # inside the first decode step
    llm.advance(t0)
    emb.submit("b", 1, 100, t0)
    emb.advance(t0)
    return emb.next_event_time() - t0


def test_a_pass_stretches_with_the_sequences_decoding_beside_it():
    line = EMB.a + EMB.b * 100
    assert pass_time(True, 0) == pytest.approx(line)
    assert pass_time(True, 3) == pytest.approx(line * (1 + 3 * 0.05))
    assert pass_time(True, 3, k=0.0) == pytest.approx(line)
    assert pass_time(False, 3) == pytest.approx(line)  # alone on its machine


def test_negative_co_host_stretch_is_refused():
    with pytest.raises(ValueError, match="cohost_per_seq"):
        engines(True, EmbedCost(a=EMB.a, b=EMB.b, cohost_per_seq=-0.1))


def test_embedding_records_count_the_chat_streams_at_dispatch():
    chat = [{"t_first_token": 0.5, "t_done": 2.0},   # streaming at 1.0
            {"t_first_token": 0.2, "t_done": 0.9},   # done before
            {"t_first_token": 1.5, "t_done": 3.0},   # not yet streaming (prefill, or unsent)
            {"t_first_token": 0.1, "t_done": 1.2}]   # streaming
    emb = [{"t_dispatched": 1.0, "t_done": 1.1, "prompt_tokens": 40, "backend": "e"},
           {"t_dispatched": 5.0, "t_done": 5.1, "prompt_tokens": 40, "backend": "e"}]
    recs = embedding_records_from_requests(emb, chat=chat)
    assert [r["cohost_seqs"] for r in recs] == [2, 0]
    assert [r["cohost_seqs"] for r in embedding_records_from_requests(emb)] == [0, 0]


def test_embedding_fit_gives_back_the_stretch_per_sequence():
    rng = random.Random(3)
    recs = []
    for _ in range(300):
        tok, n = rng.randint(10, 400), rng.choice([0, 0, 1, 2, 3])
        y = (EMB.a + EMB.b * tok) * (1 + 0.06 * n) * (1 + rng.gauss(0, 0.01))
        recs.append({"tokens": tok, "seconds": y, "cohost_seqs": n, "in_flight": 0})
    cost, _ = fit_embedding(recs)
    assert cost.cohost_per_seq == pytest.approx(0.06, abs=0.005)
    assert cost.a == pytest.approx(EMB.a, rel=0.05) and cost.b == pytest.approx(EMB.b, rel=0.05)
    # only passes with chat beside them: stretch and line cannot be told apart
    busy = [r for r in recs if r["cohost_seqs"] > 0]
    assert fit_embedding(busy)[0].cohost_per_seq == 0.0
    # nothing streaming beside any pass: no stretch, the plain line
    plain = [{**r, "cohost_seqs": 0} for r in recs if r["cohost_seqs"] == 0]
    assert fit_embedding(plain)[0].cohost_per_seq == 0.0


def _gpu_pair(slowdown: float | None) -> tuple:
    """A 7B LLM and a MiniLM on one simulated H100 (`host = "gpu0"`), built as a run
    builds them."""
    hosts: dict = {}
    kw = {} if slowdown is None else {"cohost_slowdown": slowdown}
    llm = make_engine(BackendSpec(name="llm", kind="sim", preset="7b-h100",
                                  capabilities=["chat"], host="gpu0", **kw), hosts=hosts)
    emb = make_engine(BackendSpec(name="emb", kind="sim", preset="minilm-h100",
                                  capabilities=["embedding"], host="gpu0"), hosts=hosts)
    return llm, emb


@pytest.mark.parametrize("slowdown, factor", [(None, 1.195), (0.4, 1.4), (0.0, 1.0)])
def test_a_gpu_llm_step_slows_while_the_embedding_model_beside_it_works(slowdown, factor):
    alone, _ = _gpu_pair(slowdown)
    busy, emb = _gpu_pair(slowdown)
    emb.submit("b", 512, 400_000, 0.0)  # a long pass: busy through the decode steps
    emb.advance(0.0)
    for llm in (alone, busy):
        llm.submit("r", 64, 4, 2, 0.0)
    t_alone, t_busy = alone.next_event_time(), busy.next_event_time()
    assert t_busy == pytest.approx(t_alone * factor)


def test_cohost_slowdown_out_of_range_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="cohost_slowdown"):
        BackendSpec(name="x", kind="sim", preset="7b-h100", capabilities=["chat"],
                    cohost_slowdown=-0.1)
