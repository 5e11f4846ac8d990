"""Attainment per class and per tier, and rejected-or-shed, in the summary tables."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fixture_store import POLICY_TIERS, Builder, config, summary

from sagetui.cli import main


def export_json(db, table: str, experiment: str, out) -> dict:
    res = CliRunner().invoke(main, ["--db", str(db), "export", "--format", "json", "--table",
                                    table, "--experiment", experiment, "-o", str(out)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads((out / f"{table}.json").read_text())


def test_policies_table_has_class_and_tier_columns_in_config_order(store, tmp_path):
    table = export_json(store, "policies", "policies", tmp_path)
    keys = [c["key"] for c in table["columns"]]
    assert keys[keys.index("slo"):keys.index("rejected_or_shed") + 1] == [
        "slo", "slo_chat", "slo_embedding", "slo_tier_chat.tight", "slo_tier_chat.loose",
        "rejected_or_shed"]
    row = next(r for r in table["rows"] if (r["pattern"], r["policy"]) == ("poisson", "hybrid"))
    # fixture: slo = 0.92 - 0.005·rep; tight = slo - 0.1 + 0.03·3; chat = slo - 0.02; embed = slo + 0.05
    assert row["slo_tier_chat.tight"]["mean"] == pytest.approx(100 * (0.9175 - 0.01))
    assert row["slo_chat"]["mean"] == pytest.approx(100 * (0.9175 - 0.02))
    assert row["slo_embedding"]["mean"] == pytest.approx(100 * (0.9175 + 0.05))
    assert row["rejected_or_shed"]["mean"] == pytest.approx(100 * (6 + 6) / 1000)
    assert "failures, rejections and sheds count as misses" in table["caption"]


def test_effectiveness_without_tiers_has_no_tier_columns(store, tmp_path):
    table = export_json(store, "effectiveness", "effectiveness", tmp_path)
    keys = [c["key"] for c in table["columns"]]
    assert "slo_chat" in keys and "slo_embedding" in keys and "rejected_or_shed" in keys
    assert not [k for k in keys if k.startswith("slo_tier_")]
    chat_heavy = [r for r in table["rows"] if r["workload"] == "chat-heavy"]
    assert chat_heavy and all(r["slo_embedding"] is None for r in chat_heavy)


def test_a_configuration_without_a_tier_shows_a_dash_and_old_runs_count_rejected(tmp_path):
    """One policy ran with tiers, one without; the untiered run was stored before
    sheds were counted apart (no `rejected_or_shed`), so its `rejected` column is used."""
    db = tmp_path / "s.db"
    b = Builder(db)
    e = b.experiment("mixed-tiers")
    b.run(e, "tiered-0", config(control_plane__policy="slo",
                                workload__slos={"chat": {"tiers": POLICY_TIERS}}), 0,
          summary(50, tiers={"tight": 0.5, "loose": 0.9}, shed=10), depth=3)
    old = summary(50)
    del old["all"]["extra"]["rejected_or_shed"]
    b.run(e, "plain-0", config(control_plane__policy="fifo"), 0, old, depth=3)
    b.close()
    table = export_json(db, "policies", "mixed-tiers", tmp_path)
    rows = {r["policy"]: r for r in table["rows"]}
    assert rows["fifo"]["slo_tier_chat.tight"] is None
    assert rows["slo"]["slo_tier_chat.tight"]["mean"] == pytest.approx(50.0)
    assert rows["fifo"]["rejected_or_shed"]["mean"] == pytest.approx(0.6)
    assert rows["slo"]["rejected_or_shed"]["mean"] == pytest.approx(1.6)
