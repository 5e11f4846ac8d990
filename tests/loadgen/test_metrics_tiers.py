"""TPOT SLOs, and attainment per class, tier and priority, on hand-made records."""

from __future__ import annotations

import pytest

from loadgen import metrics as m
from vocab import Request


def R(**kw) -> Request:
    """A finished record: completed unless told, an embedding of one text."""
    kw.setdefault("status", "completed")
    if kw.get("cls") == "embedding":
        kw.setdefault("n_texts", 1)
    return Request(**kw)


def chat(i, t, *, ttft=0.1, tpot=0.01, out=11, **kw):
    """A completed chat request: first token `ttft` s after t, then `out - 1` tokens every `tpot` s."""
    base = dict(id=f"r{i}", cls="chat", client_id="c0", t_intended=t, t_sent=t,
                t_first_token=t + ttft, t_done=t + ttft + tpot * (out - 1), output_tokens=out)
    base.update(kw)
    return R(**base)


def emb(i, t, e2e=0.05, **kw):
    base = dict(id=f"e{i}", cls="embedding", t_intended=t, t_sent=t, t_first_token=t + e2e,
                t_done=t + e2e, prompt_tokens=64, n_texts=1)
    base.update(kw)
    return R(**base)


# ---------------------------------------------------------------- TPOT


def test_tpot_within_the_bound_meets_it_and_over_it_misses():
    # TPOT = (E2E − TTFT)/(out − 1) = 0.01 s = 10 ms
    assert chat(0, 0, slo_tpot_ms=10.5).slo_met()
    assert not chat(0, 0, slo_tpot_ms=9.5).slo_met()
    assert m.tpot(chat(0, 0)) == pytest.approx(0.010)


def test_tpot_miss_alone_makes_the_request_a_miss():
    r = chat(0, 0, slo_ttft_ms=1000, slo_e2e_ms=10_000, slo_tpot_ms=5)
    assert not r.slo_met()
    from store.schema import request_row
    assert request_row(r)["slo_met"] is False


def test_one_output_token_meets_a_tpot_bound_trivially():
    assert chat(0, 0, out=1, slo_tpot_ms=0.001).slo_met()


def test_tpot_counts_after_the_first_token_not_from_intended_send():
    # a late first token (TTFT 5 s) does not inflate TPOT
    assert chat(0, 0, ttft=5.0, tpot=0.01, slo_tpot_ms=10.5).slo_met()


def test_failed_request_with_tpot_slo_is_a_miss():
    assert not chat(0, 0, status="failed", reason="timeout: x", slo_tpot_ms=1e6).slo_met()


def test_request_carries_tier_and_tpot_to_the_store():
    from store.schema import request_row

    r = Request(id="r1", t_intended=1.0, cls="chat", client_id="c0", priority=1,
                prompt_tokens=5, output_tokens=3, slo_ttft_ms=300, model="m", slo_tpot_ms=40.0,
                slo_tier="tight")
    assert (r.slo_tpot_ms, r.slo_tier) == (40.0, "tight")
    d = request_row(r)
    assert (d["slo_tpot_ms"], d["slo_tier"]) == (40.0, "tight")


# ---------------------------------------------------------------- groups


def _records():
    """10 tight chat (prio 0; 8 meet TTFT 300 ms, 1 too slow, 1 rejected queue_full),
    10 loose chat (prio 3; all meet 3 s TTFT but 2 break their TPOT 20 ms, 1 of
    those is shed instead), 5 embeddings (4 meet, 1 rejected slo_infeasible)."""
    recs = []
    for i in range(10):
        kw = dict(slo_tier="tight", slo_ttft_ms=300, priority=0)
        if i == 8:
            recs.append(chat(i, 1 + i * 0.1, ttft=0.5, **kw))
        elif i == 9:
            recs.append(chat(i, 1 + i * 0.1, status="rejected", reason="queue_full: full",
                             t_first_token=None, t_done=None, **kw))
        else:
            recs.append(chat(i, 1 + i * 0.1, **kw))
    for i in range(10, 20):
        kw = dict(slo_tier="loose", slo_ttft_ms=3000, slo_tpot_ms=20, priority=3)
        if i == 10:
            recs.append(chat(i, 2 + i * 0.1, tpot=0.05, **kw))
        elif i == 11:
            recs.append(chat(i, 2 + i * 0.1, status="rejected", reason="slo_shed: late",
                             t_first_token=None, t_done=None, **kw))
        else:
            recs.append(chat(i, 2 + i * 0.1, **kw))
    for i in range(5):
        if i == 0:
            recs.append(emb(i, 3 + i * 0.1, status="rejected", reason="slo_infeasible",
                            t_first_token=None, t_done=None, slo_e2e_ms=100))
        else:
            recs.append(emb(i, 3 + i * 0.1, slo_e2e_ms=100))
    return recs


