"""Retrieval, tuning, the LLM's request and answer parsing, the template smoke set."""

from __future__ import annotations

import numpy as np
import pytest

from sagetui.agents import dataset, llm
from sagetui.agents.items import Item, Tool, split_identifier, template_dataset
from sagetui.agents.retrieval import Index, best_threshold, clauses, ranking, tune
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
