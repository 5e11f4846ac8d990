"""The capacity probe: the highest offered rate a configuration sustains, in simulation.

Why: a comparison is only fair when each configuration is loaded relative to its
own measured capacity (a sweep of hand-picked absolute rates can put most points
past one system's saturation and none past another's). Suites with
`relative_load` (sagetui/suites/relative.py) probe each configuration first and
then offer fractions of what this module returns.

Criterion (one short simulation per step, `measure_s` measured after `warmup_s`,
the run's seed): a rate is *sustained* when the achieved throughput (completions
in the window) is at least 95 % of the offered rate (requests issued in the
window) and the latency bound holds — chat TTFT p99 ≤ the loosest chat TTFT SLO
(10 s without one); for workloads without chat, the p99 TTFT of completions, or
else the embedding E2E p99 ≤ the loosest embedding E2E SLO (10 s without one).
A workload with pipeline jobs is measured by them: their E2E p99 ≤ the loosest
pipeline deadline (10 s without one), stages run as in a run (sim.simulate_workload).
A request that never produced the measured event counts as infinitely late.
Search: one step at the configured rate, then doubling (or halving, first to
0.9 × the throughput an overloaded step achieved) until a sustained and an
unsustained rate bracket the capacity, then bisection. The probe writes nothing
to the store; faults of the config are left out (they measure recovery, not
capacity).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ..config import RunConfig
from ..orchestrate.sim import simulate_workload

THROUGHPUT_FRACTION = 0.95
DEFAULT_LIMIT_MS = 10_000.0
PROBE_MEASURE_S = 30.0
PROBE_WARMUP_S = 5.0
BISECTION_STEPS = 6
MAX_BRACKET_STEPS = 12
RATE_ARRIVALS = ("poisson", "constant", "gamma", "onoff")


class ProbeError(ValueError):
    """No capacity could be measured; the message names the part and why."""


@dataclass(frozen=True)
class Criterion:
    """Which latency bounds a sustained rate: class, metric (ttft | e2e) and limit."""

    cls: str
    metric: str
    limit_ms: float
    from_slo: bool

    def text(self) -> str:
        src = "its loosest SLO" if self.from_slo else "the default bound"
        return (f"throughput >= {THROUGHPUT_FRACTION:.0%} of offered and {self.cls} "
                f"{self.metric.upper()} p99 <= {self.limit_ms:g} ms ({src})")


@dataclass(frozen=True)
class ProbeStep:
    rate: float
    offered_rps: float
    throughput_rps: float
    p99_ms: float  # inf when a request never got its measured event
    ok: bool
    why: str  # what failed ("" when sustained)


@dataclass(frozen=True)
class CapacityResult:
    capacity_rps: float
    criterion: Criterion
    steps: tuple[ProbeStep, ...]
    wall_s: float

    def describe(self) -> str:
        return (f"capacity {self.capacity_rps:.1f} req/s ({len(self.steps)} probe steps, "
                f"{self.wall_s:.1f} s; {self.criterion.text()})")


def criterion(cfg: RunConfig) -> Criterion:
    """The latency bound of the workload's main class: chat TTFT, else completion TTFT,
    else embedding E2E — the loosest SLO of that kind over the class and its tiers."""
    mix = cfg.workload.mix
    if mix.get("pipeline", 0) > 0:  # a workload with pipelines is measured by its jobs
        deadlines = [t.deadline_ms for k in cfg.workload.pipelines for t in k.tiers]
        deadlines += [k.deadline_ms for k in cfg.workload.pipelines if k.deadline_ms]
        slo = cfg.workload.slos["pipeline"]
        if not cfg.workload.pipelines:
            deadlines = [b for b in (slo.e2e_ms, *(t.e2e_ms for t in slo.tiers)) if b]
        return Criterion("pipeline", "e2e", max(deadlines) if deadlines else DEFAULT_LIMIT_MS,
                         bool(deadlines))
    cls = next((c for c in ("chat", "completion", "embedding") if mix.get(c, 0) > 0), None)
    if cls is None:
        raise ProbeError(f"{_where(cfg)}: the probe measures chat, completion or embedding "
                         "traffic; this workload has none")
    metric = "e2e" if cls == "embedding" else "ttft"
    slo = cfg.workload.slos[cls]
    bounds = [getattr(o, f"{metric}_ms") for o in (slo, *slo.tiers)]
    bounds = [b for b in bounds if b is not None]
    return Criterion(cls, metric, max(bounds) if bounds else DEFAULT_LIMIT_MS, bool(bounds))


def probe_capacity(cfg: RunConfig, *, measure_s: float = PROBE_MEASURE_S,
                   warmup_s: float = PROBE_WARMUP_S, steps: int = BISECTION_STEPS
                   ) -> CapacityResult:
    """The highest `workload.rate` the config sustains (module docstring), in simulation.

    Raises ProbeError naming the part when the config cannot be probed or no rate
    down to 1/4096 of the configured one is sustained.
    """
    _check_probeable(cfg)
    crit = criterion(cfg)
    t0 = time.perf_counter()
    trail: list[ProbeStep] = []

    def step(rate: float) -> ProbeStep:
        s = _step(cfg, rate, crit, measure_s, warmup_s)
        trail.append(s)
        return s

    lo, hi = _bracket(cfg, step)
    for _ in range(steps):
        if (hi.rate - lo.rate) / lo.rate < 0.005:
            break
        mid = step((lo.rate + hi.rate) / 2)
        lo, hi = (mid, hi) if mid.ok else (lo, mid)
    return CapacityResult(lo.rate, crit, tuple(trail), time.perf_counter() - t0)


def _bracket(cfg: RunConfig, step) -> tuple[ProbeStep, ProbeStep]:
    """A sustained and an unsustained step, starting from the configured rate."""
    first = step(cfg.workload.rate)
    lo, hi = (first, None) if first.ok else (None, first)
    for _ in range(MAX_BRACKET_STEPS):
        if lo is not None and hi is not None:
            return lo, hi
        if hi is None:
            s = step(lo.rate * 2)
            lo, hi = (s, None) if s.ok else (lo, s)
            continue
        s = step(_below(hi))
        lo, hi = (s, hi) if s.ok else (None, s)
    if lo is None:
        raise ProbeError(f"{_where(cfg)}: capacity probe: no rate sustained from "
                         f"{first.rate:.3g} down to {hi.rate:.3g} req/s; at {first.rate:.3g} "
                         f"req/s: {first.why}")
    raise ProbeError(f"{_where(cfg)}: capacity probe: every rate up to {lo.rate:.3g} req/s "
                     "was sustained; the capacity is beyond what the probe tries")


def _below(hi: ProbeStep) -> float:
    """The next rate to try under an unsustained step: 0.9 × the throughput it achieved
    when that was what fell short (the engines' service rate), else half its rate."""
    if 0 < hi.throughput_rps < THROUGHPUT_FRACTION * hi.offered_rps:
        return 0.9 * hi.rate * hi.throughput_rps / hi.offered_rps
    return hi.rate / 2


def _check_probeable(cfg: RunConfig) -> None:
    """Only an open-loop, rate-driven workload on simulated engines has a capacity in
    workload.rate that the probe can measure."""
    w = cfg.workload
    if w.clients is not None:
        raise ProbeError(f"{_where(cfg)}: a closed loop (workload.clients) has no offered rate "
                         "to probe; relative_load needs an open-loop workload")
    if w.arrival.kind not in RATE_ARRIVALS:
        raise ProbeError(f"{_where(cfg)}: arrival {w.arrival.kind!r} does not follow "
                         f"workload.rate; relative_load needs one of {', '.join(RATE_ARRIVALS)}")
    live = [b.name for b in cfg.backends if b.kind != "sim"]
    if live:
        raise ProbeError(f"{_where(cfg)}: the probe simulates, and backends {live} are not "
                         "simulated engines (kind = \"sim\")")


def _step(cfg: RunConfig, rate: float, crit: Criterion, measure_s: float,
          warmup_s: float) -> ProbeStep:
    """One short simulation at `rate`: offered, achieved and the criterion's p99."""
    w = cfg.workload.model_copy(update={"rate": rate, "duration_s": measure_s,
                                        "warmup_s": warmup_s, "seed": cfg.run.seed})
    horizon = w.end_s + crit.limit_ms / 1000 + 5.0
    _, records, _ = simulate_workload(cfg, w, horizon_s=horizon)
    w0, w1 = warmup_s, warmup_s + measure_s
    issued = [o for o in records if o.parent_id is None and w0 <= o.t_intended < w1]
    done = sum(o.status == "completed" and o.t_done is not None and w0 <= o.t_done < w1
               for o in records if o.parent_id is None)
    offered, thr = len(issued) / measure_s, done / measure_s
    measured = [_latency(o, crit.metric) for o in issued if o.cls == crit.cls]
    p99 = _p99_ms(measured)
    why = [] if measured else [f"no {crit.cls} request in the {measure_s:g} s window"]
    if thr < THROUGHPUT_FRACTION * offered:
        why.append(f"throughput {thr:.1f} req/s < {THROUGHPUT_FRACTION:.0%} of offered "
                   f"{offered:.1f}")
    if p99 > crit.limit_ms:
        shown = "never" if math.isinf(p99) else f"{p99:.0f} ms"
        why.append(f"{crit.cls} {crit.metric.upper()} p99 {shown} > {crit.limit_ms:g} ms")
    return ProbeStep(rate, offered, thr, p99, not why, "; ".join(why))


def _latency(o, metric: str) -> float:
    """Seconds from intended send to the first token (ttft) or completion (e2e); inf
    when that never happened."""
    if metric == "ttft":
        end = o.t_first_token if o.status != "rejected" else None
    else:
        end = o.t_done if o.status == "completed" else None
    return math.inf if end is None else end - o.t_intended


def _p99_ms(values: list[float]) -> float:
    """Nearest-rank p99 (an infinite value stays infinite, no interpolation); 0 if empty
    (the step then fails for want of requests, not for latency)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] * 1000


def _where(cfg: RunConfig) -> str:
    return f"part {cfg.run.part}" if cfg.run.part else f"run {cfg.run.name}"
