"""`sagetui fidelity`: replay a measured vLLM trace in simulation and say how far off it is.

Why a command of its own: a GPU preset is only as good as its error on real
measurements, and vLLM exports them as request spans (`--otlp-traces-endpoint`);
replaying one against a preset should not need a config. The simulator loads
inside the commands only, so `sagetui --help` stays fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from .common import fail


@click.group("fidelity")
def command() -> None:
    """Simulator fidelity against measured vLLM traces (OpenTelemetry request spans)."""


def _load(path: str, vllm_log: str | None, prefix_tokens: int | None):
    from engine.sim.otel import TraceError, read_trace, read_vllm_log

    try:
        trace = read_trace(path)
        if vllm_log:
            trace.meta.update(read_vllm_log(vllm_log))
    except TraceError as e:
        fail(str(e))
    if prefix_tokens is not None:
        trace.meta["prefix_tokens"] = prefix_tokens
    return trace


@command.command("trace")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--preset", required=True, help="LLM preset to replay against (e.g. 7b-h100).")
@click.option("--vllm-log", type=click.Path(dir_okay=False),
              help="vLLM server log: version, KV cache size, scheduler limits, logged hit rate.")
@click.option("--prefix-tokens", type=click.IntRange(min=0),
              help="Tokens every prompt shares at its start (guidellm's prefix_tokens).")
@click.option("--max-num-seqs", type=click.IntRange(min=1), help="Override the trace's.")
@click.option("--max-num-batched-tokens", type=click.IntRange(min=1),
              help="Override the trace's.")
@click.option("--kv-tokens", type=click.IntRange(min=16),
              help="KV cache size in tokens (default: the one vLLM logged, else the preset's).")
@click.option("--prefix-caching/--no-prefix-caching", default=True, show_default=True,
              help="vLLM's automatic prefix caching in the simulated engine.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False),
              help="Also write the report as JSON here (only when the replay succeeds).")
def trace(path: str, preset: str, vllm_log: str | None, prefix_tokens: int | None,
          max_num_seqs: int | None, max_num_batched_tokens: int | None, kv_tokens: int | None,
          prefix_caching: bool, json_out: str | None) -> None:
    """Replay the requests of PATH (OTLP/JSON spans or a compact trace) against PRESET.

    Prints, per metric (TTFT, E2E, TPOT), the simulated statistic's error against the
    measured one (mean, p50, p90, p99) and the per-request MAPE, for the whole trace
    and each load phase, and the prefix cache hit rate beside the one vLLM logged.
    """
    from engine.sim.presets import get_llm_preset
    from engine.sim.replay import format_report, model_mismatch, replay, report

    tr = _load(path, vllm_log, prefix_tokens)
    try:
        p = get_llm_preset(preset)
    except (KeyError, ValueError) as e:
        fail(str(e.args[0] if e.args else e))
    if model_mismatch(tr.model, p.model):
        click.echo(f"warning: the trace's model {tr.model!r} is not the preset's "
                   f"({preset}: {p.model!r})", err=True)
    try:
        rep = report(replay(tr, p, prefix_caching=prefix_caching, kv_cache_tokens=kv_tokens,
                            max_num_seqs=max_num_seqs,
                            max_num_batched_tokens=max_num_batched_tokens))
    except ValueError as e:
        fail(f"{path}: the replay failed: {e}")
    click.echo(format_report(rep))
    if json_out:
        tmp = Path(f"{json_out}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(rep, indent=1, sort_keys=True) + "\n")
        tmp.replace(json_out)


@command.command("compact")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Compact trace to write (JSON lines).")
@click.option("--vllm-log", type=click.Path(dir_okay=False),
              help="vLLM server log to take the engine settings from.")
@click.option("--prefix-tokens", type=click.IntRange(min=0),
              help="Tokens every prompt shares at its start.")
@click.option("--model", help="The served model, when the spans do not name it.")
@click.option("--device", help="The GPU it ran on (e.g. H100).")
@click.option("--source", help="Where the spans come from (repository, commit, path).")
@click.option("--licence", help="The licence the spans are published under.")
@click.option("--workload", help="What load produced them (e.g. the benchmark's settings).")
def compact(path: str, out: str, vllm_log: str | None, prefix_tokens: int | None,
            model: str | None, device: str | None, source: str | None,
            licence: str | None, workload: str | None) -> None:
    """Write the requests of PATH (OTLP/JSON spans) as a compact trace: a header with
    the engine settings, one line per request (arrival, sizes, TTFT, E2E, queue)."""
    from engine.sim.otel import write_compact

    tr = _load(path, vllm_log, prefix_tokens)
    if model:
        tr.meta["model"] = model
    write_compact(tr, out, device=device, source=source, licence=licence, workload=workload)
    click.echo(f"{out}: {len(tr.requests)} requests")
