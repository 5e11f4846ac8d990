"""vLLM request spans into a replay: parsing, bad input named, load phases, the report,
and the published H100 traces against the presets (tests/data/gpu_traces)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from engine.sim.otel import (
    GpuTrace,
    TracedRequest,
    TraceError,
    read_trace,
    read_vllm_log,
    write_compact,
)
from engine.sim.presets import get_llm_preset
from engine.sim.replay import (
    Replayed,
    lone_requests,
    lone_residual,
    model_mismatch,
    phases,
    replay,
    report,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "gpu_traces"
SEVEN_B = DATA / "llama2-7b-h100-sweep.jsonl"
CODELLAMA = {name: DATA / f"codellama34b-h100-{name}.jsonl"
             for name in ("sweep", "prefix1024", "prefix1024-budget64")}


def span(start_ns: int, prompt: int = 100, output: int = 10, ttft: float = 0.05,
         e2e: float = 0.2, drop: str = "") -> dict:
    attrs = {"gen_ai.usage.prompt_tokens": {"intValue": str(prompt)},
             "gen_ai.usage.completion_tokens": {"intValue": str(output)},
             "gen_ai.latency.time_to_first_token": {"doubleValue": ttft},
             "gen_ai.latency.e2e": {"doubleValue": e2e},
             "gen_ai.latency.time_in_queue": {"doubleValue": 0.001},
             "gen_ai.response.model": {"stringValue": "meta-llama/Llama-2-7b-hf"}}
    attrs.pop(drop, None)
    return {"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {"name": "vllm"}, "spans": [
        {"name": "llm_request", "spanId": "ab12", "startTimeUnixNano": str(start_ns),
         "attributes": [{"key": k, "value": v} for k, v in attrs.items()]}]}]}]}


def test_otlp_json_lines_and_one_document_read_alike(tmp_path):
    lines = tmp_path / "spans.jsonl"
    lines.write_text("\n".join(json.dumps(span(int(1e18) + i * 10**9, prompt=100 + i))
                               for i in (2, 0, 1)) + "\n")
    t = read_trace(lines)
    assert [r.t for r in t.requests] == [0.0, 1.0, 2.0]  # arrival order, from the first
    assert [r.prompt for r in t.requests] == [100, 101, 102]
    assert (t.requests[0].ttft, t.requests[0].e2e, t.requests[0].queue) == (0.05, 0.2, 0.001)
    assert t.model == "meta-llama/Llama-2-7b-hf"
    doc = tmp_path / "spans.json"
    doc.write_text(json.dumps([span(int(1e18)), span(int(1e18) + 10**9)], indent=2))
    assert len(read_trace(doc).requests) == 2


def test_a_compact_trace_round_trips(tmp_path):
    t = read_trace(CODELLAMA["prefix1024"])
    out = write_compact(t, tmp_path / "c.jsonl", note="x")
    back = read_trace(out)
    assert back.requests == t.requests
    assert back.meta["prefix_tokens"] == 1024 and back.meta["note"] == "x"


@pytest.mark.parametrize(("text", "message"), [
    ('{"resourceSpans": []}\nnot json\n', r"x\.jsonl, line 2: not JSON"),
    ('{"hello": 1}\n', r"x\.jsonl, line 1: not an OpenTelemetry span export"),
    ('{"resourceSpans": []}\n', r"x\.jsonl: no 'llm_request' spans"),
    ("", r"x\.jsonl: empty"),
])
def test_what_is_not_a_span_export_is_named(tmp_path, text, message):
    p = tmp_path / "x.jsonl"
    p.write_text(text)
    with pytest.raises(TraceError, match=message):
        read_trace(p)


@pytest.mark.parametrize("attr", ["gen_ai.latency.e2e", "gen_ai.latency.time_to_first_token",
                                  "gen_ai.usage.prompt_tokens"])
def test_a_span_without_a_latency_or_size_names_file_line_and_attribute(tmp_path, attr):
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps(span(int(1e18))) + "\n" + json.dumps(span(int(1e18), drop=attr)))
    with pytest.raises(TraceError, match=rf"x\.jsonl, line 2: .*missing attribute {attr}"):
        read_trace(p)


def test_the_vllm_log_gives_the_engine_settings(tmp_path):
    log = tmp_path / "vllm.log"
    log.write_text(
        "INFO vllm.entrypoints.openai.api_server: vLLM API server version 0.10.0\n"
        "INFO vllm.entrypoints.openai.api_server: vLLM API server version 0.11.0\n"
        "INFO non-default args: {'model': '/cache/models/org/M-7b', 'max_num_batched_tokens': "
        "64, 'max_num_seqs': 32}\n"
        "INFO GPU KV cache size: 44,640 tokens\n"
        "INFO Engine 000: ... Prefix cache hit rate: 17.1%\n"
        "INFO Engine 000: ... Prefix cache hit rate: 32.7%\n")
    assert read_vllm_log(log) == {"vllm": "0.11.0", "kv_cache_tokens": 44640,
                                  "prefix_hit_rate_logged": 0.327, "max_num_seqs": 32,
                                  "max_num_batched_tokens": 64, "model": "org/M-7b"}


def test_a_guidellm_sweep_splits_into_its_phases():
    got = [(p.name, p.end - p.start) for p in phases(read_trace(SEVEN_B).requests)]
    assert got[:2] == [("synchronous", 24), ("burst", 21)]
    assert len(got) == 12  # ten constant rates, rising
    rates = [float(name.split()[0]) for name, _ in got[2:]]
    assert rates == sorted(rates) and 0.4 < rates[0] < rates[-1] < 0.61


def test_models_are_compared_without_organisation_and_suffix():
    assert not model_mismatch("meta-llama/Llama-2-7b-hf", "llama-2-7b")
    assert not model_mismatch("codellama/CodeLlama-34b-Instruct-hf", "codellama-34b")
    assert model_mismatch("codellama/CodeLlama-34b-Instruct-hf", "llama-2-7b")
    assert not model_mismatch("", "llama-2-7b")  # a trace that names no model


def test_a_request_that_cannot_fit_fails_the_replay_naming_it():
    t = read_trace(SEVEN_B)
    with pytest.raises(ValueError, match=r"request \d+ .*KV capacity"):
        replay(t, get_llm_preset("7b-h100"), kv_cache_tokens=2048)


def _whole(rep: dict) -> dict:
    return rep["parts"][0]


def test_the_held_out_llama2_7b_trace_against_7b_h100():
    """Not fitted on: the H100 efficiencies come from the CodeLlama-34B sweep trace.
    Pinned at what it measures (docs/fidelity.md): E2E MAPE 2.0 %, TTFT MAPE 8.2 % (the
    8 % aim missed by 0.2 points, inside the spread arrivals moved by 1 ms give), means/
    p50/p90 within 7 %, the burst's E2E +1.9 % (its 21 sequences of 32 KV heads read KV
    unsplit; at the split-KV rate of CodeLlama-34B's steps it was +10.3 %)."""
    rep = report(replay(read_trace(SEVEN_B), get_llm_preset("7b-h100")))
    w = _whole(rep)
    assert w["e2e"]["mape"] < 0.03
    assert w["ttft"]["mape"] < 0.085
    for m in ("ttft", "e2e", "tpot"):
        for s in ("mean", "p50", "p90"):
            assert abs(w[m]["error"][s]) < 0.10, (m, s)
    burst = next(p for p in rep["parts"] if p["phase"] == "burst")
    assert abs(burst["e2e"]["error"]["mean"]) < 0.04
    split = replace(get_llm_preset("7b-h100"), cost=replace(
        get_llm_preset("7b-h100").cost, attn_split_tiles=0.0))
    was = next(p for p in report(replay(read_trace(SEVEN_B), split))["parts"]
               if p["phase"] == "burst")
    assert was["e2e"]["error"]["mean"] > 0.08  # the mechanism is what closed the gap
    assert rep["prefix_hit_rate_as_logged"] == rep["prefix_hit_rate_logged"] == 0.0


