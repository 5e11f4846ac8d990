"""`sagetui run` in sim mode, end to end through the CLI and the store."""

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


def test_sweep_stores_one_run_per_point_and_every_request_is_accounted(db_path, make_config):
    cfg = make_config('\n[sweep]\n"control_plane.policy" = ["fifo", "hybrid"]\n')
    res = run_cli(db_path, "run", cfg, "--set", "run.raw=true")
    assert res.exit_code == 0, res.output
    ids = [int(x) for x in res.stdout.split()]
    assert len(ids) == 2
    policies = [json.loads(c)["control_plane"]["policy"]
                for (c,) in rows(db_path, "SELECT config_json FROM run ORDER BY id")]
    assert policies == ["fifo", "hybrid"]
    for run_id in ids:
        (status,), = rows(db_path, "SELECT status FROM run WHERE id=?", run_id)
        assert status == "completed"
        # Conservation: every raw top-level record has exactly one terminal status.
        statuses = rows(db_path, "SELECT status, count(*) FROM request WHERE run_id=? "
                                 "GROUP BY status", run_id)
        assert {s for s, _ in statuses} <= {"completed", "failed", "rejected"}
        (issued, done, failed, rejected), = rows(
            db_path, "SELECT issued, completed, failed, rejected FROM summary "
                     "WHERE run_id=? AND request_class='all'", run_id)
        assert issued == done + failed + rejected > 0
        # Both classes were measured and have latency histograms.
        classes = {c for (c,) in rows(db_path, "SELECT DISTINCT request_class FROM histogram "
                                               "WHERE run_id=? AND metric='e2e'", run_id)}
        assert {"chat", "embedding", "all"} <= classes
        assert rows(db_path, "SELECT count(*) FROM sample WHERE run_id=?", run_id)[0][0] >= 7


def test_bad_config_exits_2_and_writes_nothing(db_path, make_config):
    cfg = make_config()
    for bad in (["--set", "workload.rate=0"], ["--set", "control_plane.policy=nope"],
                ["--set", "workload.bogus=1"], ["--set", "sweep.workload.nofield=[1,2]"],
                ["--set", "backends.0.preset=nope"]):
        res = CliRunner().invoke(main, ["--db", str(db_path), "run", cfg, *bad])
        assert res.exit_code == 2, (bad, res.output)
        assert "error:" in res.output
    assert not db_path.exists()


def test_policy_error_names_field_and_allowed_values(db_path, make_config):
    res = CliRunner().invoke(main, ["--db", str(db_path), "run", make_config(),
                                    "--set", "control_plane.policy=nope"])
    assert "control_plane.policy" in res.output and "hybrid" in res.output


def test_class_without_capable_backend_is_refused(db_path, make_config):
    res = CliRunner().invoke(main, ["--db", str(db_path), "run", make_config(),
                                    "--set", 'backends.0.capabilities=["chat"]',
                                    "--set", "workload.mix={chat=0.5, completion=0.5}"])
    assert res.exit_code == 2
    assert "workload.mix.completion" in res.output


def test_pipeline_run_records_every_stage(db_path, make_config):
    cfg = make_config()
    res = run_cli(db_path, "run", cfg, "--set", "workload.mix={chat=0.5, pipeline=0.5}",
                  "--set", "run.raw=true")
    assert res.exit_code == 0, res.output
    metrics = {m for (m,) in rows(db_path, "SELECT DISTINCT metric FROM histogram "
                                          "WHERE request_class='pipeline'")}
    assert {"stage_embed", "stage_search", "stage_chat", "e2e", "ttft"} <= metrics
    (n_pipe,), = rows(db_path, "SELECT issued FROM summary WHERE request_class='pipeline'")
    assert n_pipe > 0


def test_closed_loop_in_sim_never_exceeds_its_clients(db_path, make_config):
    cfg = make_config("\n[workload.clients]\nn = 3\nthink_time_s = 0.05\n")
    res = run_cli(db_path, "run", cfg, "--set", "run.raw=true")
    assert res.exit_code == 0, res.output
    spans = rows(db_path, "SELECT t_intended, t_done FROM request WHERE status='completed'")
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans],
                    key=lambda e: (e[0], e[1]))
    depth = peak = 0
    for _, d in events:
        depth += d
        peak = max(peak, depth)
    assert 1 <= peak <= 3


def test_fault_is_stored_as_an_event_and_requests_still_accounted(db_path, make_config):
    cfg = make_config("""
        [[backends]]
        name = "gpu1"
        kind = "sim"
        preset = "7b-h100"
        capabilities = ["chat", "completion"]
        max_concurrency = 64

        [[faults]]
        at_s = 3
        backend = "gpu1"
        action = "kill"
    """)
    res = run_cli(db_path, "run", cfg)
    assert res.exit_code == 0, res.output
    events = rows(db_path, "SELECT kind, subject FROM event")
    assert any(subject == "gpu1" for _, subject in events), events
    (issued, done, failed, rejected), = rows(
        db_path, "SELECT issued, completed, failed, rejected FROM summary "
                 "WHERE request_class='all'")
    assert issued == done + failed + rejected


def test_simulated_embedding_time_grows_with_all_its_texts(db_path, make_config):
    """A 16-text request of 32-token texts costs a + b·512 on MiniLM, not a + b·32: the
    workload's text_tokens is per text, the engine's batch cost is over every text."""
    from engine.sim.presets import get_embed_preset

    cfg = make_config("""
        [workload.sizes.embedding]
        n_texts = 16
        text_tokens = 32
    """)
    res = run_cli(db_path, "run", cfg, "--set", "run.raw=true", "--set", "workload.rate=2",
                  "--set", "workload.mix={embedding=1.0}", "--set", "control_plane.policy=fifo")
    assert res.exit_code == 0, res.output
    e2e = [b - a for a, b in rows(db_path, "SELECT t_intended, t_done FROM request "
                                            "WHERE status='completed'")]
    c = get_embed_preset("minilm-cpu").cost
    assert min(e2e) == pytest.approx(c.a + c.b * 16 * 32, rel=1e-6)


def test_a_sim_run_names_a_broken_preset_it_uses(tmp_path, monkeypatch):
    from sagetui.config import ConfigError, expand_raw

    monkeypatch.setenv("SAGETUI_PRESETS_DIR", str(tmp_path))
    (tmp_path / "mine.json").write_text("{not json")
    raw = {"run": {"mode": "sim"}, "workload": {"rate": 10, "duration_s": 5},
           "backends": [{"name": "b", "kind": "sim", "preset": "7b-h100",
                         "capabilities": ["chat"]}]}
    assert expand_raw(raw, source="t.toml", spec_text="").runs[0].backends[0].price_per_hour > 0
    raw["backends"][0]["preset"] = "mine"
    with pytest.raises(ConfigError, match="mine.json"):
        expand_raw(raw, source="t.toml", spec_text="")
