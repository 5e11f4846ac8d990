"""SLO tiers and TPOT SLOs through `sagetui run` in sim mode: stored per request and per tier."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from sagetui.cli import main

TIERS = """
[workload.slos.chat]
e2e_ms = 15000
tpot_ms = 500
tiers = [ { name = "tight", share = 0.3, ttft_ms = 300 }, { name = "loose", share = 0.7, ttft_ms = 3000 } ]
"""


def rows(db, sql, *params):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_tiered_run_stores_tier_and_tpot_per_request_and_attainment_per_tier(db_path, make_config):
    cfg = make_config(TIERS, name="tiers.toml")
    # BASE already has [workload.slos.chat]; the tiered one replaces it
    text = open(cfg).read().replace("[workload.slos.chat]\nttft_ms = 500\ne2e_ms = 5000\n", "", 1)
    open(cfg, "w").write(text)
    res = CliRunner().invoke(main, ["--db", str(db_path), "run", cfg, "--set", "run.raw=true"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    run_id = int(res.stdout.split()[0])
    got = dict(rows(db_path, "SELECT slo_tier, count(*) FROM request WHERE run_id=? AND "
                             "request_class='chat' AND parent_id IS NULL GROUP BY slo_tier", run_id))
    assert set(got) == {"tight", "loose"} and got["tight"] < got["loose"]
    bounds = set(rows(db_path, "SELECT slo_tier, slo_ttft_ms, slo_tpot_ms, slo_e2e_ms FROM request "
                               "WHERE run_id=? AND request_class='chat'", run_id))
    assert bounds == {("tight", 300.0, 500.0, 15000.0), ("loose", 3000.0, 500.0, 15000.0)}
    assert set(rows(db_path, "SELECT slo_tier, slo_tpot_ms FROM request WHERE run_id=? AND "
                             "request_class='embedding'", run_id)) == {("", None)}
    (issued, extra), = rows(db_path, "SELECT issued, extra_json FROM summary WHERE run_id=? AND "
                                     "request_class='chat'", run_id)
    tiers = json.loads(extra)["slo_tiers"]
    assert set(tiers) == {"tight", "loose"}
    assert tiers["tight"]["issued"] + tiers["loose"]["issued"] == issued
    (all_extra,), = rows(db_path, "SELECT extra_json FROM summary WHERE run_id=? AND request_class='all'",
                         run_id)
    assert set(json.loads(all_extra)["slo_tiers"]) == {"chat.tight", "chat.loose"}
    assert "rejected_by_reason" in json.loads(all_extra)


@pytest.mark.parametrize("tiers, field", [
    ('[ { name = "a", share = 0.3 }, { name = "b", share = 0.6 } ]', "workload.slos.chat.tiers"),
    ('[ { name = "a", share = 0.5 }, { name = "b", share = 0.5, ttft_ms = 0 } ]',
     "workload.slos.chat.tiers.1.ttft_ms"),
    ('[ { name = "a", share = 0.5 }, { name = "b", share = 0.5, tpot_ms = -3 } ]',
     "workload.slos.chat.tiers.1.tpot_ms"),
    ('[ { name = "a", share = 0.5 }, { name = "a", share = 0.5 } ]', "workload.slos.chat.tiers"),
])
def test_bad_tiers_exit_2_naming_the_file_and_field_and_store_nothing(db_path, make_config, tiers, field):
    cfg = make_config(name="bad.toml")
    text = open(cfg).read().replace("ttft_ms = 500\ne2e_ms = 5000\n", f"tiers = {tiers}\n", 1)
    open(cfg, "w").write(text)
    res = CliRunner().invoke(main, ["--db", str(db_path), "run", cfg])
    assert res.exit_code == 2, res.output
    assert f"{cfg}: {field}" in res.output
    assert not db_path.exists()
