"""Figures: the publication template, the data behind them, PDF export with Chromium."""

from __future__ import annotations

import csv

import pytest

from exports.context import ExportContext
from exports.db import open_readonly
from exports.figures import FIGURES
from exports.figures.style import OKABE_ITO
from exports.imaging import find_browser
from exports.model import load_runs
from exports.selection import Selection

# figure -> the experiment of the fixed store it is drawn from
FIGURE_EXPERIMENTS = {
    "latency_vs_rate": "saturation", "slo_vs_load": "saturation",
    "throughput_vs_backends": "scalability", "latency_cdf": "policies",
    "wait_distribution": "policies", "queue_depth": "policies", "fairness": "fairness",
    "cost_performance": "heterogeneous", "agent_accuracy_latency": "agents-items",
    "pipeline_stages": "pipelines",
}


@pytest.fixture(scope="module")
def built(store):
    engine = open_readonly(store)
    out = {}
    for name, exp in FIGURE_EXPERIMENTS.items():
        ctx = ExportContext(engine, load_runs(engine, Selection(experiment=exp)))
        out[name] = FIGURES[name].build(ctx)
    yield out
    engine.close()


def test_every_figure_is_covered():
    assert set(FIGURE_EXPERIMENTS) == set(FIGURES)


@pytest.mark.parametrize("name", FIGURE_EXPERIMENTS)
def test_publication_template(built, name):
    fig = built[name].figure
    layout = fig.layout
    assert "serif" in layout.template.layout.font.family
    assert layout.width in (336, 672)  # 3.5 in / 7 in at 96 px per inch
    assert not (layout.title and layout.title.text)
    assert list(layout.template.layout.colorway) == list(OKABE_ITO)
    axes = [layout[k] for k in layout if k.startswith(("xaxis", "yaxis"))]
    titles = [a.title.text for a in axes]
    assert titles and all(titles), titles
    for t in titles:  # units in parentheses, except counts and indices
        assert "(" in t or t in ("Backends", "Clients", "Policy", "Hardware pool", "Jain fairness index",
                                 "Fraction of requests"), t


def test_latency_vs_rate_marks_the_saturation_point(built):
    f = built["latency_vs_rate"]
    marked = {(row["series"], row["offered_rps"]) for row in f.data if row["saturation"]}
    assert marked == {("policy=fifo", 80.0), ("policy=hybrid", 160.0)}
    names = [t.name for t in f.figure.data]
    assert "policy=fifo saturation" in names and "policy=fifo p99" in names
    vlines = [s.x0 for s in f.figure.layout.shapes]
    assert sorted(vlines) == [80.0, 160.0]


def test_throughput_vs_backends_has_the_ideal_line(built):
    f = built["throughput_vs_backends"]
    ideal = next(t for t in f.figure.data if t.name == "ideal (linear)")
    measured = next(t for t in f.figure.data if t.name == "measured")
    assert list(ideal.x) == [1, 2, 4, 8]
    assert list(ideal.y) == pytest.approx([measured.y[0] * n for n in (1, 2, 4, 8)])
    assert all(v > 0 for v in measured.error_y.array)  # two repetitions: a real interval


def test_latency_cdf_reaches_one_per_policy(built):
    f = built["latency_cdf"]
    assert len(f.figure.data) == 8  # 2 patterns x 4 policies
    for trace in f.figure.data:
        assert trace.y[-1] == pytest.approx(1.0)
        assert list(trace.x) == sorted(trace.x)


def test_pipeline_stages_shows_the_highest_load_below_capacity(built):
    # the fixed store has 0.9x and 1.1x runs: only the 0.9x ones are drawn
    f = built["pipeline_stages"]
    runs = {int(x) for row in f.data for x in row["runs"].split()}
    assert len(runs) == 6 and set(f.run_ids) == runs  # 3 policies x 2 repetitions
    assert " at 0.9× capacity" in f.caption
    assert {row["series"] for row in f.data} == {"policy=fifo", "policy=staggered",
                                                 "policy=pipeline-slack"}


def test_figure_csv_and_pdf_from_the_cli(cli, tmp_path):
    if find_browser() is None:
        pytest.skip("no Chromium: PDF export cannot be checked (apt-get install chromium)")
    result = cli("--format", "pdf", "--figure", "latency_vs_rate", "--experiment", "saturation",
                 "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    pdf = (tmp_path / "latency_vs_rate.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-1024:] and len(pdf) > 2000
    assert (tmp_path / "latency_vs_rate.html").stat().st_size > 1000
    rows = list(csv.DictReader((tmp_path / "latency_vs_rate.csv").open()))
    assert len(rows) == 10 and {"offered_rps", "p99_ms", "saturation", "runs"} <= set(rows[0])


def test_without_a_browser_html_is_written_and_the_message_says_how(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SAGETUI_CHROMIUM", "/nonexistent/chromium")
    result = cli("--format", "pdf", "--figure", "throughput_vs_backends", "--experiment",
                 "scalability", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "throughput_vs_backends.html").exists()
    assert not (tmp_path / "throughput_vs_backends.pdf").exists()
    assert "PDF not written" in result.output and "apt-get install" in result.output


def test_agent_accuracy_latency_and_the_bootstrap_table(built, cli, tmp_path):
    f = built["agent_accuracy_latency"]
    assert {r["strategy"] for r in f.data} == {"bm25", "embedding", "fusion"}
    assert {r["category"] for r in f.data} == {"selection", "selection_pool", "timing",
                                              "planning"}
    for r in f.data:
        assert r["ci_low_pct"] <= r["accuracy_pct"] <= r["ci_high_pct"] and r["n"] == 20
        assert r["p50_ms"] <= r["p99_ms"]
    assert "percentile bootstrap" in f.full_caption() and "2026.3.23" in f.full_caption()
    result = cli("--format", "csv", "--table", "agents", "--experiment", "agents-items",
                 "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "agents.csv").open()))
    sel = [r for r in rows if r["Category"] == "selection" and r["Strategy"] == "bm25"
           and r["Metric"].startswith("top-1")]
    assert len(sel) == 1 and float(sel[0]["Accuracy (%)"]) == pytest.approx(60.0)
