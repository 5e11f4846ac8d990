"""Accessors the table and figure builders share: what a run's workload, system and policy are."""

from __future__ import annotations

from exports.errors import ExportError
from exports.model import RunView, SummaryView

BASELINE_ORDER = ("sage", "vllm-only", "separate")
POLICY_ORDER = ("fifo", "priority", "slo", "hybrid")


def order_of(value: str, order: tuple[str, ...]) -> tuple[int, str]:
    return (order.index(value) if value in order else len(order), value)


def workload_label(run: RunView) -> str:
    """`workload.name` when set, else the arrival process and its rate."""
    w = run.section("workload")
    if w.get("name"):
        return str(w["name"])
    arrival = w.get("arrival", "?")
    rate = run.offered_rate
    return f"{arrival} {rate:g} req/s" if rate is not None else str(arrival)


def pattern_label(run: RunView) -> str:
    """The traffic pattern of a policy comparison: `workload.pattern`, else the workload label."""
    w = run.section("workload")
    return str(w["pattern"]) if w.get("pattern") else workload_label(run)


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


def overhead_pct(run: RunView) -> float:
    """Control-plane time per request as a percentage of mean E2E latency."""
    s = need_summary(run, "all")
    over = s.extra.get("overhead_us")
    if not isinstance(over, int | float):
        raise ExportError(f"run {run.id} ({run.name}): summary 'all' has no extra_json.overhead_us")
    return 100.0 * (over / 1000.0) / latency(run, "all", "e2e", "mean")


def pool_label(run: RunView) -> str:
    """GPU-only / CPU-only / mixed, judged on the backends serving embeddings (else all)."""
    serving = [b for b in run.backends if b.role in ("embedding", "both")] or list(run.backends)
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
    for b in run.backends:
        kind = b.device_kind or b.device
        counts[kind] = counts.get(kind, 0) + 1
    return " + ".join(f"{n}×{k}" for k, n in counts.items())


def cost_per_hour(run: RunView) -> float:
    total = sum(b.price_per_hour for b in run.backends)
    if total <= 0:
        raise ExportError(f"run {run.id} ({run.name}): backends have no price_per_hour")
    return total
