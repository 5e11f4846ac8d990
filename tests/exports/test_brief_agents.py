"""The brief's suite-E section: the fusion against its parts on the same items, and the
timing figures computed as BFCL computes its detection figures, beside the published ones."""

from __future__ import annotations

import numpy as np
from fixture_store import AGENT_TIMING_IDS

from exports.brief_agents import detection


def test_fusion_against_its_parts_and_bfcl_figures_in_the_brief(cli, tmp_path):
    result = cli("--format", "brief", "--experiment", "agents-items", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    text = (tmp_path / "brief.md").read_text()
    assert "### Agent tool retrieval (BFCL)" in text
    lines = [ln for ln in text.splitlines() if "no worse than the better of its parts" in ln]
    assert len(lines) == 4  # selection, selection_pool, timing, planning
    for ln in lines:
        assert "95% paired bootstrap CI" in ln and "20 test items" in ln
        holds = ln.startswith("- **HOLDS**")
        assert holds != ("; worse;" in ln), ln
    assert "irrelevance detection" in text and "Claude-Opus-4-5 (FC), rank 1 62.50 / 84.72%" in text
    assert "Not the same task" in text and "must decline to call" in text


def test_detection_follows_bfcl_definitions():
    correct = [float(k % 3 == 0) for k in range(20)]
    d = detection({"ids": AGENT_TIMING_IDS, "outcomes": {"correct": correct}})
    files: dict[str, list[float]] = {}
    for i, v in zip(AGENT_TIMING_IDS, correct, strict=True):
        files.setdefault(i.rsplit("_", 1)[0], []).append(v)
    # irrelevance: the unweighted mean of the two files' accuracies, not the pooled mean
    irr = (np.mean(files["irrelevance"]) + np.mean(files["live_irrelevance"])) / 2
    assert d["irrelevance"] == (100 * irr, 10)
    assert d["relevance"] == (100 * np.mean(files["live_relevance"]), 2)
    assert d["relevance_pooled"][1] == 10
    assert detection({"outcomes": {"correct": correct}}) == {}
