"""Pipeline declarations: builder == TOML, and every malformed graph named."""

from __future__ import annotations

import tomllib

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from loadgen.dag import Pipeline, PipelineSpec, ancestors, to_toml_dict, topological_order

RAG_TOML = """
[[pipelines]]
name = "rag"
deadline_ms = 2000
[[pipelines.stages]]
name = "q"
kind = "embed"
tokens = 24
[[pipelines.stages]]
name = "docs"
kind = "retrieve"
after = ["q"]
k = 8
index = "hnsw"
[[pipelines.stages]]
name = "top"
kind = "rerank"
after = ["docs"]
k = 3
[[pipelines.stages]]
name = "answer"
kind = "generate"
after = ["top", "q"]
template = "{top} {q}"
output_tokens = {kind = "uniform", low = 16, high = 64}
"""


def rag_builder() -> PipelineSpec:
    return (Pipeline("rag", deadline_ms=2000)
            .embed("q", tokens=24)
            .retrieve("docs", after="q", k=8, index="hnsw")
            .rerank("top", after="docs", k=3)
            .generate("answer", after=["top", "q"], template="{top} {q}",
                      output_tokens={"kind": "uniform", "low": 16, "high": 64})
            .spec())


def test_builder_equals_toml_and_round_trips():
    from_toml = PipelineSpec.model_validate(tomllib.loads(RAG_TOML)["pipelines"][0])
    built = rag_builder()
    assert built == from_toml
    again = tomllib.loads(tomli_w.dumps({"pipelines": [to_toml_dict(built)]}))["pipelines"][0]
    assert PipelineSpec.model_validate(again) == built


def test_order_and_ancestors_fan_in():
    p = rag_builder()
    assert [s.name for s in topological_order(p)] == ["q", "docs", "top", "answer"]
    assert ancestors(p, "answer") == {"q", "docs", "top"}


def test_fan_out_two_retrievals_one_generate():
    p = (Pipeline("multi").embed("q")
         .retrieve("wiki", after="q").retrieve("code", after="q", index="ivf")
         .generate("a", after=["wiki", "code"], template="{wiki}{code}").spec())
    order = [s.name for s in topological_order(p)]
    assert order.index("a") > max(order.index("wiki"), order.index("code"))
    assert p.llm_calls_at_most() == 1


def test_agent_loop_counts_its_calls():
    p = Pipeline("agent").loop("plan", max_calls=4).tool("search", after="plan") \
        .generate("final", after=["search", "plan"]).spec()
    assert p.llm_calls_at_most() == 5


@pytest.mark.parametrize("build, words", [
    (lambda: Pipeline("c").generate("a", after="b").generate("b", after="a"), ["cycle", "'c'"]),
    (lambda: Pipeline("m").embed("q").retrieve("d", after="nope"), ["'d'", "`after`", "'nope'"]),
    (lambda: Pipeline("t").embed("q").generate("g", template="{q}"), ["'g'", "`template`", "{q}"]),
    (lambda: Pipeline("r").retrieve("d", after=[]), ["'d'", "`after`"]),
    (lambda: Pipeline("s").tool("x", k=3), ["'x'", "`k`"]),
    (lambda: Pipeline("u").embed("q").embed("q"), ["two stages", "'q'"]),
    (lambda: Pipeline("v", tiers=[{"name": "a", "share": 0.5, "deadline_ms": 10}]).embed("q"),
     ["`tiers`", "0.5"]),
])
def test_malformed_graphs_name_pipeline_stage_and_field(build, words):
    with pytest.raises(ValidationError) as e:
        build().spec()
    for w in words:
        assert w in str(e.value)


def test_unknown_stage_kind_is_refused():
    with pytest.raises(ValidationError, match="kind"):
        PipelineSpec.model_validate({"name": "x", "stages": [{"name": "a", "kind": "map"}]})


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["embed", "generate", "tool", "loop"]), min_size=1, max_size=6),
       st.data())
def test_random_chains_round_trip(kinds, data):
    p = Pipeline("h", deadline_ms=500)
    for i, kind in enumerate(kinds):
        after = [f"s{j}" for j in range(i) if data.draw(st.booleans(), label=f"{i}<-{j}")]
        getattr(p, kind)(f"s{i}", after=after)
    spec = p.spec()
    text = tomli_w.dumps({"pipelines": [to_toml_dict(spec)]})
    assert PipelineSpec.model_validate(tomllib.loads(text)["pipelines"][0]) == spec
