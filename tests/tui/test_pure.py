"""The dashboard's non-UI parts: filter language, sort, overrides, histograms, reads."""

from __future__ import annotations

import tomllib

import pytest

from sagetui.config import ConfigError, load_experiment
from sagetui.tui import histo, launching, runfilter
from sagetui.tui.data import (
    StoreReader,
    StoreUnavailable,
    list_runs,
    live_state,
    store_fingerprint,
)
from store import queries


@pytest.fixture
def rows(store_path):
    return list_runs(StoreReader(store_path))


def test_list_runs_has_table_columns(rows):
    assert [r.id for r in rows] == [7, 6, 5, 4, 3, 2, 1]
    done = next(r for r in rows if r.id == 4)
    assert done.policy == "hybrid" and done.baseline == "vllm" and done.backends == 2
    assert done.offered_rps == 50.0 and done.throughput_rps == pytest.approx(48.5)
    assert done.chat_ttft_p99_ms is not None and done.slo_attainment == pytest.approx(0.94)
    assert next(r for r in rows if r.id == 7).status == "running"


@pytest.mark.parametrize("text, ids", [
    ("fifo", [5, 1]),
    ("policy=fifo", [5, 1]),
    ("workload.rate>=40", [4, 3]),
    ("rate=50", [4]),
    ("status!=completed", [7]),
    ("tag=paper policy=slo_aware", [3]),
    ("backends.0.kind=sim mode=sim hybrid", [4]),
    ("nosuchkey=1", []),
])
def test_filter(rows, text, ids):
    assert [r.id for r in runfilter.apply(rows, runfilter.parse(text))] == ids


@pytest.mark.parametrize("bad", ["rate=", "=5", "a=b=c<"])
def test_filter_errors_name_the_term(bad):
    if bad == "a=b=c<":  # value may contain '=': accepted as text comparison
        assert runfilter.parse(bad)[0].value == "b=c<"
        return
    with pytest.raises(runfilter.FilterError, match="filter term"):
        runfilter.parse(bad)


def test_sort_any_column_missing_last(rows):
    by_p99 = runfilter.sort_rows(rows, "chat_ttft_p99_ms", reverse=False)
    values = [r.chat_ttft_p99_ms for r in by_p99]
    assert values[-1] is None  # the running run has no summary yet
    assert values[:-1] == sorted(values[:-1])
    assert [r.name for r in runfilter.sort_rows(rows, "name", True)] == sorted(
        (r.name for r in rows), reverse=True)


def test_toml_inline_round_trips():
    value = {"name": 'a "q"', "n": 3, "x": 0.5, "ok": True, "caps": ["chat"], "skip": None}
    parsed = tomllib.loads(f"v = {launching.toml_inline(value)}")["v"]
    assert parsed == {k: v for k, v in value.items() if v is not None}


def test_plan_for_a_config_validates_and_builds_argv():
    cfg = "examples/policy-comparison.toml"
    p = launching.plan(f"file:{cfg}", {"rate": "20", "mode": "sim", "backends": "gpu0,cpu-embed0",
                                       "extra": "workload.warmup_s=1"})
    argv = p.argv("s.db")
    assert argv[1:8] == ["-m", "sagetui", "--db", "s.db", "run", cfg, "--mode"]
    assert "workload.rate=20" in argv and "workload.warmup_s=1" in argv
    exp = load_experiment(cfg, overrides=[a for a in argv if "=" in a], mode="sim")
    assert [b.name for b in exp.runs[0].backends] == ["gpu0", "cpu-embed0"]
    assert "4 run(s)" in p.description and "rate 20 r/s" in p.description
    with pytest.raises(ConfigError, match="backends: nope"):
        launching.plan(cfg, {"backends": "nope"})
    with pytest.raises(ConfigError, match="workload.rate"):
        launching.plan(cfg, {"rate": "-1"})
    with pytest.raises(ConfigError, match="quick"):
        launching.plan(cfg, {}, quick=True)


def test_plan_for_a_suite_uses_suite_run():
    p = launching.plan("suite:policies", {"duration": "3"}, quick=True)
    assert p.argv("s.db")[5:] == ["suite", "run", "policies", "--quick", "--set",
                                  "workload.duration_s=3"]
    assert p.description.startswith("suite policies (quick):")
    with pytest.raises(ConfigError, match="unknown suite 'nosuch'"):
        launching.plan("suite:nosuch", {})
    with pytest.raises(ConfigError, match="TOML file of \\[\\[backends"):
        launching.plan("suite:policies", {"backends": "gpu0"})
    assert any(label.startswith("suite: policies") for label, _ in launching.builtin_targets())


def test_histogram_cdf_and_bins(store_path):
    found = StoreReader(store_path).call(queries.histograms, 1, metric="ttft", cls="chat")
    h = found[0][-1]
    xs, ys = histo.cdf_ms(h)
    assert xs == sorted(xs) and ys[-1] == pytest.approx(1.0)
    centres, counts = histo.bins_ms(h)
    assert sum(counts) == h.get_total_count() and len(centres) == 30


def test_live_state_reads_only_new_samples(store_path):
    reader = StoreReader(store_path)
    first = live_state(reader, 7)
    assert first.run.status == "running" and len(first.new_samples) == 12
    again = live_state(reader, 7, first.new_samples[-1].id)
    assert again.new_samples == []
    assert (first.sweep_runs, first.sweep_done, first.sweep_index) == (7, 6, 7)


def test_fingerprint_changes_with_status(store_path):
    import sqlite3

    reader = StoreReader(store_path)
    before = store_fingerprint(reader)
    with sqlite3.connect(store_path) as conn:
        conn.execute("UPDATE run SET status='completed' WHERE id=7")
    assert store_fingerprint(reader) != before


def test_bad_stores_raise_clear_errors(tmp_path):
    missing = StoreReader(tmp_path / "none.db")
    with pytest.raises(StoreUnavailable, match="none.db"):
        list_runs(missing)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 10)
    with pytest.raises(StoreUnavailable, match="junk.db.*not an SQLite"):
        list_runs(StoreReader(junk))


def test_points_match_hdrh_recorded_iterator():
    import random

    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(1, 3_600_000_000, 3)
    rng = random.Random(3)
    for _ in range(300):
        h.record_value(rng.randint(1, 10**8), rng.randint(1, 4))
    slow = [(i.value_iterated_to / 1000, i.count_at_value_iterated_to)
            for i in h.get_recorded_iterator()]
    assert histo.points_ms(h) == slow


def test_long_names_keep_their_sweep_point():
    from sagetui.tui.fmt import middle

    short = middle("policy-comparison[policy=hybrid]", 20)
    assert len(short) == 20 and short.endswith("licy=hybrid]") and "…" in short
    assert middle("run-1", 20) == "run-1"
