"""Agent metrics on small hand-checked cases, and the shipped dataset's provenance."""

from __future__ import annotations

import pytest

from sagetui.agents import dataset, metrics
from sagetui.agents.strategies import BM25Retriever, plan, should_call


def test_mrr_of_a_known_ranking():
    # gold at rank 1, 3, absent -> (1 + 1/3 + 0) / 3
    cases = [(["a", "b"], "a"), (["x", "y", "g"], "g"), (["p", "q"], "z")]
    rr = [metrics.reciprocal_rank(r, g) for r, g in cases]
    assert rr == [1.0, pytest.approx(1 / 3), 0.0]
    assert sum(rr) / 3 == pytest.approx((1 + 1 / 3) / 3)


def test_top_k():
    assert metrics.top_k(["a", "b", "c"], "c", 3)
    assert not metrics.top_k(["a", "b", "c"], "c", 2)


def test_plan_metrics():
    gold = ["a", "b", "c"]
    assert metrics.step_accuracy(["a", "x", "c"], gold) == pytest.approx(2 / 3)
    assert metrics.plan_success(["a", "b", "x", "c"], gold)      # one extra step is tolerated
    assert not metrics.plan_success(["a", "c", "b"], gold)       # order matters
    assert not metrics.plan_success(["a", "x", "b", "y", "c"], gold)  # two extras are not
    assert metrics.lcs(["a", "c", "b"], gold) == 2


def test_binary_scores_by_hand():
    pred = [True, True, False, False, True]
    act = [True, False, True, False, True]
    s = metrics.binary_scores(pred, act)  # tp=2 fp=1 fn=1 tn=1
    assert s["accuracy"] == pytest.approx(3 / 5)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)


def test_shipped_dataset_is_what_the_templates_generate():
    assert dataset.load() == {k: [dict(r) for r in v] for k, v in dataset.generate().items()}


def test_dataset_sizes_and_integrity():
    d = dataset.load()
    names = {t["name"] for t in d["tools"]}
    assert len(names) >= 100
    assert len(d["selection"]) >= 300 and all(i["tool"] in names for i in d["selection"])
    assert len(d["planning"]) >= 100
    assert all(2 <= len(p["steps"]) <= 4 and set(p["steps"]) <= names for p in d["planning"])
    assert len(d["timing"]) >= 100
    assert {t["call_tool"] for t in d["timing"]} == {True, False}


def test_planner_segments_tasks_into_their_steps():
    d = dataset.load()
    bm25 = BM25Retriever(d["tools"])
    for item in d["planning"][:20]:
        assert len(plan(bm25, item["task"])) == len(item["steps"])


def test_bm25_finds_a_tool_named_in_the_query_and_ignores_small_talk():
    bm25 = BM25Retriever(dataset.load()["tools"])
    ranking, _ = bm25.rank("search my email messages")
    assert ranking[0] == "email.search"
    assert not should_call(bm25, "Thanks, that's all for now!")
