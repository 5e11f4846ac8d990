"""Every table in every format on the fixed store equals its golden file.

Regenerate after an intended change: SAGETUI_REGEN_GOLDEN=1 pytest tests/exports/test_golden.py
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
# table -> the selection that holds its runs in the fixed store
SELECTIONS = {
    "effectiveness": ("--experiment", "effectiveness"),
    "policies": ("--experiment", "policies"),
    "scalability": ("--experiment", "scalability"),
    "saturation": ("--experiment", "saturation"),
    "heterogeneous": ("--experiment", "heterogeneous"),
    "agents": ("--experiment", "agents"),
    "reproducibility": ("--suite", "paper"),
    "pipelines": ("--experiment", "pipelines"),
}
FORMATS = {"latex": "tex", "markdown": "md", "csv": "csv", "json": "json"}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("table", SELECTIONS)
def test_table_matches_golden(cli, tmp_path, table, fmt):
    result = cli("--format", fmt, "--table", table, *SELECTIONS[table], "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    produced = (tmp_path / f"{table}.{FORMATS[fmt]}").read_text(encoding="utf-8")
    golden = GOLDEN / f"{table}.{FORMATS[fmt]}"
    if os.environ.get("SAGETUI_REGEN_GOLDEN"):
        golden.write_text(produced, encoding="utf-8")
    assert golden.exists(), f"{golden} missing: run with SAGETUI_REGEN_GOLDEN=1"
    assert produced == golden.read_text(encoding="utf-8")
