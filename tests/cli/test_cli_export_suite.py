"""`sagetui export --bundle --suite control-plane -o DIR` with no other flag, on a store
the quick suite filled, as a user would run it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import sagetui

from exports.imaging import find_browser


@pytest.mark.slow
def test_bundle_of_a_suite_needs_no_format(tmp_path):
    db = tmp_path / "sagetui.db"
    made = sagetui(db, "suite", "run", "control-plane", "--quick")
    assert made.exit_code == 0, made.output
    out = tmp_path / "bundle"
    result = sagetui(db, "export", "--bundle", "--suite", "control-plane", "-o", str(out))
    assert result.exit_code == 0, result.output
    printed = result.stdout.split()
    assert printed[-1] == str(out / "index.md")
    assert all(Path(p).is_file() for p in printed)
    assert list(out.rglob("*.tex")) and list(out.rglob("*.md")) and (out / "brief.md").is_file()
    figures = list(out.rglob("figures/*.html"))
    assert figures
    pdfs = list(out.rglob("figures/*.pdf"))
    if find_browser() is None:
        assert not pdfs and result.stderr.count("PDF not written") == 1
    else:
        assert len(pdfs) == len(figures)
        assert all(p.read_bytes().startswith(b"%PDF-") for p in pdfs)
