"""`sagetui fidelity trace` and `compact`: the report, bad input named with exit 2, a
model mismatch warned about, nothing written for a failed replay, a light start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from sagetui.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "gpu_traces"
SEVEN_B = str(DATA / "llama2-7b-h100-sweep.jsonl")


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_a_replay_prints_errors_per_metric_and_phase(tmp_path):
    out = tmp_path / "r.json"
    r = run("fidelity", "trace", SEVEN_B, "--preset", "7b-h100", "--json", str(out))
    assert r.exit_code == 0, r.output
    for text in ("TTFT error", "E2E error", "TPOT error", "synchronous", "burst", "MAPE",
                 "prefix cache hit rate", "vLLM logged 0.0 %"):
        assert text in r.stdout
    rep = json.loads(out.read_text())
    assert rep["preset"] == "7b-h100" and rep["parts"][0]["phase"] == "all"
    assert "warning" not in r.output


def test_a_preset_of_another_model_is_warned_about():
    r = run("fidelity", "trace", SEVEN_B, "--preset", "codellama-34b-h100")
    assert r.exit_code == 0
    assert "warning: the trace's model 'meta-llama/Llama-2-7b-hf' is not the preset's " \
           "(codellama-34b-h100: 'codellama-34b')" in r.stderr


def test_spans_without_latencies_exit_2_naming_file_line_attribute(tmp_path):
    p = tmp_path / "spans.jsonl"
    p.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "name": "llm_request", "startTimeUnixNano": "1", "attributes": [
            {"key": "gen_ai.usage.prompt_tokens", "value": {"intValue": "5"}}]}]}]}]}) + "\n")
    r = run("fidelity", "trace", str(p), "--preset", "7b-h100")
    assert r.exit_code == 2
    assert f"{p}, line 1" in r.stderr and "missing attribute gen_ai.usage.completion_tokens" \
        in r.stderr
    p.write_text("timestamp,class\n0,chat\n")
    r = run("fidelity", "trace", str(p), "--preset", "7b-h100")
    assert r.exit_code == 2 and f"{p}, line 1: not JSON" in r.stderr


def test_a_failed_replay_writes_nothing(tmp_path):
    out = tmp_path / "r.json"
    r = run("fidelity", "trace", SEVEN_B, "--preset", "7b-h100", "--kv-tokens", "1024",
            "--json", str(out))
    assert r.exit_code == 2 and "the replay failed" in r.stderr and "KV capacity" in r.stderr
    assert not out.exists() and not list(tmp_path.iterdir())
    r = run("fidelity", "trace", SEVEN_B, "--preset", "nope")
    assert r.exit_code == 2 and "unknown" in r.stderr


def test_compact_writes_the_settings_and_requests(tmp_path):
    spans = tmp_path / "spans.jsonl"
    spans.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "name": "llm_request", "startTimeUnixNano": "5000000000", "attributes": [
            {"key": k, "value": v} for k, v in (
                ("gen_ai.usage.prompt_tokens", {"intValue": "50"}),
                ("gen_ai.usage.completion_tokens", {"intValue": "5"}),
                ("gen_ai.latency.time_to_first_token", {"doubleValue": 0.02}),
                ("gen_ai.latency.e2e", {"doubleValue": 0.1}))]}]}]}]}) + "\n")
    out = tmp_path / "c.jsonl"
    r = run("fidelity", "compact", str(spans), "--out", str(out), "--model", "m",
            "--prefix-tokens", "16", "--licence", "Apache-2.0")
    assert r.exit_code == 0, r.output
    head, row = (json.loads(x) for x in out.read_text().splitlines())
    assert head["format"] == "sagetui.gpu-trace" and head["model"] == "m"
    assert head["prefix_tokens"] == 16 and head["licence"] == "Apache-2.0"
    assert row == {"t": 0.0, "prompt": 50, "output": 5, "ttft": 0.02, "e2e": 0.1}


def test_fidelity_help_loads_no_simulator():
    probe = ("import sys\nfrom sagetui.cli import main\ntry:\n    main(args=['fidelity', "
             "'trace', '--help'], prog_name='sagetui')\nexcept SystemExit:\n    pass\n"
             "print([m for m in sys.modules if m.startswith(('engine.sim', 'scipy', "
             "'numpy'))], file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60)
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr
