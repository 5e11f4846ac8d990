"""A backend's kept predictions and precomputed KV room answer exactly as if
computed afresh, whatever the LLM work on it went through."""

from __future__ import annotations

import random

import pytest
from sched_helpers import emb, llm

from engine.spec import BackendSpec
from scheduler.backends import BackendState, LinearEstimator
from scheduler.predict import EmbedModel, llm_tpot


def fresh_ttft(b: BackendState, prompt: int) -> float:
    b._ttft_prompt = -1  # forget the kept answer: the cost model is asked again
    return b.model_ttft(prompt)


def fits_by_definition(b: BackendState, need: int) -> bool:
    if b.n_llm >= b.max_seqs:
        return False
    return b.kv_cap is None or b.kv_reserved + need <= b.kv_cap or b.n_llm == 0


def live_vllm() -> BackendSpec:
    """A live engine named by URL only: its KV capacity is not known."""
    return BackendSpec(name="v", kind="vllm", url="http://127.0.0.1:1", capabilities=["chat"],
                       max_concurrency=64)


@pytest.mark.parametrize("spec", [llm("g", conc=64), llm("g", conc=64, preset="codellama-34b-h100"),
                                  llm("g", conc=64, preset="tiny-cpu",
                                      extra_args=["--max-num-seqs", "3"]),
                                  live_vllm()], ids=["7b", "34b", "tiny-3-seqs", "live"])
def test_kept_predictions_and_room_follow_every_change(spec):
    b = BackendState(spec, 0, 0.2)
    assert (b.kv_cap is None) == (spec.kind == "vllm")
    rng = random.Random(5)
    here: list[tuple[int, int, bool]] = []  # (prompt, output, started) dispatched here
    last_prompt = 64
    for _ in range(400):
        op = rng.random()
        if op < 0.45 or not here:
            p, o = rng.randint(1, 6000), rng.randint(1, 4000)
            b.llm_dispatched(p, o)
            here.append((p, o, False))
        elif op < 0.7:
            i = rng.randrange(len(here))
            p, o, started = here[i]
            if not started:
                b.llm_first_token(p)
                here[i] = (p, o, True)
        else:
            p, o, started = here.pop(rng.randrange(len(here)))
            b.llm_released(p, o, started)
        # the prompt asked before this change first: a kept answer it left is stale
        for prompt in (last_prompt, rng.randint(1, 512)):
            kept = b.model_ttft(prompt)
            assert kept == fresh_ttft(b, prompt)
            assert b.model_ttft(prompt) == kept  # asked again: the kept answer
            last_prompt = prompt
        for extra in (0, 1):  # extra 0 after a dispatch asks what extra 1 asked before
            assert b.model_tpot(extra) == llm_tpot(b.model, b.n_llm + extra, b.kv_read)
        needs = [1, 100, 5000, 40000, 300000]
        if b.kv_cap is not None:
            needs += [b.kv_cap - b.kv_reserved, b.kv_cap - b.kv_reserved + 1]
        for need in needs:
            assert b.fits(need) == fits_by_definition(b, need)


def reference_predict(e: LinearEstimator, x: float) -> float:
    """The least-squares prediction worked out from the sums, as per prediction."""
    if e.s0 == 0.0:
        return 0.0 if e.prior is None else e.prior.a + e.prior.b * x
    mx, my = e.sx / e.s0, e.sy / e.s0
    var = e.sxx / e.s0 - mx * mx
    if var <= 1e-9 * (1.0 + mx * mx):
        return my * (x / mx) if mx > 0 else my
    slope = max((e.sxy / e.s0 - mx * my) / var, 0.0)
    return max(my + slope * (x - mx), 0.0)


@pytest.mark.parametrize("prior", [None, EmbedModel(2e-3, 1e-6)])
def test_embedding_fit_once_per_observation_predicts_as_the_sums_say(prior):
    e = LinearEstimator(0.2, prior)
    rng = random.Random(9)
    xs = [1, 64, 500, 2048]
    assert [e.predict(x) for x in xs] == [reference_predict(e, x) for x in xs]
    for i in range(60):
        # a constant size first (no spread: the ratio branch), then a falling line
        # (a negative slope is floored at 0), then noise around a rising one
        x = 128.0 if i < 5 else rng.uniform(16, 1024)
        y = 0.004 if i < 5 else (0.5 - 4e-4 * x if i < 20 else 0.003 + 2e-5 * x * rng.uniform(0.5, 1.5))
        e.observe(x, y)
        assert [e.predict(q) for q in xs] == [reference_predict(e, q) for q in xs]


def test_an_embedding_backend_fits_whatever_its_slots_allow():
    b = BackendState(emb("c"), 0, 0.2)
    assert b.fits(10**9)
