"""Turn an engine's Prometheus `/metrics` text into `EngineStats`.

Why: the control plane's engine-state events need vLLM's own view of its load
(running, waiting, KV-cache use). Names follow vLLM; `vllm:gpu_cache_usage_perc`
is the pre-V1 name of `vllm:kv_cache_usage_perc`. Our own servers (serve-embed,
serve-sim) export the same names, so one scraper reads every engine.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from engine.spec import EngineStats

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_USE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
_WANTED = (RUNNING, WAITING, *KV_USE)


class MetricsError(ValueError):
    """The metrics text lacks a needed series; the message names it and the source."""


def parse_engine_stats(text: str, source: str = "/metrics") -> EngineStats:
    """Sum running/waiting over all label sets (data-parallel engines); KV use is the mean.

    Only the few lines we need are parsed: vLLM's full exposition is large and is
    scraped often.
    """
    lines = [ln for ln in text.splitlines() if ln.startswith(_WANTED)]
    values: dict[str, list[float]] = {}
    for family in text_string_to_metric_families("\n".join(lines) + "\n"):
        for sample in family.samples:
            if sample.name in _WANTED:
                values.setdefault(sample.name, []).append(float(sample.value))
    for name in (RUNNING, WAITING):
        if name not in values:
            raise MetricsError(f"{source}: metric {name} not found")
    kv = next((values[n] for n in KV_USE if n in values), None)
    if kv is None:
        raise MetricsError(f"{source}: neither {KV_USE[0]} nor {KV_USE[1]} found")
    return EngineStats(
        running=int(round(sum(values[RUNNING]))),
        waiting=int(round(sum(values[WAITING]))),
        kv_use=sum(kv) / len(kv),
    )
