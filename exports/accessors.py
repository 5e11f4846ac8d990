"""Accessors the table and figure builders share: what a run's workload, system and policy are."""

from __future__ import annotations

from exports.errors import ExportError
from exports.model import RunView, SummaryView

BASELINE_ORDER = ("sage", "vllm-only", "separate")
POLICY_ORDER = ("fifo", "priority", "slo", "hybrid")


def order_of(value: str, order: tuple[str, ...]) -> tuple[int, str]:
    return (order.index(value) if value in order else len(order), value)


def arrival_label(run: RunView) -> str:
    """The arrival process's name: `workload.arrival` as text, or its `kind` when a table."""
    arrival = run.section("workload").get("arrival", "?")
    if isinstance(arrival, dict):
        return str(arrival.get("kind", "?"))
    return str(arrival)


def workload_label(run: RunView) -> str:
    """`workload.name` when set, else the arrival process and its rate — as × capacity
    when the run carries a probed capacity, so systems of different capacities share a row
    at the same relative load."""
    w = run.section("workload")
    if w.get("name"):
        return str(w["name"])
    if run.load_fraction is not None:
        return f"{arrival_label(run)} {run.load_fraction:g}× capacity"
    rate = run.offered_rate
    return f"{arrival_label(run)} {rate:g} req/s" if rate is not None else arrival_label(run)


def load_label(run: RunView) -> str:
    """Offered load: `0.95× capacity` when the run carries a probed capacity, else req/s."""
    if run.load_fraction is not None:
        return f"{run.load_fraction:g}× capacity"
    rate = run.offered_rate
    return f"{rate:g} req/s" if rate is not None else ""


def load_order(run: RunView) -> float:
    """Sort key of load_label: the fraction, else the rate."""
    if run.load_fraction is not None:
        return run.load_fraction
    return run.offered_rate or 0.0


def pattern_label(run: RunView) -> str:
    """A policy comparison's traffic pattern: `workload.pattern`, else the suite part, else the arrival."""
    w = run.section("workload")
    if w.get("pattern"):
        return str(w["pattern"])
    return run.part or arrival_label(run)


def baseline(run: RunView) -> str:
    return str(run.section("control_plane").get("baseline", "sage"))


def policy(run: RunView) -> str:
    value = run.section("control_plane").get("policy")
    if not value:
        raise ExportError(f"run {run.id} ({run.name}): config has no control_plane.policy")
    return str(value)


def need_summary(run: RunView, cls: str) -> SummaryView:
    s = run.summary(cls)
    if s is None:
        raise ExportError(f"run {run.id} ({run.name}) has no summary for request class {cls!r}")
    return s


def latency(run: RunView, cls: str, metric: str, stat: str) -> float:
    value = need_summary(run, cls).latency(metric, stat)
    if value is None:
        raise ExportError(
            f"run {run.id} ({run.name}): summary {cls!r} has no {metric}.{stat} in metrics_json"
        )
    return value


def slo_pct(run: RunView, cls: str = "all") -> float:
    value = need_summary(run, cls).slo_attainment
    if value is None:
        raise ExportError(f"run {run.id} ({run.name}): summary {cls!r} has no slo_attainment")
    return 100.0 * value


def overhead_ms(run: RunView) -> float:
    """Mean control-plane decision time per request, in ms.

    Sources, in this order (docs/exports.md): the `overhead` distribution of summary
    'all' (metrics_json.overhead.mean, ms: loadgen's aggregate, live and sim), the
    simulator's extra_json.control_plane.overhead_us_per_request, extra_json.overhead_us.
    """
    s = need_summary(run, "all")
    mean = s.latency("overhead", "mean")
    if mean is not None:
        return mean
    cp = s.extra.get("control_plane")
    if isinstance(cp, dict) and isinstance(cp.get("overhead_us_per_request"), int | float):
        return cp["overhead_us_per_request"] / 1000.0
    if isinstance(s.extra.get("overhead_us"), int | float):
        return s.extra["overhead_us"] / 1000.0
    raise ExportError(f"run {run.id} ({run.name}): summary 'all' has no control-plane overhead "
                      "(metrics_json.overhead.mean or extra_json.control_plane.overhead_us_per_request)")


def overhead_pct(run: RunView) -> float:
    """Control-plane time per request as a percentage of mean E2E latency."""
    return 100.0 * overhead_ms(run) / latency(run, "all", "e2e", "mean")


def serving_backends(run: RunView) -> list:
    """The backends serving embeddings (role embedding/both); all of them when none is marked."""
    return [b for b in run.backends if b.role in ("embedding", "both")] or list(run.backends)


def pool_label(run: RunView) -> str:
    """GPU-only / CPU-only / mixed, judged on the backends serving embeddings."""
    serving = serving_backends(run)
    if not serving:
        raise ExportError(f"run {run.id} ({run.name}) has no backend rows")
    devices = {b.device for b in serving}
    if devices == {"gpu"}:
        return "GPU-only"
    if devices == {"cpu"}:
        return "CPU-only"
    return "mixed"


def pool_detail(run: RunView) -> str:
    counts: dict[str, int] = {}
    for b in serving_backends(run):
        kind = b.device_kind or b.device
        counts[kind] = counts.get(kind, 0) + 1
    return " + ".join(f"{n}×{k}" for k, n in counts.items())


def cost_per_hour(run: RunView) -> float:
    """Price per hour of the backends serving embeddings (the part that differs between pools)."""
    total = sum(b.price_per_hour for b in serving_backends(run))
    if total <= 0:
        raise ExportError(f"run {run.id} ({run.name}): the embedding backends have no "
                          "price_per_hour (backend rows say 0)")
    return total
