"""Built-in suites: one experiment, runs tagged with their part, a manifest naming outputs."""

from __future__ import annotations


def test_single_table_reads_only_the_parts_the_manifest_names(cli, tmp_path):
    result = cli("--format", "markdown", "--table", "scalability", "--suite", "scal", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "suite manifest" in result.output and "parts backends" in result.output
    text = (tmp_path / "scalability.md").read_text()
    assert "| 1 | 90.0 | 1.00× |" in text and "| 2 | 180.0 | 2.00× |" in text


def test_a_part_can_also_be_chosen_with_where(cli, tmp_path):
    result = cli("--format", "csv", "--figure", "latency_vs_rate", "--suite", "scal",
                 "--where", "run.part=rate", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "latency_vs_rate.csv").read_text().splitlines()
    assert len(rows) == 4  # header + rates 10, 20, 40


def test_bundle_builds_what_the_manifest_names_per_part(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SAGETUI_CHROMIUM", "/nonexistent")
    result = cli("--format", "pdf", "--bundle", "--suite", "scal", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "scal__quick/backends/tables/scalability.tex").is_file()
    assert (tmp_path / "scal__quick/rate/figures/latency_vs_rate.html").is_file()
    assert (tmp_path / "scal__quick/rate/data/latency_vs_rate.csv").is_file()
    assert not list(tmp_path.glob("scal__quick/backends/figures/*"))  # only what the manifest names
    index = (tmp_path / "index.md").read_text()
    assert "## scal (quick) / backends" in index and "outputs named by the suite manifest" in index
    brief = (tmp_path / "brief.md").read_text()
    assert "saturates at 40 req/s" in brief
