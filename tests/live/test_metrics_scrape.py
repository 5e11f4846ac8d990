"""Prometheus text from vLLM (new and old names) becomes EngineStats; gaps are named."""

from __future__ import annotations

import pytest

from engine.metrics_scrape import MetricsError, parse_engine_stats

V1 = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 7.0
vllm:num_requests_waiting{engine="1",model_name="m"} 0.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="m",reason="capacity"} 99.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.25
vllm:prompt_tokens_total{model_name="m"} 1234.0
"""

OLD = """vllm:num_requests_running{model_name="m"} 1.0
vllm:num_requests_waiting{model_name="m"} 4.0
vllm:gpu_cache_usage_perc{model_name="m"} 0.9
"""


def test_v1_names_summed_over_engines():
    s = parse_engine_stats(V1)
    assert (s.running, s.waiting) == (5, 7)  # waiting_by_reason is not counted
    assert s.kv_use == pytest.approx(0.375)


def test_old_gpu_cache_name():
    s = parse_engine_stats(OLD)
    assert (s.running, s.waiting, s.kv_use) == (1, 4, pytest.approx(0.9))


@pytest.mark.parametrize("drop", ["vllm:num_requests_running", "vllm:num_requests_waiting",
                                  "vllm:kv_cache_usage_perc"])
def test_missing_series_named(drop):
    text = "\n".join(ln for ln in V1.splitlines() if not ln.startswith(drop + "{"))
    with pytest.raises(MetricsError, match=f"http://x/metrics.*{drop.split(':')[1][:12]}"):
        parse_engine_stats(text, "http://x/metrics")
