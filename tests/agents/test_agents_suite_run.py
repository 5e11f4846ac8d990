"""Suite E end to end: the engines, the gateway, one stored run per strategy, the exports.

The embedding engine is the real MiniLM (launched); the chat engine is a stand-in
OpenAI server that answers in the JSON the LLM strategy asks for, naming the first
function it was shown. SmolLM2 on vLLM is tests/live/test_agents_smollm2.py.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from sagetui.cli import main

SUITE = """
[suite]
name = "agents-smoke"
category = "E"
kind = "agents"
title = "smoke"
description = "the template set through the gateway"

[[suite.exports]]
table = "agents"
parts = ["agents"]

[agents]
dataset = "template"
strategies = ["bm25", "embedding", "fusion", "llm"]
limit = 12
dev_limit = 30
llm_limit = 5
concurrency = 2

[base.control_plane]
policy = "fifo"

[[base.backends]]
name = "minilm"
kind = "sentence-transformers"
device = "cpu"
capabilities = ["embedding"]

[[parts]]
name = "agents"
"""


class _Chat(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def log_message(self, *args):
        pass

    def _json(self, obj, code=200):
        raw = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        if self.path == "/health":
            return self._json({})
        return self._json({"data": [{"id": "fake-chat"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Chat.bodies.append(body)
        names = re.findall(r"^- ([^(\s]+)\(", body["messages"][-1]["content"], re.M)
        answer = json.dumps({"calls": [{"name": names[0], "arguments": {}}]})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for piece in (answer[:10], answer[10:]):
            chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        usage = {"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 2}}
        self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())


@pytest.fixture
def fake_chat():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Chat)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    _Chat.bodies = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.slow
def test_every_strategy_through_the_gateway_and_the_table(db_path, tmp_path, fake_chat,
                                                          monkeypatch, capsys):
    monkeypatch.setenv("SAGETUI_RUNS_DIR", str(tmp_path / "runs"))
    suite = tmp_path / "agents-smoke.toml"
    suite.write_text(SUITE)
    backends = tmp_path / "backends.toml"
    backends.write_text(SUITE[SUITE.index("[[base.backends]]"):SUITE.index("[[parts]]")]
                        .replace("base.backends", "backends") + f"""
[[backends]]
name = "chat"
kind = "openai"
url = "{fake_chat}"
model = "fake-chat"
capabilities = ["chat"]
""")
    res = CliRunner().invoke(main, ["--db", str(db_path), "suite", "run", str(suite),
                                    "--mode", "live", "--backends", str(backends)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    con = sqlite3.connect(db_path)
    runs = con.execute("SELECT r.id, r.status, s.extra_json FROM run r JOIN summary s "
                       "ON s.run_id = r.id AND s.request_class = 'all' ORDER BY r.id").fetchall()
    assert [s for _, s, _ in runs] == ["completed"] * 4
    agent = {json.loads(e)["agent"]["strategy"]: json.loads(e)["agent"] for _, _, e in runs}
    assert set(agent) == {"bm25", "embedding", "fusion", "llm"}
    for a in agent.values():
        assert a["dataset"]["name"] == "template smoke set" and a["split"] == "test"
        assert set(a["tuning"]["thresholds"]) == {"bm25", "embedding", "fusion"}
        assert a["metrics"]["errors"] == 0
        n = 5 if a["strategy"] == "llm" else 12
        assert {c: b["n"] for c, b in a["items"].items()} == {
            "selection_pool": n, "timing": n, "planning": n}
    assert agent["llm"]["metrics"]["llm_json_ok_pct"] == 100.0
    # Each item is one pipeline; its embedding and chat stages went through the gateway.
    rid = runs[3][0]
    rows = con.execute("SELECT request_id, request_class, parent_id, status, backend FROM "
                       "request WHERE run_id = ?", (rid,)).fetchall()
    tops = [r for r in rows if r[1] == "pipeline"]
    stages = [r for r in rows if r[2] is not None]
    assert len(tops) == 15 and all(r[3] == "completed" for r in rows)
    assert {r[1] for r in stages} == {"embedding", "chat"}
    assert {r[2] for r in stages} <= {r[0] for r in tops}
    assert {r[4] for r in stages} == {"minilm", "chat"}
    assert all(b["messages"][0]["role"] == "system" and "response_format" in b
               for b in _Chat.bodies)
    # bm25 scores in process: no stage requests
    assert con.execute("SELECT COUNT(*) FROM request WHERE run_id = ? AND parent_id IS NOT "
                       "NULL", (runs[0][0],)).fetchone() == (0,)
    out = CliRunner().invoke(main, ["--db", str(db_path), "export", "--format", "markdown",
                                    "--table", "agents", "--suite", "agents-smoke",
                                    "-o", str(tmp_path / "out")], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    table = (tmp_path / "out" / "agents.md").read_text()
    assert "percentile bootstrap over items" in table and "template smoke set" in table
    assert "| planning | exact plan (function names) | fusion | 12 |" in table
    fig = CliRunner().invoke(main, ["--db", str(db_path), "export", "--format", "csv",
                                    "--figure", "agent_accuracy_latency", "--suite",
                                    "agents-smoke", "-o", str(tmp_path / "fig")],
                             catch_exceptions=False)
    assert fig.exit_code == 0, fig.output
    from sagetui.agents.paired import main as paired

    paired(["--db", str(db_path)])  # every strategy on the LLM's items
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| strategy | selection_pool | timing | planning |"
    assert [x.split(" | ")[0] for x in lines[2:]] == ["| bm25", "| embedding", "| fusion", "| llm"]


def test_bad_agents_config_exits_2_naming_the_field(db_path, tmp_path):
    suite = tmp_path / "bad.toml"
    suite.write_text(SUITE.replace('dataset = "template"', 'dataset = "nope"'))
    res = CliRunner().invoke(main, ["--db", str(db_path), "suite", "run", str(suite)])
    assert res.exit_code == 2 and "agents.dataset: 'nope'" in res.output
