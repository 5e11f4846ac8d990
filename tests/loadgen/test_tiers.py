"""SLO tiers and the TPOT SLO in the workload: validation, draws, and the old schedules kept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from loadgen.schedule import Source, build_schedule
from loadgen.spec import WorkloadSpec

FIXTURE = Path(__file__).parent / "fixtures" / "schedule_before_tiers.json"
TIERS = [{"name": "tight", "share": 0.3, "ttft_ms": 300},
         {"name": "loose", "share": 0.7, "ttft_ms": 3000, "tpot_ms": 80}]


_RECORDED = ("id", "t", "cls", "client_id", "priority", "prompt_tokens", "output_tokens",
             "n_texts", "text_tokens", "slo_ttft_ms", "slo_e2e_ms", "model", "parent_id")


def _asdict(reqs) -> list[dict]:
    """The recorded fields, in the recorded units: the schedule then named the intended
    time `t`, and counted an embedding's text tokens per text."""
    out = []
    for r in reqs:
        d = {k: getattr(r, k) for k in _RECORDED if k not in ("t", "text_tokens")}
        d["t"] = r.t_intended
        d["text_tokens"] = r.text_tokens // r.n_texts if r.cls == "embedding" else r.text_tokens
        out.append({k: d[k] for k in _RECORDED})
    return out


def _closed_requests(spec: WorkloadSpec) -> list:
    """Four rounds of a closed loop in which every request takes 0.3 s (as recorded)."""
    src = Source(spec)
    reqs = src.initial()
    out = list(reqs)
    for _ in range(4):
        reqs = [n for r in reqs for n in src.on_done(r, r.t_intended + 0.3)]
        out += reqs
    return out


@pytest.mark.parametrize("name", ["poisson_mix", "adversarial", "closed"])
def test_without_tiers_the_schedule_is_what_it_was_before_tiers(name):
    """Recorded from the code before tiers existed: same seed, same requests, field by field."""
    case = json.loads(FIXTURE.read_text())[name]
    spec = WorkloadSpec(**case["spec"])
    reqs = _closed_requests(spec) if spec.clients else build_schedule(spec)
    assert _asdict(reqs) == case["requests"]
    assert all(r.slo_tier == "" and r.slo_tpot_ms is None for r in reqs)
    assert all(r.prefix_id == "" and r.prefix_tokens == 0 for r in reqs)


def test_adding_tiers_moves_nothing_but_the_bounds():
    """Tiers draw from their own stream: times, classes, sizes and priorities stay put."""
    base = dict(rate=200, duration_s=5, seed=4, mix={"chat": 0.7, "embedding": 0.3},
                priorities={"chat": {"weights": [1, 1, 1, 1, 1]}}, slos={"chat": {"e2e_ms": 9000}})
    plain = build_schedule(WorkloadSpec(**base))
    tiered = build_schedule(WorkloadSpec(**{**base, "slos": {"chat": {"e2e_ms": 9000, "tiers": TIERS}}}))
    keep = ("id", "t_intended", "cls", "client_id", "priority", "prompt_tokens", "output_tokens",
            "n_texts")
    assert [[getattr(r, k) for k in keep] for r in plain] == [[getattr(r, k) for k in keep] for r in tiered]


def test_a_30_70_split_draws_about_30_percent_tight():
    spec = WorkloadSpec(rate=1000, duration_s=10, seed=2, slos={"chat": {"e2e_ms": 15000, "tiers": TIERS}})
    reqs = build_schedule(spec)
    assert len(reqs) > 9000
    tight = np.mean([r.slo_tier == "tight" for r in reqs])
    # 3 standard deviations of a binomial proportion over ~10,000 draws is ~0.014
    assert tight == pytest.approx(0.3, abs=0.015)
    assert {r.slo_tier for r in reqs} == {"tight", "loose"}


def test_tier_bounds_override_the_class_and_fall_back_to_it():
    spec = WorkloadSpec(rate=200, duration_s=2, slos={"chat": {"ttft_ms": 1000, "tpot_ms": 50,
                                                               "e2e_ms": 15000, "tiers": TIERS}})
    by_tier = {r.slo_tier: r for r in build_schedule(spec)}
    t, lo = by_tier["tight"], by_tier["loose"]
    assert (t.slo_ttft_ms, t.slo_tpot_ms, t.slo_e2e_ms) == (300, 50, 15000)
    assert (lo.slo_ttft_ms, lo.slo_tpot_ms, lo.slo_e2e_ms) == (3000, 80, 15000)


