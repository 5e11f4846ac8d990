"""The load generator's workload kinds, each stored from a config against real engines.

Why: the load generator's promise — a bursty run, a trace replay, a closed loop of 50
clients and a RAG pipeline can each be stored from a config against a live
server (the 70/30 mix is `test_live_runs.py`), and every stored run carries its
timing-accuracy figures. The engines are this machine's real ones: the tiny
Llama on vLLM-on-CPU (started once per session) and MiniLM on serve-embed
(launched by each run), behind the gateway.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap

import pytest
from click.testing import CliRunner

from sagetui.cli import main

from .test_pipelines_live import three_kinds

pytestmark = [pytest.mark.live, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGETUI_RUNS_DIR", str(tmp_path / "runs"))


def _rows(db, sql, *params):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def _run(tmp_path, db, workload: str, backends: str) -> dict:
    """Run one live config; return the stored 'all' summary after the common checks."""
    cfg = tmp_path / "run.toml"
    cfg.write_text(textwrap.dedent("""
        [run]
        name = "kind"
        mode = "live"
        raw = true

        [control_plane]
        policy = "fifo"
        """) + textwrap.dedent(workload) + backends)
    res = CliRunner().invoke(main, ["--db", str(db), "run", str(cfg)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    (status, reason), = _rows(db, "SELECT status, status_reason FROM run")
    assert status == "completed", reason
    # every request accounted for, per class: completed, failed or rejected
    for cls, issued, done, failed, rejected in _rows(
            db, "SELECT request_class, issued, completed, failed, rejected FROM summary"):
        assert issued == done + failed + rejected, cls
    failures = _rows(db, "SELECT request_class, reason FROM request WHERE status != 'completed'")
    assert not failures, failures
    (extra, achieved, late), = _rows(db, "SELECT extra_json, achieved_rate_rps, lateness_p99_ms "
                                         "FROM summary WHERE request_class = 'all'")
    pacing = json.loads(extra)["pacing"]
    # the timing-accuracy figures every stored run carries
    assert achieved > 0 and pacing["achieved_rps"] == achieved
    assert late is not None and pacing["lateness_p99_ms"] == late
    assert pacing["gap_cv_actual"] is not None
    return json.loads(extra)


def test_bursty_onoff_run(tmp_path, db_path, real_cpu_backends):
    _run(tmp_path, db_path, """
        [workload]
        rate = 3
        arrival = { kind = "onoff", factor = 5, on_s = 1, off_s = 1 }
        duration_s = 6
        warmup_s = 0
        mix = { chat = 0.7, embedding = 0.3 }
        sizes.chat = { prompt_tokens = 32, output_tokens = 8 }
        sizes.embedding = { n_texts = 2, text_tokens = 16 }
        """, real_cpu_backends)
    sent = [t for (t,) in _rows(db_path, "SELECT t_intended FROM request")]
    on = sum(int(t) % 2 == 0 for t in sent)  # on for [0,1), off for [1,2), ...
    assert on > 2 * (len(sent) - on), (on, len(sent))  # 15 vs 3 req/s expected


def test_trace_replay_run(tmp_path, db_path, real_cpu_backends):
    trace = tmp_path / "trace.csv"
    stamps = [0.0, 0.1, 0.15, 0.6, 0.61, 0.62, 1.3, 1.9, 2.4, 2.45]
    trace.write_text("timestamp,class,prompt_tokens,output_tokens,n_texts\n" + "".join(
        f"{t},{'embedding' if i % 3 == 2 else 'chat'},24,6,2\n" for i, t in enumerate(stamps)))
    _run(tmp_path, db_path, f"""
        [workload]
        arrival = {{ kind = "trace", path = "{trace}" }}
        duration_s = 3
        warmup_s = 0
        """, real_cpu_backends)
    rows = _rows(db_path, "SELECT t_intended, request_class, output_tokens FROM request "
                          "ORDER BY t_intended")
    assert [c for _, c, _ in rows] == ["embedding" if i % 3 == 2 else "chat" for i in range(10)]
    offsets = [t - rows[0][0] for t, _, _ in rows]
    assert offsets == pytest.approx(stamps, abs=1e-6)  # the trace's own gaps
    assert all(o == 6 for _, c, o in rows if c == "chat")


def test_closed_loop_of_50_clients(tmp_path, db_path, real_cpu_backends):
    extra = _run(tmp_path, db_path, """
        [workload]
        clients = { n = 50, think_time_s = 0.2 }
        duration_s = 4
        warmup_s = 0
        mix = { chat = 1.0 }
        sizes.chat = { prompt_tokens = 16, output_tokens = 4 }
        """, real_cpu_backends)
    rows = _rows(db_path, "SELECT client_id, t_sent, t_done FROM request")
    assert len({c for c, _, _ in rows}) == 50
    events = sorted([(s, 1) for _, s, _ in rows] + [(d, -1) for _, _, d in rows])
    depth = peak = 0
    for _, step in events:
        depth += step
        peak = max(peak, depth)
    assert 1 < peak <= 50
    assert 0 < extra["fairness_jain"] <= 1 and len(extra["clients"]) == 50
    in_flight = [n for (n,) in _rows(db_path, "SELECT in_flight FROM sample")]
    assert in_flight and max(in_flight) <= 50


def test_rag_pipeline_run(tmp_path, db_path, real_cpu_backends):
    _run(tmp_path, db_path, """
        [workload]
        rate = 3
        duration_s = 4
        warmup_s = 0
        mix = { pipeline = 1.0 }
        sizes.pipeline = { prompt_tokens = 16, output_tokens = 6 }
        pipeline = { top_k = 2, corpus_size = 32, passage_tokens = 16 }
        slos.pipeline = { e2e_ms = 30000 }
        """, real_cpu_backends)
    tops = _rows(db_path, "SELECT request_id, t_done FROM request WHERE parent_id IS NULL")
    assert tops
    for rid, done in tops:
        kids = dict(_rows(db_path, "SELECT request_class, t_done FROM request WHERE parent_id = ?",
                          rid))
        assert set(kids) == {"embedding", "pipeline", "chat"}  # the search: a local stage
        assert kids["embedding"] <= kids["pipeline"] <= kids["chat"] == done
    (metrics,), = _rows(db_path, "SELECT metrics_json FROM summary WHERE request_class='pipeline'")
    assert {"stage_embed", "stage_search", "stage_chat", "e2e"} <= set(json.loads(metrics))


def test_each_declared_pipeline_kind_runs_through_the_gateway(tmp_path, db_path,
                                                              real_cpu_backends):
    """RAG (faiss over the MiniLM-embedded corpus), an agent (plan, tool, loop) and a
    multi-hop search (two indexes, a rerank): every stage stored, every job accounted."""
    _run(tmp_path, db_path, """
        [workload]
        rate = 2
        duration_s = 4
        warmup_s = 0
        mix = { pipeline = 1.0 }
        pipeline = { corpus_size = 400, passage_tokens = 16 }

        """ + three_kinds(deadline_ms=60000, output_tokens=6, tool_ms=20), real_cpu_backends)
    jobs = _rows(db_path, "SELECT request_id, pipeline, status FROM request "
                          "WHERE parent_id IS NULL")
    assert jobs and all(s == "completed" for _, _, s in jobs)
    want = {"rag": {"q", "docs", "answer"}, "agent": {"plan", "call", "act"},
            "multihop": {"q", "wide", "exact", "best", "answer"}}
    for rid, kind, _ in jobs:
        stages = {s for (s,) in _rows(db_path, "SELECT stage FROM request WHERE parent_id = ?",
                                      rid)}
        assert stages == want[kind], (rid, kind)