@pytest.mark.parametrize("name", ["sweep", "prefix1024", "prefix1024-budget64"])
def test_codellama_34b_h100_on_its_traces(name):
    """Fitted on the sweep; the two prefix traces are held out. TTFT and E2E mean errors
    within 10 % on each, the simulated hit rate (as vLLM 0.11 logs it) within 5 points."""
    rep = report(replay(read_trace(CODELLAMA[name]), get_llm_preset("codellama-34b-h100")))
    w = _whole(rep)
    assert abs(w["ttft"]["error"]["mean"]) < 0.10
    assert abs(w["e2e"]["error"]["mean"]) < 0.10
    assert abs(rep["prefix_hit_rate_as_logged"] - rep["prefix_hit_rate_logged"]) < 0.05


def test_without_prefix_caching_the_prefix_traces_are_far_off():
    """What the simulator did before it cached prefixes: every shared prefix recomputed."""
    t = read_trace(CODELLAMA["prefix1024"])
    p = get_llm_preset("codellama-34b-h100")
    on = _whole(report(replay(t, p)))
    off = _whole(report(replay(t, p, prefix_caching=False)))
    assert off["ttft"]["error"]["mean"] > on["ttft"]["error"]["mean"] + 0.2


def test_lone_requests_met_an_idle_engine_and_kept_it_until_their_first_token():
    R = TracedRequest
    reqs = [R(0.0, 100, 10, 0.3, 1.0),   # the first: a cold server, left out
            R(2.0, 100, 10, 0.1, 1.0),   # lone
            R(2.5, 100, 10, 0.1, 1.0),   # arrives while the one before runs
            R(5.0, 100, 10, 0.2, 0.5),   # the next arrives before its first token
            R(5.1, 100, 10, 0.1, 0.5),   # arrives while the one before runs
            R(9.0, 5000, 10, 0.4, 1.0)]  # lone, but over a 4096-token step
    assert lone_requests(reqs) == [1, 5]
    assert lone_requests(reqs, max_prompt=4096) == [1]


