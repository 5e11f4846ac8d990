"""Declared pipelines as simulated traffic: every job and every stage stored."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from sagetui.cli import main


def run_cli(db, *args):
    return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)


def rows(db, sql, *params):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()

PIPELINES = """
[workload.pipeline]
corpus_size = 2000

[[workload.pipelines]]
name = "rag"
weight = 2
tiers = [ { name = "tight", share = 0.5, deadline_ms = 1500 }, { name = "loose", share = 0.5, deadline_ms = 6000 } ]
[[workload.pipelines.stages]]
name = "q"
kind = "embed"
[[workload.pipelines.stages]]
name = "docs"
kind = "retrieve"
after = ["q"]
k = 3
[[workload.pipelines.stages]]
name = "answer"
kind = "generate"
after = ["docs", "q"]
template = "{docs} {q}"
output_tokens = 32

[[workload.pipelines]]
name = "agent"
deadline_ms = 8000
[[workload.pipelines.stages]]
name = "plan"
kind = "generate"
output_tokens = 16
[[workload.pipelines.stages]]
name = "call"
kind = "tool"
after = ["plan"]
duration_ms = 40
[[workload.pipelines.stages]]
name = "act"
kind = "loop"
after = ["call"]
max_calls = 3
output_tokens = 16
"""


@pytest.mark.parametrize("policy", ["fifo", "pipeline-slack", "pipeline-las", "pipeline-hybrid",
                                    "staggered"])
def test_every_job_and_every_stage_is_stored(db_path, make_config, policy):
    cfg = make_config(PIPELINES)
    res = run_cli(db_path, "run", cfg, "--set", "workload.mix={chat=0.4, pipeline=0.6}",
                  "--set", f"control_plane.policy={policy}", "--set", "run.raw=true")
    assert res.exit_code == 0, res.output
    jobs = rows(db_path, "SELECT request_id, pipeline, status, reason FROM request "
                         "WHERE request_class='pipeline' AND parent_id IS NULL")
    assert {p for _, p, _, _ in jobs} == {"rag", "agent"}
    assert all(s in ("completed", "failed", "rejected") for _, _, s, _ in jobs)
    assert all(r for _, _, s, r in jobs if s != "completed")  # a reason for each miss
    stages = rows(db_path, "SELECT parent_id, stage, request_class FROM request "
                           "WHERE parent_id IS NOT NULL")
    by_job: dict = {}
    for parent, stage, cls in stages:
        by_job.setdefault(parent, set()).add((stage, cls))
    done = {j for j, p, s, _ in jobs if s == "completed" and p == "rag"}
    assert done and all(by_job[j] == {("q", "embedding"), ("docs", "pipeline"),
                                      ("answer", "chat")} for j in done)
    assert set(by_job) <= {j for j, *_ in jobs}  # no stage without its job
    metrics = {m for (m,) in rows(db_path, "SELECT DISTINCT metric FROM histogram "
                                           "WHERE request_class='pipeline'")}
    assert {"stage_q", "stage_docs", "stage_answer", "stage_plan", "stage_call", "stage_act",
            "e2e"} <= metrics
    (extra,), = rows(db_path, "SELECT extra_json FROM summary WHERE request_class='pipeline'")
    kinds = json.loads(extra)["pipelines"]
    assert set(kinds) == {"rag", "agent"}
    assert set(kinds["rag"]["stages"]) == {"q", "docs", "answer"}
    assert 0 <= kinds["agent"]["deadline_attainment"] <= 1


@pytest.mark.parametrize("stage,needle", [
    ('[[workload.pipelines.stages]]\nname = "x"\nkind = "generate"\nafter = ["x"]\n',
     "cycle"),
    ('[[workload.pipelines.stages]]\nname = "x"\nkind = "generate"\ntemplate = "{nope}"\n',
     "field `template`"),
    ('[[workload.pipelines.stages]]\nname = "x"\nkind = "summarise"\n', "kind"),
])
def test_a_bad_declaration_is_refused_and_nothing_stored(db_path, make_config, stage, needle):
    cfg = make_config('\n[[workload.pipelines]]\nname = "bad"\n' + stage)
    res = run_cli(db_path, "run", cfg, "--set", "workload.mix={pipeline=1}")
    assert res.exit_code == 2
    assert "workload.pipelines" in res.output and needle in res.output
    assert not db_path.exists() or rows(db_path, "SELECT count(*) FROM run") == [(0,)]


def test_a_corpus_file_is_read_and_a_bad_one_refused(db_path, make_config, tmp_path):
    good = tmp_path / "corpus.jsonl"
    good.write_text("\n".join(json.dumps({"text": f"passage {i} about kv caches"})
                              for i in range(50)))
    with open(make_config(PIPELINES, name="ok.toml")) as f:
        text = f.read()
    text = text.replace("corpus_size = 2000", f'corpus_file = "{good}"')
    ok = tmp_path / "ok2.toml"
    ok.write_text(text)
    res = run_cli(db_path, "run", str(ok), "--set", "workload.mix={chat=0.4, pipeline=0.6}")
    assert res.exit_code == 0, res.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "no text field"}\n')
    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text(text.replace(str(good), str(bad)))
    other = tmp_path / "other.db"
    res = run_cli(other, "run", str(bad_cfg), "--set", "workload.mix={pipeline=1}")
    assert res.exit_code == 2
    assert "workload.pipeline.corpus_file" in res.output and "line 2" in res.output
    assert not other.exists() or rows(other, "SELECT count(*) FROM run") == [(0,)]


def test_an_index_larger_than_memory_is_refused(db_path, make_config):
    cfg = make_config(PIPELINES.replace("corpus_size = 2000", "corpus_size = 500000000"))
    res = run_cli(db_path, "run", cfg, "--set", "workload.mix={pipeline=1}")
    assert res.exit_code == 2
    assert "pipeline 'rag', stage 'docs', field `index`" in res.output
    assert not db_path.exists() or rows(db_path, "SELECT count(*) FROM run") == [(0,)]
