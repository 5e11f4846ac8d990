"""The agents suite stores one run per strategy with the metrics the table reads."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from sagetui.cli import main


def test_quick_agents_suite_in_sim_mode(db_path, tmp_path):
    res = CliRunner().invoke(main, ["--db", str(db_path), "suite", "run", "agents", "--quick"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    con = sqlite3.connect(db_path)
    rows = con.execute("SELECT r.status, s.extra_json FROM run r LEFT JOIN summary s "
                       "ON s.run_id = r.id AND s.request_class='all' ORDER BY r.id").fetchall()
    statuses = [s for s, _ in rows]
    assert statuses == ["completed", "completed", "completed", "cancelled"]  # llm needs live
    agent = {json.loads(e)["agent"]["strategy"]: json.loads(e)["agent"]["metrics"]
             for s, e in rows if s == "completed"}
    assert set(agent) == {"bm25", "embedding", "hybrid"}
    for m in agent.values():
        assert 0 <= m["top1_acc_pct"] <= m["top5_acc_pct"] <= 100
        assert 0 <= m["mrr"] <= 1
    # Synonym-heavy queries: the embedding engine must beat keywords.
    assert agent["embedding"]["mrr"] > agent["bm25"]["mrr"]
    out = CliRunner().invoke(main, ["--db", str(db_path), "export", "--format", "markdown",
                                    "--table", "agents", "--suite", "agents",
                                    "-o", str(tmp_path / "out")], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    table = (tmp_path / "out" / "agents.md").read_text()
    assert "embedding" in table and "bm25" in table


@pytest.mark.live
@pytest.mark.slow
def test_llm_strategy_asks_the_real_chat_engine(db_path, tmp_path, vllm_cpu):
    backends = tmp_path / "backends.toml"
    backends.write_text(f"""
[[backends]]
name = "chat"
kind = "vllm-cpu"
url = "{vllm_cpu.url}"
model = "tiny-llama"
device = "cpu"
capabilities = ["chat", "completion"]
""")
    res = CliRunner().invoke(main, ["--db", str(db_path), "suite", "run", "agents", "--quick",
                                    "--mode", "live", "--backends", str(backends)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    con = sqlite3.connect(db_path)
    (status, reason), = con.execute(
        "SELECT status, status_reason FROM run WHERE name LIKE '%/llm'").fetchall()
    assert status == "completed", reason
    (extra,), = con.execute("SELECT s.extra_json FROM run r JOIN summary s ON s.run_id = r.id "
                            "WHERE r.name LIKE '%/llm'").fetchall()
    metrics = json.loads(extra)["agent"]["metrics"]
    # The tiny model has random weights: its answers are real but rarely right.
    assert metrics["selection_items"] == 45
    assert metrics["llm_errors"] == 0  # every prompt fitted and was answered
    assert 0 <= metrics["top1_acc_pct"] <= 100