def test_the_lone_residual_is_a_line_in_the_prompt():
    """Measured TTFT = simulated + 2 ms + 1 us per prompt token: the fit recovers both."""
    reqs = [TracedRequest(10.0 * k, p, 5, 0.0, 1.0) for k, p in enumerate((50, 100, 800, 1600, 3000))]
    sim = [0.01 + 2e-5 * r.prompt for r in reqs]
    reqs = [replace(r, ttft=s + 2e-3 + 1e-6 * r.prompt) for r, s in zip(reqs, sim, strict=True)]
    rep = Replayed(GpuTrace("x", reqs), get_llm_preset("7b-h100"), sim, sim, {}, 0)
    got = lone_residual(rep)
    assert got["n"] == 4 and got["prompt_min"] == 100  # the first request left out
    assert got["intercept"] == pytest.approx(2e-3) and got["slope"] == pytest.approx(1e-6)
    assert got["slope_se"] == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match="too few"):
        lone_residual(rep, max_prompt=500)


def test_lone_prefills_per_token_residual_shows_on_llama2_7b_not_on_the_fitted_trace():
    """docs/fidelity.md: a lone Llama-2-7B prefill runs ~0.8 us per prompt token over the
    simulated one (> 3 standard errors); the CodeLlama-34B sweep the presets are fitted on
    gives the same point estimate with an error twice its size, so it cannot pin the term."""
    seven = lone_residual(replay(read_trace(SEVEN_B), get_llm_preset("7b-h100")), 4096)
    assert 0.5e-6 < seven["slope"] < 1.1e-6 and seven["slope"] > 3 * seven["slope_se"]
    sweep = lone_residual(replay(read_trace(CODELLAMA["sweep"]),
                                 get_llm_preset("codellama-34b-h100")), 4096)
    assert sweep["slope_se"] > abs(sweep["slope"])
