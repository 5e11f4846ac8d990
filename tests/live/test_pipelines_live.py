"""Declared pipelines through the gateway: each stage a real request with the pipeline
headers, the pipeline-aware policy reading them, every job and stage stored."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sagetui.cli import main

from .test_live_runs import SIM_BACKENDS, config, query


def three_kinds(deadline_ms: int, output_tokens: int, tool_ms: int) -> str:
    """RAG, an agent and a multi-hop search, as a run config declares them."""
    return f"""
[[workload.pipelines]]
name = "rag"
deadline_ms = {deadline_ms}
stages = [ {{ name = "q", kind = "embed", tokens = 8 }},
           {{ name = "docs", kind = "retrieve", after = ["q"], k = 2, index = "hnsw" }},
           {{ name = "answer", kind = "generate", after = ["docs", "q"], template = "{{docs}} {{q}}", output_tokens = {output_tokens} }} ]

[[workload.pipelines]]
name = "agent"
deadline_ms = {deadline_ms}
stages = [ {{ name = "plan", kind = "generate", tokens = 16, output_tokens = {output_tokens} }},
           {{ name = "call", kind = "tool", after = ["plan"], duration_ms = {tool_ms} }},
           {{ name = "act", kind = "loop", after = ["call", "plan"], template = "{{plan}}", max_calls = 2, tokens = 8, output_tokens = {output_tokens} }} ]

[[workload.pipelines]]
name = "multihop"
deadline_ms = {deadline_ms}
stages = [ {{ name = "q", kind = "embed", tokens = 8 }},
           {{ name = "wide", kind = "retrieve", after = ["q"], k = 4, index = "ivf" }},
           {{ name = "exact", kind = "retrieve", after = ["q"], k = 2 }},
           {{ name = "best", kind = "rerank", after = ["wide", "exact"], k = 2 }},
           {{ name = "answer", kind = "generate", after = ["best", "q"], template = "{{best}} {{q}}", output_tokens = {output_tokens} }} ]
"""


PIPELINES = three_kinds(deadline_ms=20000, output_tokens=4, tool_ms=10)
WANT = {"rag": {"q", "docs", "answer"}, "agent": {"plan", "call", "act"},
        "multihop": {"q", "wide", "exact", "best", "answer"}}


@pytest.mark.parametrize("policy", ["pipeline-slack", "staggered"])
def test_each_pipeline_kind_runs_through_the_gateway(tmp_path, db_path, policy):
    cfg = config(tmp_path, f"""
        [run]
        name = "pipes"
        mode = "live"
        raw = true
        [control_plane]
        policy = "{policy}"
        [workload]
        rate = 6
        duration_s = 2
        warmup_s = 0
        mix = {{ pipeline = 1.0 }}
        pipeline = {{ corpus_size = 400, passage_tokens = 16 }}
    """ + PIPELINES + SIM_BACKENDS)
    res = CliRunner().invoke(main, ["--db", str(db_path), "run", cfg])
    assert res.exit_code == 0, res.output
    jobs = query(db_path, "SELECT request_id, pipeline, status, reason FROM request "
                          "WHERE parent_id IS NULL")
    assert {k for _, k, _, _ in jobs} == set(WANT)
    assert all(s == "completed" for _, _, s, _ in jobs), jobs
    for rid, kind, _, _ in jobs:
        stages = {s for (s,) in query(db_path, "SELECT stage FROM request WHERE parent_id = ?",
                                      rid)}
        assert stages == WANT[kind], (rid, kind)
    (extra,), = query(db_path, "SELECT extra_json FROM summary WHERE request_class='pipeline'")
    assert set(json.loads(extra)["pipelines"]) == set(WANT)