def test_class_level_tpot_reaches_llm_requests_only():
    spec = WorkloadSpec(rate=200, duration_s=2, mix={"chat": 1, "embedding": 1},
                        slos={"chat": {"tpot_ms": 40}, "embedding": {"e2e_ms": 100}})
    reqs = build_schedule(spec)
    assert {r.slo_tpot_ms for r in reqs if r.cls == "chat"} == {40}
    assert {r.slo_tpot_ms for r in reqs if r.cls == "embedding"} == {None}


def test_embedding_tiers_carry_only_e2e():
    tiers = [{"name": "gold", "share": 0.5, "e2e_ms": 50}, {"name": "bronze", "share": 0.5}]
    spec = WorkloadSpec(rate=200, duration_s=2, mix={"embedding": 1},
                        slos={"embedding": {"e2e_ms": 500, "tiers": tiers}})
    got = {(r.slo_tier, r.slo_ttft_ms, r.slo_tpot_ms, r.slo_e2e_ms) for r in build_schedule(spec)}
    assert got == {("gold", None, None, 50), ("bronze", None, None, 500)}


def test_closed_loop_tiers_do_not_depend_on_completion_order():
    spec = WorkloadSpec(duration_s=100, clients={"n": 2}, slos={"chat": {"tiers": TIERS}})

    def client0_tiers(order: list[int]) -> list[str]:
        src = Source(spec)
        first = src.initial()
        out = [first[0].slo_tier]
        reqs = [first[i] for i in order]
        for _ in range(20):
            reqs = [n for r in reqs for n in src.on_done(r, r.t_intended + 1)]
            out += [r.slo_tier for r in reqs if r.client_id == "c000"]
        return out

    assert client0_tiers([0, 1]) == client0_tiers([1, 0])
    assert set(client0_tiers([0, 1])) == {"tight", "loose"}


def _err(**kw) -> str:
    with pytest.raises(ValidationError) as e:
        WorkloadSpec(**kw)
    return str(e.value)


def test_shares_not_summing_to_one_are_refused():
    msg = _err(slos={"chat": {"tiers": [{"name": "a", "share": 0.3}, {"name": "b", "share": 0.6}]}})
    assert "slos.chat.tiers" in msg and "sum to 1" in msg and "0.9" in msg


def test_shares_within_1e6_of_one_are_accepted():
    WorkloadSpec(slos={"chat": {"tiers": [{"name": "a", "share": 1 / 3}, {"name": "b", "share": 1 / 3},
                                          {"name": "c", "share": 0.3333334}]}})


@pytest.mark.parametrize("share", [0, -0.1, 1.5])
def test_share_outside_0_1_is_refused(share):
    assert "slos.chat.tiers.0.share" in _err(slos={"chat": {"tiers": [{"name": "a", "share": share}]}})


@pytest.mark.parametrize("bound", ["ttft_ms", "tpot_ms", "e2e_ms"])
@pytest.mark.parametrize("value", [0, -5])
def test_zero_or_negative_tier_bound_names_the_field(bound, value):
    tiers = [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5, bound: value}]
    assert f"slos.chat.tiers.1.{bound}" in _err(slos={"chat": {"tiers": tiers}})


def test_zero_class_tpot_is_refused():
    assert "slos.chat.tpot_ms" in _err(slos={"chat": {"tpot_ms": 0}})


def test_duplicate_tier_names_are_refused():
    tiers = [{"name": "a", "share": 0.5}, {"name": "a", "share": 0.5}]
    msg = _err(slos={"chat": {"tiers": tiers}})
    assert "slos.chat.tiers" in msg and "duplicate tier name 'a'" in msg


@pytest.mark.parametrize("name", ["", "has space", "dot.ted"])
def test_tier_names_must_be_plain_words(name):
    assert "slos.chat.tiers.0.name" in _err(slos={"chat": {"tiers": [{"name": name, "share": 1}]}})


@pytest.mark.parametrize("slo", [{"tpot_ms": 5}, {"tiers": [{"name": "a", "share": 1, "ttft_ms": 5}]}])
def test_embedding_refuses_ttft_and_tpot_in_tiers_too(slo):
    assert "embedding has no TTFT or TPOT" in _err(slos={"embedding": slo})
