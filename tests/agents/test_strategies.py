"""Retrieval, tuning, the LLM's request and answer parsing, the template smoke set."""

from __future__ import annotations

import numpy as np
import pytest

from sagetui.agents import dataset, llm
from sagetui.agents.items import Item, Tool, split_identifier, template_dataset
from sagetui.agents.retrieval import (
    Index,
    balanced_accuracy,
    best_threshold,
    clauses,
    ranking,
    relevance_score,
    timing_score,
    tune,
)
from sagetui.agents.runner import DatasetError, parse_config

TOOLS = [Tool("weather.get_forecast", "Weather forecast for a city",
              (("city", "the city"),), {"type": "dict", "required": ["city"],
                                        "properties": {"city": {"type": "string"}}}),
         Tool("calendar.create_event", "Create a calendar event", (("title", ""),),
              {"type": "dict", "properties": {"title": {"type": "string"},
                                              "hours": {"type": "float"}}})]


def test_identifiers_split_into_words():
    assert split_identifier("ChaDri.change_drink") == ["cha", "dri", "change", "drink"]
    assert split_identifier("getHTTPResponse") == ["get", "http", "response"]


def test_bm25_ranks_the_named_tool_first():
    index = Index(TOOLS)
    s = index.bm25_scores("what is the weather forecast in Oslo", index.ids(TOOLS))
    assert ranking(TOOLS, s)[0] == "weather.get_forecast"


def test_clauses_cut_at_sentences_and_connectives():
    assert clauses("Find the weather in Paris. Also book a table for two") == [
        "Find the weather in Paris", "book a table for two"]
    assert clauses("hi") == ["hi"]


def test_best_threshold_maximises_balanced_accuracy():
    cut, acc = best_threshold([0.1, 0.2, 0.8, 0.9], [False, False, True, True])
    assert 0.2 < cut < 0.8 and acc == 1.0


def test_tune_picks_the_weight_that_ranks_dev_best():
    item = Item("x", "selection", "q", TOOLS, ["calendar.create_event"])
    # bm25 prefers the wrong tool, embeddings the right one: alpha goes to 0
    sel = [(item, np.array([5.0, 1.0]), np.array([0.1, 0.9]))] * 3
    tim = [(Item("t1", "timing", "q", TOOLS, call=True), np.array([5.0, 1.0]),
            np.array([0.9, 0.1])),
           (Item("t2", "timing", "q", TOOLS, call=False), np.array([0.5, 0.1]),
            np.array([0.2, 0.1]))]
    t = tune(sel, tim)
    assert t.alpha < 0.5 and t.dev_top1_by_alpha["0.00"] == 100.0
    assert t.dev_timing_balanced_acc == {"bm25": 100.0, "embedding": 100.0, "fusion": 100.0}


