"""The front-end latency delays its own request and never the engine's steps."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.sim import SimLLMEngine
from engine.sim.cost import LLMCost
from engine.sim.factory import make_engine
from engine.sim.frontend import Frontend
from engine.sim.presets import get_llm_preset, save_preset
from engine.spec import BackendSpec

COST = LLMCost(beta0=2e-3, beta1=0.0, beta2=0.0, frontend=10e-3)


def _run(eng, subs):
    """Submit (t, id, prompt, output) in time order; return {id: (first_token, done)}."""
    out: dict = {}
    pending = sorted(subs)

    def drain(upto):
        while (te := eng.next_event_time()) is not None and te <= upto:
            for ev in eng.advance(te):
                if ev.kind in ("first_token", "done"):
                    out.setdefault(ev.req_id, {})[ev.kind] = ev.t

    for t, rid, p, o in pending:
        drain(t)
        eng.submit(rid, p, o, 2, t)
    drain(float("inf"))
    return out


def test_frontend_shifts_the_request_not_the_engine():
    preset = replace(get_llm_preset("tiny-cpu"), cost=COST)
    ev = _run(Frontend(SimLLMEngine(preset), COST.frontend),
              [(0.0, "a", 8, 11), (0.005, "b", 8, 2)])
    # a: seen at 10 ms, prefill step 2 ms -> first token 12 ms, 10 more steps of 2 ms
    assert ev["a"]["first_token"] == pytest.approx(0.012)
    assert ev["a"]["done"] == pytest.approx(0.032)
    # b reaches the engine at 15 ms, mid-step; its prefill joins the next step (16-18 ms)
    # and a's steps stay 2 ms long: the front end occupied nothing.
    assert ev["b"]["first_token"] == pytest.approx(0.018)


def test_abort_while_in_the_front_end_never_reaches_the_engine():
    preset = replace(get_llm_preset("tiny-cpu"), cost=COST)
    eng = Frontend(SimLLMEngine(preset), COST.frontend)
    eng.submit("a", 8, 4, 2, 0.0)
    assert eng.stats().waiting == 1
    eng.abort("a", 0.001)
    assert _run(eng, []) == {} and eng.stats().in_flight == 0


def test_a_preset_with_a_front_end_gets_one(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGETUI_PRESETS_DIR", str(tmp_path))
    save_preset(replace(get_llm_preset("tiny-cpu"), name="tiny-fe", cost=COST), tmp_path)
    spec = BackendSpec(name="x", kind="sim", preset="tiny-fe", capabilities=["chat"])
    assert isinstance(make_engine(spec), Frontend)
    assert isinstance(make_engine(spec.model_copy(update={"preset": "tiny-cpu"})), SimLLMEngine)
    with pytest.raises(ValueError, match="frontend: must be >= 0"):
        Frontend(SimLLMEngine(get_llm_preset("tiny-cpu")), -1.0)


def test_measured_spread_gives_each_request_its_own_delay_reproducibly():
    q = [0.005 + 0.001 * i for i in range(21)]  # uniform 5..25 ms
    preset = replace(get_llm_preset("tiny-cpu"), cost=COST)

    def first_tokens(seed):
        eng = Frontend(SimLLMEngine(preset), 0.015, q, seed=seed)
        ev = _run(eng, [(float(i), i, 8, 1) for i in range(200)])  # lone requests, 1 s apart
        return [ev[i]["first_token"] - i - COST.beta0 for i in range(200)]

    d = first_tokens(1)
    assert d == first_tokens(1) and d != first_tokens(2)
    assert min(d) >= 0.005 - 1e-9 and max(d) <= 0.025 + 1e-9
    assert sorted(d)[100] == pytest.approx(0.015, abs=0.002)
    with pytest.raises(ValueError, match="ascending"):
        Frontend(SimLLMEngine(preset), 0.01, [0.02, 0.01])


def test_completion_lateness_holds_back_done_but_no_engine_step():
    """A drawn lateness of exactly 30 ms (quantiles all 30 ms): each done arrives 30 ms
    after its last step and no later — a held back does not slow b, decoding beside it."""
    preset = replace(get_llm_preset("tiny-cpu"), cost=COST)
    plain = _run(Frontend(SimLLMEngine(preset), COST.frontend),
                 [(0.0, "a", 8, 3), (0.0, "b", 8, 11)])
    eng = Frontend(SimLLMEngine(preset), COST.frontend, completion_quantiles=[0.03, 0.03])
    late = _run(eng, [(0.0, "a", 8, 3), (0.0, "b", 8, 11)])
    for r in ("a", "b"):
        assert late[r]["first_token"] == pytest.approx(plain[r]["first_token"])
        assert late[r]["done"] == pytest.approx(plain[r]["done"] + 0.03)
    assert eng.stats().in_flight == 0


def test_a_request_aborted_while_held_back_reports_nothing():
    preset = replace(get_llm_preset("tiny-cpu"), cost=COST)
    eng = Frontend(SimLLMEngine(preset), 0.0, completion_quantiles=[0.5, 0.5])
    eng.submit("a", 8, 2, 2, 0.0)
    seen = []
    while (te := eng.next_event_time()) is not None and te < 0.1:
        seen += [e.kind for e in eng.advance(te)]
    assert "done" not in seen and eng.stats().running == 1  # finished, held back
    eng.abort("a", 0.1)
    assert [e.kind for e in _drain(eng)] == [] and eng.stats().in_flight == 0
    with pytest.raises(ValueError, match="completion_quantiles: must be >= 0"):
        Frontend(SimLLMEngine(preset), 0.0, completion_quantiles=[-1.0, 0.0])


def _drain(eng):
    out = []
    while (te := eng.next_event_time()) is not None:
        out += eng.advance(te)
    return out


def test_the_delay_stretches_with_the_sequences_streaming_when_a_request_comes():
    """a and b decode from 12 ms on; c comes at 20 ms, while they stream: its 10 ms front
    end takes 10 × (1 + 2·0.1) = 12 ms, where d, alone at 1 s, takes its plain 10 ms."""
    preset = replace(get_llm_preset("tiny-cpu"), cost=COST)
    subs = [(0.0, "a", 8, 50), (0.0, "b", 8, 50), (0.02, "c", 8, 2), (1.0, "d", 8, 2)]
    plain = _run(Frontend(SimLLMEngine(preset), COST.frontend), subs)
    ev = _run(Frontend(SimLLMEngine(preset), COST.frontend, per_seq=0.1), subs)
    assert plain["c"]["first_token"] - 0.02 == pytest.approx(0.012, abs=0.0021)
    assert ev["c"]["first_token"] - plain["c"]["first_token"] == pytest.approx(0.002, abs=0.0021)
    assert ev["c"]["first_token"] > plain["c"]["first_token"]
    assert ev["d"]["first_token"] == pytest.approx(plain["d"]["first_token"])
    with pytest.raises(ValueError, match="frontend_per_seq"):
        Frontend(SimLLMEngine(preset), 0.01, per_seq=-0.1)


def test_a_prefix_passes_through_the_front_end():
    from engine.sim.cost import LLMCost, LLMPreset
    from engine.sim.frontend import Frontend
    from engine.sim.llm import SimLLMEngine

    p = LLMPreset(name="t", model="m", device_kind="X", device="gpu",
                  cost=LLMCost(5e-3, 20e-6, 6e-6, 0.0, 0.0), kv_capacity_tokens=16 * 256)
    eng = Frontend(SimLLMEngine(p), 0.01, (), 0)
    for i, t in enumerate((0.0, 1.0)):
        eng.submit(i, 600, 2, 2, t, prefix=("sys", 512))
        while (te := eng.next_event_time()) is not None and (i == 1 or te < 1.0):
            eng.advance(te)
    assert eng.prefix_stats()["hits"] == 512
