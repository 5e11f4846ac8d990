"""The figure registry: name -> (description, builder)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exports.context import ExportContext
from exports.figures.agents import accuracy_latency
from exports.figures.base import FigureResult
from exports.figures.cost import cost_performance
from exports.figures.fairness import fairness
from exports.figures.pipelines import pipeline_stages
from exports.figures.policies import latency_cdf, queue_depth, wait_distribution
from exports.figures.rate import latency_vs_rate, slo_vs_load
from exports.figures.scaling import throughput_vs_backends


@dataclass(frozen=True)
class FigureSpec:
    name: str
    description: str
    build: Callable[[ExportContext], FigureResult]


FIGURES: dict[str, FigureSpec] = {f.name: f for f in (
    FigureSpec("latency_vs_rate", "p50/p95/p99 E2E latency vs offered rate, saturation point marked", latency_vs_rate),
    FigureSpec("throughput_vs_backends", "Throughput vs number of backends with the ideal linear line", throughput_vs_backends),
    FigureSpec("latency_cdf", "CDF of chat TTFT per policy (from HDR histograms)", latency_cdf),
    FigureSpec("wait_distribution", "Queue-wait distribution per policy (p1/p25/p50/p75/p99 boxes)", wait_distribution),
    FigureSpec("queue_depth", "Control-plane queue depth over time per policy (samples)", queue_depth),
    FigureSpec("slo_vs_load", "SLO attainment vs offered load", slo_vs_load),
    FigureSpec("fairness", "Per-client latency and Jain fairness vs number of clients", fairness),
    FigureSpec("agent_accuracy_latency", "Agent strategies: accuracy per category vs item latency p50/p99 (bootstrap CIs)", accuracy_latency),
    FigureSpec("pipeline_stages", "Pipeline latency as stacked stages per pipeline kind and policy", pipeline_stages),
    FigureSpec("cost_performance", "Throughput per dollar-hour and cost per 1M requests per hardware pool", cost_performance),
)}
