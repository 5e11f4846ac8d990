"""The one-line run summary the CLI prints names SLO attainment per class."""

from __future__ import annotations

from sagetui.commands.common import summary_line


def test_summary_line_gives_attainment_per_class_not_only_pooled():
    line = summary_line({
        "chat": {"slo_attainment": 0.0, "metrics": {"ttft": {"p99": 9000.0}}},
        "embedding": {"slo_attainment": 1.0, "metrics": {"e2e": {"p99": 3.2}}},
        "all": {"slo_attainment": 0.3, "throughput_rps": 80.0},
    })
    assert "SLO chat 0.0% embedding 100.0%" in line
    assert "30.0%" not in line  # a pooled 30 % would hide the chat collapse
    assert line.endswith("80.0 req/s")
