"""Where exports find the control-plane overhead, in the documented order."""

from __future__ import annotations

import pytest

from exports.accessors import overhead_ms, overhead_pct
from exports.errors import ExportError
from exports.model import RunView, SummaryView


def run_with(metrics: dict, extra: dict) -> RunView:
    s = SummaryView("all", 10, 10, 0, 0, 1.0, 1.0, 1.0, 1.0, None, metrics, extra)
    return RunView(id=1, name="r", experiment="e", suite=None, experiment_spec="", part="",
                   mode="sim", status="completed",
                   config={}, config_hash="h", seed=0, repetition=0, sagetui_version="",
                   git_sha="", software={}, hardware=None, duration_s=1, warmup_s=0,
                   backends=(), summaries={"all": s})


def test_overhead_histogram_mean_comes_first():
    r = run_with({"overhead": {"mean": 0.25}, "e2e": {"mean": 50.0}},
                 {"control_plane": {"overhead_us_per_request": 999.0}, "overhead_us": 7.0})
    assert overhead_ms(r) == 0.25
    assert overhead_pct(r) == pytest.approx(0.5)


def test_simulator_extra_then_plain_extra():
    assert overhead_ms(run_with({}, {"control_plane": {"overhead_us_per_request": 300.0},
                                     "overhead_us": 7.0})) == pytest.approx(0.3)
    assert overhead_ms(run_with({}, {"overhead_us": 7.0})) == pytest.approx(0.007)


def test_missing_overhead_names_the_run_and_fields():
    with pytest.raises(ExportError, match=r"run 1 \(r\).*metrics_json.overhead.mean"):
        overhead_ms(run_with({"e2e": {"mean": 5.0}}, {}))