@pytest.fixture(scope="module")
def summaries():
    return m.aggregate(_records(), warmup_s=0, duration_s=10, target_rate_rps=None).summaries


def test_attainment_per_class_counts_rejections_as_misses(summaries):
    assert summaries["chat"]["slo_attainment"] == pytest.approx(16 / 20)
    assert summaries["embedding"]["slo_attainment"] == pytest.approx(4 / 5)
    assert summaries["all"]["slo_attainment"] == pytest.approx(20 / 25)  # the pooled figure stays
    assert summaries["chat"]["goodput_rps"] == pytest.approx(16 / 10)


def test_attainment_and_goodput_per_tier(summaries):
    tiers = summaries["chat"]["extra"]["slo_tiers"]
    assert set(tiers) == {"tight", "loose"}
    assert tiers["tight"] == {"issued": 10, "met": 8, "slo_attainment": pytest.approx(0.8),
                              "goodput_rps": pytest.approx(0.8)}
    assert tiers["loose"]["issued"] == 10 and tiers["loose"]["met"] == 8
    assert summaries["embedding"]["extra"]["slo_tiers"] == {}
    assert set(summaries["all"]["extra"]["slo_tiers"]) == {"chat.tight", "chat.loose"}
    assert summaries["all"]["extra"]["slo_tiers"]["chat.tight"]["slo_attainment"] == pytest.approx(0.8)


def test_attainment_per_priority_for_llm_classes_only(summaries):
    prios = summaries["chat"]["extra"]["slo_priorities"]
    assert set(prios) == {"0", "3"}
    assert prios["0"]["slo_attainment"] == pytest.approx(0.8)
    assert summaries["embedding"]["extra"]["slo_priorities"] == {}
    # `all` pools the LLM classes: the embeddings (priority 2) are not in it
    assert set(summaries["all"]["extra"]["slo_priorities"]) == {"0", "3"}


def test_rejections_and_sheds_per_reason(summaries):
    chat_x, emb_x, all_x = (summaries[c]["extra"] for c in ("chat", "embedding", "all"))
    assert chat_x["rejected_by_reason"] == {"queue_full": 1, "slo_shed": 1}
    assert chat_x["shed"] == 1 and chat_x["failed_by_reason"] == {}
    assert emb_x["rejected_by_reason"] == {"slo_infeasible": 1} and emb_x["shed"] == 0
    assert all_x["rejected_by_reason"] == {"queue_full": 1, "slo_infeasible": 1, "slo_shed": 1}
    assert summaries["all"]["rejected"] == 3 and all_x["rejected_or_shed"] == 3


def test_requests_outside_the_window_are_not_in_the_groups():
    recs = [chat(0, 0.5, slo_tier="tight", slo_ttft_ms=1), chat(1, 1.5, slo_tier="tight")]
    s = m.aggregate(recs, warmup_s=1, duration_s=10, target_rate_rps=None).summaries
    assert s["chat"]["extra"]["slo_tiers"]["tight"]["issued"] == 1
    assert s["chat"]["extra"]["slo_tiers"]["tight"]["slo_attainment"] == 1.0


@pytest.mark.parametrize("reason, kind", [
    ("queue_full: full", "queue_full"), ("slo_shed", "slo_shed"), ("chat: slo_shed", "slo_shed"),
    ("stage_embed: queue_full: x", "queue_full"), ("", "unknown"), ("embed", "embed"),
])
def test_reason_kind_looks_past_pipeline_stage_prefixes(reason, kind):
    assert m.reason_kind(reason) == kind


def test_failed_pipeline_stage_shed_counts_as_shed():
    r = R(id="p0", cls="pipeline", t_intended=1, status="failed", reason="chat: slo_shed")
    s = m.aggregate([r], warmup_s=0, duration_s=10, target_rate_rps=None).summaries["pipeline"]
    assert s["extra"]["shed"] == 1 and s["extra"]["failed_by_reason"] == {"slo_shed": 1}
    assert s["extra"]["rejected_or_shed"] == 1 and s["rejected"] == 0
