"""End to end: a built-in suite simulated by sagetui, then exported as the paper needs it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sagetui.cli import main


@pytest.mark.slow
def test_quick_scalability_suite_exports(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGETUI_CHROMIUM", "/nonexistent")  # HTML only: the PDF path is tested elsewhere
    db = tmp_path / "runs.db"
    runner = CliRunner()
    ran = runner.invoke(main, ["--db", str(db), "suite", "run", "scalability", "--quick"],
                        catch_exceptions=False)
    assert ran.exit_code == 0, ran.output
    out = tmp_path / "out"
    res = runner.invoke(main, ["--db", str(db), "export", "--format", "latex", "--table", "scalability",
                               "--suite", "scalability", "-o", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    tex = (out / "scalability.tex").read_text()
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    assert [line.split(" & ")[0] for line in body] == ["1", "2"]  # the quick backends part
    assert body[0].split(" & ")[2] == "1.00$\\times$"
    res = runner.invoke(main, ["--db", str(db), "export", "--format", "pdf", "--bundle", "--suite",
                               "scalability", "-o", str(tmp_path / "bundle")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    for rel in ("backends/tables/scalability.tex", "backends/figures/throughput_vs_backends.html",
                "rate/figures/latency_vs_rate.html", "clients/figures/fairness.html"):
        assert list((tmp_path / "bundle").glob(f"*/{rel}")), rel
