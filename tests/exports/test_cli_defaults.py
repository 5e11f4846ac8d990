"""`sagetui export` without ceremony: a bundle needs no --format, short names work,
and the last line printed is the bundle's index."""

from __future__ import annotations

from pathlib import Path

import pytest

from exports.imaging import find_browser


def printed(result) -> list[str]:
    return [ln for ln in result.stdout.splitlines() if ln.strip()]


def test_bundle_without_format_writes_tables_html_brief_and_ends_with_the_index(
        cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SAGETUI_CHROMIUM", "/nonexistent")  # no browser: HTML, said once
    result = cli("--bundle", "--suite", "paper", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    for rel in ("index.md", "brief.md", "scalability/tables/scalability.tex",
                "scalability/tables/scalability.md", "saturation/figures/latency_vs_rate.html"):
        assert (tmp_path / rel).is_file(), rel
    assert not list(tmp_path.rglob("*.pdf"))
    assert result.stderr.count("PDF not written") == 1
    assert printed(result)[-1] == str(tmp_path / "index.md")


@pytest.mark.slow
def test_bundle_without_format_renders_pdf_figures_when_a_browser_is_there(cli, tmp_path):
    if find_browser() is None:
        pytest.skip("no Chromium: PDF export cannot be checked (apt-get install chromium)")
    result = cli("--bundle", "--experiment", "scalability", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    pdfs = list(tmp_path.rglob("*.pdf"))
    assert pdfs and all(p.read_bytes().startswith(b"%PDF-") for p in pdfs)
    assert list(tmp_path.rglob("*.tex")) and list(tmp_path.rglob("*.md"))
    assert Path(printed(result)[-1]).name == "index.md"


@pytest.mark.parametrize("short, ext", [("md", "md"), ("tex", "tex"), ("MD", "md")])
def test_short_format_names(cli, tmp_path, short, ext):
    result = cli("--format", short, "--table", "scalability", "--experiment", "scalability",
                 "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / f"scalability.{ext}").is_file()


def test_unknown_format_is_refused_naming_it(cli, tmp_path):
    result = cli("--format", "docx", "--table", "scalability", "-o", str(tmp_path))
    assert result.exit_code == 2
    assert "'docx'" in result.output and "markdown" in result.output
    assert not list(tmp_path.iterdir())


def test_a_table_still_needs_a_format(cli, tmp_path):
    result = cli("--table", "scalability", "-o", str(tmp_path))
    assert result.exit_code == 2 and "--format is required" in result.output
