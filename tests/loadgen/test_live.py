"""The load generator against real vLLM on CPU serving the tiny Llama: the
session's engine, so this module adds no engine start."""

from __future__ import annotations

import pytest

from loadgen.client import ClientConfig
from loadgen.metrics import aggregate
from loadgen.runner import run
from loadgen.spec import WorkloadSpec

pytestmark = [pytest.mark.live, pytest.mark.slow]


@pytest.fixture
def vllm(vllm_cpu):
    """The session's vLLM-on-CPU engine (tests/conftest.py) and the tiny Llama's tokenizer."""
    from engine.tiny_model import ensure_tiny_model

    return vllm_cpu.url, str(ensure_tiny_model())


def test_exact_tokens_and_stream_metrics_on_vllm(vllm):
    url, tok_dir = vllm
    spec = WorkloadSpec(rate=15, duration_s=3, seed=5, model="tiny-llama",
                        mix={"chat": 0.5, "completion": 0.5},
                        sizes={"chat": {"prompt_tokens": 32, "output_tokens": 16},
                               "completion": {"prompt_tokens": 32, "output_tokens": 16}},
                        slos={"chat": {"ttft_ms": 5000}})
    res = run(spec, ClientConfig(targets=url, send_priority_field=False), tokenizer_dir=tok_dir)
    assert res.records and all(r.status == "completed" for r in res.records), \
        {r.reason for r in res.records}
    for r in res.records:
        assert r.output_tokens == 16  # max_tokens + ignore_eos, counted by the server
        assert r.t_intended <= r.t_sent < r.t_first_token <= r.t_done
        assert 1 <= len(r.chunk_times) <= 16
    comp = [r for r in res.records if r.cls == "completion"]
    assert comp and all(r.prompt_tokens in (32, 33) for r in comp)  # exact prompt (+ BOS)
    a = aggregate(res.records, warmup_s=0, duration_s=3, target_rate_rps=15)
    m = a.summaries["all"]["metrics"]
    assert m["tpot"]["count"] == len(res.records) and m["tpot"]["p50"] > 0
    assert m["itl"]["count"] > 0 and m["ttft"]["p50"] >= m["ttft_sent"]["p50"]
    assert a.summaries["chat"]["slo_attainment"] == 1.0