def _timing_set(n: int, seed: int, cos_matters: bool) -> list[tuple[Item, np.ndarray, np.ndarray]]:
    """Timing items whose best scores are (b, c), with log1p(b) uniform on [0, 1]: a call
    is needed when log1p(b) + c > 1 (`cos_matters`), else when log1p(b) > 0.5."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        u, c = rng.uniform(0, 1), rng.uniform(0, 1)
        call = u + c > 1 if cos_matters else u > 0.5
        b = float(np.expm1(u))
        out.append((Item(f"t{k}", "timing", "q", TOOLS, call=bool(call)),
                    np.array([b, 0.5 * b]), np.array([c, 0.5 * c])))
    return out


def _balanced(t, items, strategy: str) -> float:
    return balanced_accuracy([timing_score(strategy, b, c, t) >= t.thresholds[strategy]
                              for _, b, c in items], [it.call for it, _, _ in items])


def test_fusion_decides_relevance_from_both_parts_when_both_help_on_dev():
    t = tune([], _timing_set(300, 1, cos_matters=True))
    assert t.relevance["features"] == ["log1p_bm25_max", "cos_max"]
    assert 30 <= t.relevance["angle_deg"] <= 60  # both parts weigh about equally
    test = _timing_set(300, 2, cos_matters=True)
    acc = {s: _balanced(t, test, s) for s in ("bm25", "embedding", "fusion")}
    assert acc["fusion"] > 0.93 and acc["fusion"] > max(acc["bm25"], acc["embedding"]) + 0.1


def test_fusion_leans_on_bm25_alone_when_the_cosine_adds_nothing_held_out():
    t = tune([], _timing_set(300, 3, cos_matters=False))
    assert t.relevance["angle_deg"] <= 10
    cv = t.relevance["cv_balanced_acc_by_angle"]
    assert cv["0"] > cv["90"] + 20  # the cosine alone is a coin toss here
    test = _timing_set(300, 4, cos_matters=False)
    assert _balanced(t, test, "fusion") >= _balanced(t, test, "bm25") - 0.02


def test_relevance_model_must_be_fitted_before_timing():
    with pytest.raises(RuntimeError, match="relevance model"):
        relevance_score({}, np.zeros(2))


def test_best_threshold_counts_like_the_definition():
    rng = np.random.default_rng(0)
    values = list(rng.integers(0, 6, 40).astype(float)) + [-np.inf]
    labels = [bool(x) for x in rng.integers(0, 2, 41)]
    cut, acc = best_threshold(values, labels)
    assert acc == pytest.approx(balanced_accuracy([v >= cut for v in values], labels))
    for other in np.arange(-1.5, 7, 0.5):  # no cut does better, none lower does as well
        a = balanced_accuracy([v >= other for v in values], labels)
        assert a <= acc + 1e-12 and (other >= cut or a < acc - 1e-12)


def test_llm_body_constrains_names_and_arguments():
    item = Item("x", "selection", "Weather in Oslo?", TOOLS, ["weather.get_forecast"])
    b = llm.body("smollm2", item, TOOLS, max_tokens=64, structured=True)
    assert b["messages"][0]["role"] == "system" and "Oslo" in b["messages"][1]["content"]
    assert "weather.get_forecast(city: string)" in b["messages"][1]["content"]
    one = b["response_format"]["json_schema"]["schema"]["properties"]["calls"]["items"]["anyOf"]
    assert [o["properties"]["name"]["const"] for o in one] == [t.name for t in TOOLS]
    assert one[1]["properties"]["arguments"]["properties"]["hours"] == {"type": "number"}
    assert "response_format" not in llm.body("m", item, TOOLS, max_tokens=8, structured=False)


def test_llm_answers_parse_or_fall_back():
    calls, ok = llm.parse('{"calls": [{"name": "a", "arguments": {"x": 1}}]}')
    assert ok and calls == [{"name": "a", "arguments": {"x": 1}}]
    assert llm.parse('{"calls": []}') == ([], True)
    calls, ok = llm.parse('Sure! {"calls": [{"name": "a", "arguments": {"x": ')  # cut short
    assert not ok and calls == [{"name": "a", "arguments": {}}]
    assert llm.parse("no idea") == ([], False)


def test_config_errors_name_the_field():
    with pytest.raises(DatasetError, match=r"f.toml: agents.strategies: \['react'\]"):
        parse_config({"strategies": ["react"]}, "f.toml")
    with pytest.raises(DatasetError, match=r"f.toml: agents.limits: unknown field"):
        parse_config({"limits": 3}, "f.toml")
    with pytest.raises(DatasetError, match=r"f.toml: agents.llm_limit: must be a positive"):
        parse_config({"llm_limit": 0}, "f.toml")
    assert parse_config({}, "f", {"limit": 5, "name": "x"}).limit == 5  # [quick] overrides


def test_template_set_is_what_its_generator_writes():
    assert dataset.load() == {k: [dict(r) for r in v] for k, v in dataset.generate().items()}
    ds = template_dataset()
    assert {i.category for i in ds.items} == {"selection_pool", "planning", "timing"}
    assert len(ds.pool) == 120 and ds.info["files"]
