"""A store holding finished simulated runs, made the way users make runs (the CLI)."""

from __future__ import annotations

import pytest
from cli_helpers import SIM_CONFIG, sagetui


@pytest.fixture
def sim_store(tmp_path):
    """A store with runs 1 and 2: repetitions 0 and 1 (seeds 7 and 8) of SIM_CONFIG."""
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(SIM_CONFIG)
    db = tmp_path / "sagetui.db"
    result = sagetui(db, "run", str(cfg), "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["1", "2"]
    return db
