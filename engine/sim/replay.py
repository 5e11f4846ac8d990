"""Replay a measured vLLM trace through the simulated engine and say how far off it is.

Each traced request is submitted to a `SimLLMEngine` at its measured arrival
with its measured sizes, under the engine settings the trace was taken with
(`max_num_seqs`, `max_num_batched_tokens`, the KV cache size vLLM logged) and
the preset's cost model. A span starts at the request's arrival in the engine,
so the simulated TTFT and E2E are measured from submission, as vLLM measures
them. A trace that declares a shared prompt prefix (`prefix_tokens`, as a
guidellm run with `prefix_tokens` sends) replays it as one prefix-cache key.

The report gives, per metric (TTFT, E2E, TPOT), the simulated statistic's
error against the measured one (mean, p50, p90, p99) and the per-request mean
absolute percentage error, for the whole trace and per load phase, plus the
simulated prefix-cache hit rate beside the one vLLM logged.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace
from typing import Any

from engine.sim.cost import LLMPreset
from engine.sim.llm import SimLLMEngine
from engine.sim.otel import GpuTrace, TracedRequest

METRICS = ("ttft", "e2e", "tpot")
STATS = ("mean", "p50", "p90", "p99")
PREFIX_KEY = "trace-prefix"


@dataclass
class Phase:
    """A run of requests of one load shape (guidellm sweep: synchronous, a burst, rates)."""

    name: str
    start: int  # index of its first request
    end: int  # one past its last


def phases(reqs: list[TracedRequest]) -> list[Phase]:
    """Split a sweep into its load phases from the arrivals alone.

    Why heuristics: the spans do not say which benchmark of a sweep sent them.
    guidellm runs one request at a time first (each arrives after the previous one
    ended), then sends every request at once (arrivals within a second), then
    constant rates, one after another with a pause to drain between them: a gap
    over 2.5x the phase's typical inter-arrival starts the next. Near-simultaneous
    arrivals (the client catching up) do not set a phase's typical gap.
    """
    n = len(reqs)
    out: list[Phase] = []
    i = 1
    while i < n and reqs[i].t >= reqs[i - 1].t + reqs[i - 1].e2e - 1e-3:
        i += 1
    if i >= 3:
        out.append(Phase("synchronous", 0, i))
    else:
        i = 0
    if i < n:
        j = i
        while j < n and reqs[j].t - reqs[i].t < 1.0:
            j += 1
        if j - i >= 5 and (j == n or reqs[j].t - reqs[j - 1].t > 1.0):
            out.append(Phase("burst", i, j))
            i = j
    start, gaps = i, list[float]()
    for k in range(i + 1, n):
        g = reqs[k].t - reqs[k - 1].t
        typical = statistics.median(gaps) if len(gaps) >= 2 else None
        if typical is not None and g > 2.5 * typical and not _skipped(reqs, k, typical):
            out.append(Phase(_rate_name(reqs[start:k]), start, k))
            start, gaps = k, []
        elif g > 0.1:
            gaps.append(g)
    if start < n:
        out.append(Phase(_rate_name(reqs[start:]), start, n))
    return out


def _skipped(reqs: list[TracedRequest], k: int, typical: float) -> bool:
    """Whether the gap before request k is requests missing from the trace (a whole
    number of the phase's gaps, and the same gaps after it) rather than a new phase."""
    g = reqs[k].t - reqs[k - 1].t
    m = round(g / typical)
    if abs(g - m * typical) > 0.05 * typical:
        return False
    after = [b.t - a.t for a, b in zip(reqs[k:k + 5], reqs[k + 1:k + 6], strict=False)
             if b.t - a.t > 0.1]
    return bool(after) and abs(statistics.median(after) / typical - 1) <= 0.02


def _rate_name(reqs: list[TracedRequest]) -> str:
    gaps = [b.t - a.t for a, b in zip(reqs, reqs[1:], strict=False) if b.t - a.t > 0.05]
    if not gaps:
        return "cluster"
    return f"{1 / statistics.median(gaps):.2f} req/s"


@dataclass
class Replayed:
    """Per request: measured and simulated TTFT / E2E (s), and the run's counters."""

    trace: GpuTrace
    preset: LLMPreset
    sim_ttft: list[float]
    sim_e2e: list[float]
    prefix: dict
    preemptions: int
    settings: dict = field(default_factory=dict)


def engine_preset(trace: GpuTrace, preset: LLMPreset, **override) -> LLMPreset:
    """The preset under the engine settings the trace was measured with: its KV cache
    size (whole blocks) and scheduler limits, where known; `override` wins."""
    meta = {**trace.meta, **{k: v for k, v in override.items() if v is not None}}
    kw: dict[str, Any] = {}
    if meta.get("kv_cache_tokens"):
        kw["kv_capacity_tokens"] = int(meta["kv_cache_tokens"]) // preset.block_size * \
            preset.block_size
    for k in ("max_num_seqs", "max_num_batched_tokens"):
        if meta.get(k):
            kw[k] = int(meta[k])
    return replace(preset, **kw)


def replay(trace: GpuTrace, preset: LLMPreset, *, prefix_tokens: int | None = None,
           prefix_caching: bool = True, **override) -> Replayed:
    """Simulate every traced request; raise ValueError (naming it) if one cannot run."""
    p = engine_preset(trace, preset, **override)
    pt = prefix_tokens if prefix_tokens is not None else int(trace.meta.get("prefix_tokens") or 0)
    eng = SimLLMEngine(p, prefix_caching=prefix_caching, log_hit_rate=True)
    reqs = trace.requests
    first: dict[int, float] = {}
    done: dict[int, float] = {}
    i = 0
    while True:
        te = eng.next_event_time()
        ta = reqs[i].t if i < len(reqs) else None
        if te is None and ta is None:
            break
        if ta is not None and (te is None or ta <= te):
            r = reqs[i]
            pre = (PREFIX_KEY, min(pt, r.prompt)) if pt else None
            try:
                eng.submit(i, r.prompt, r.output, 2, r.t, prefix=pre)
            except ValueError as e:
                raise ValueError(f"request {i} (arrival {r.t:.3f} s): {e}") from None
            i += 1
            continue
        assert te is not None  # not both None (above), and no arrival is due first
        for ev in eng.advance(te):
            if ev.kind == "first_token":
                first[ev.req_id] = ev.t
            elif ev.kind == "done":
                done[ev.req_id] = ev.t
    ttft = [first.get(k, done[k]) - r.t for k, r in enumerate(reqs)]
    e2e = [done[k] - r.t for k, r in enumerate(reqs)]
    settings = {"kv_cache_tokens": p.kv_capacity_tokens, "max_num_seqs": p.max_num_seqs,
                "max_num_batched_tokens": p.max_num_batched_tokens, "prefix_tokens": pt,
                "prefix_caching": prefix_caching}
    return Replayed(trace, preset, ttft, e2e, eng.prefix_stats(), eng.preemptions, settings)


def _q(xs: list[float], q: float) -> float:
    s = sorted(xs)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _stats(xs: list[float]) -> dict:
    return {"mean": sum(xs) / len(xs), "p50": _q(xs, 0.5), "p90": _q(xs, 0.9),
            "p99": _q(xs, 0.99)}


def _pairs(rep: Replayed, metric: str, idx: range) -> tuple[list[float], list[float]]:
    """(measured, simulated) values of one metric over the requests in idx."""
    reqs = rep.trace.requests
    meas, sim = [], []
    for k in idx:
        r = reqs[k]
        if metric == "ttft":
            m, s = r.ttft, rep.sim_ttft[k]
        elif metric == "e2e":
            m, s = r.e2e, rep.sim_e2e[k]
        else:  # time per output token after the first
            if r.output < 2:
                continue
            m = (r.e2e - r.ttft) / (r.output - 1)
            s = (rep.sim_e2e[k] - rep.sim_ttft[k]) / (r.output - 1)
        if m > 0:
            meas.append(m)
            sim.append(s)
    return meas, sim


def errors(rep: Replayed, metric: str, idx: range) -> dict | None:
    """Relative error of each statistic (sim / measured − 1) and the per-request MAPE."""
    meas, sim = _pairs(rep, metric, idx)
    if not meas:
        return None
    ms, ss = _stats(meas), _stats(sim)
    out = {"n": len(meas), "measured": ms, "simulated": ss,
           "error": {k: ss[k] / ms[k] - 1 for k in STATS},
           "mape": sum(abs(s - m) / m for m, s in zip(meas, sim, strict=True)) / len(meas)}
    return out


def report(rep: Replayed) -> dict:
    """Errors per metric for the whole trace and per load phase, and the hit rates."""
    reqs = rep.trace.requests
    ranges = [("all", range(len(reqs)))] + [(ph.name, range(ph.start, ph.end))
                                            for ph in phases(reqs)]
    parts: list[dict] = []
    out: dict[str, Any] = {"trace": rep.trace.path, "model": rep.trace.model, "preset": rep.preset.name,
           "preset_model": rep.preset.model, "preset_source": rep.preset.source,
           "requests": len(reqs), "settings": rep.settings, "preemptions": rep.preemptions,
           "prefix_hit_rate": rep.prefix.get("hit_rate"),
           "prefix_hit_rate_new": rep.prefix.get("hit_rate_new"),
           "prefix_hit_rate_as_logged": rep.prefix.get("hit_rate_logged"),
           "prefix_hit_rate_logged": rep.trace.meta.get("prefix_hit_rate_logged"),
           "parts": parts}
    for name, idx in ranges:
        parts.append({"phase": name, "requests": len(idx),
                      **{m: errors(rep, m, idx) for m in METRICS}})
    return out


def lone_requests(reqs: list[TracedRequest], max_prompt: int | None = None) -> list[int]:
    """Indices of the requests that met an idle engine and had it to themselves until
    their first token: every earlier request had ended before it arrived, and the next
    one arrived after its first token. The trace's first request (a cold server) is left
    out; with `max_prompt`, so are prompts over it (one prefill step at most).

    Why: their TTFT is one prefill step plus what lies outside the engine, with no
    queueing and no step in flight to wait for, so measured minus simulated against
    the prompt separates a per-token error from a fixed one (docs/fidelity.md)."""
    out: list[int] = []
    busy_until = reqs[0].t + reqs[0].e2e if reqs else 0.0
    for k in range(1, len(reqs)):
        r = reqs[k]
        idle = busy_until <= r.t
        busy_until = max(busy_until, r.t + r.e2e)
        if not idle or (max_prompt is not None and r.prompt > max_prompt):
            continue
        if k + 1 < len(reqs) and reqs[k + 1].t < r.t + r.ttft:
            continue
        out.append(k)
    return out


def lone_residual(rep: Replayed, max_prompt: int | None = None) -> dict:
    """Measured minus simulated TTFT of the lone requests, fitted as a + b·prompt by
    least squares: a (s), b (s per token), their standard errors, n and the prompt range."""
    reqs = rep.trace.requests
    ks = lone_requests(reqs, max_prompt)
    if len(ks) < 3:
        raise ValueError(f"{rep.trace.path}: {len(ks)} lone requests, too few for a line")
    xs = [float(reqs[k].prompt) for k in ks]
    ys = [reqs[k].ttft - rep.sim_ttft[k] for k in ks]
    if min(xs) == max(xs):
        raise ValueError(f"{rep.trace.path}: every lone request has the same prompt size")
    from scipy.stats import linregress  # here: `sagetui fidelity trace` does not need scipy

    fit = linregress(xs, ys)
    return {"n": len(xs), "prompt_min": int(min(xs)), "prompt_max": int(max(xs)),
            "intercept": float(fit.intercept), "slope": float(fit.slope),
            "intercept_se": float(fit.intercept_stderr), "slope_se": float(fit.stderr),
            "mean": sum(ys) / len(ys)}


def model_mismatch(trace_model: str, preset_model: str) -> bool:
    """Whether a trace's model and a preset's look like different models (names
    compared without organisation, case and the `-hf` suffix)."""
    def norm(s: str) -> str:
        s = s.lower().rsplit("/", 1)[-1]
        return s[:-3] if s.endswith("-hf") else s
    a, b = norm(trace_model), norm(preset_model)
    return bool(a and b) and a not in b and b not in a


def format_report(rep: dict) -> str:
    """The report as text tables: one per metric, a row per part (all, phases)."""
    lines = [f"trace {rep['trace']} ({rep['requests']} requests, model "
             f"{rep['model'] or 'not named'}) vs preset {rep['preset']} "
             f"({rep['preset_source'] or 'no source named'})"]
    s = rep["settings"]
    lines.append(f"engine: KV {s['kv_cache_tokens']:,} tokens, max_num_seqs "
                 f"{s['max_num_seqs']}, max_num_batched_tokens {s['max_num_batched_tokens']}, "
                 f"shared prefix {s['prefix_tokens']} tokens, prefix caching "
                 f"{'on' if s['prefix_caching'] else 'off'}; preemptions {rep['preemptions']}")
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f} %"

    lines.append(f"prefix cache hit rate: simulated {pct(rep['prefix_hit_rate_as_logged'])} as "
                 f"vLLM 0.11 logs it (last 1000 look-ups, retries and recomputations "
                 f"included), vLLM logged {pct(rep['prefix_hit_rate_logged'])}; simulated "
                 f"over admissions {pct(rep['prefix_hit_rate'])}, new requests only "
                 f"{pct(rep['prefix_hit_rate_new'])}")
    for m in METRICS:
        lines.append("")
        lines.append(f"{m.upper()} error (simulated / measured - 1)")
        lines.append(f"{'part':<16} {'n':>4} {'meas mean':>10} {'mean':>8} {'p50':>8} "
                     f"{'p90':>8} {'p99':>8} {'MAPE':>7}")
        for part in rep["parts"]:
            e = part[m]
            if e is None:
                continue
            err = e["error"]
            lines.append(f"{part['phase']:<16} {e['n']:>4} "
                         f"{1000 * e['measured']['mean']:>8.1f}ms "
                         + " ".join(f"{100 * err[k]:>+7.1f}%" for k in STATS)
                         + f" {100 * e['mape']:>6.1f}%")
    return "\n".join(lines)
