"""THE metric definitions (docs/loadgen.md) and the aggregation of records.

Why one module: the live runner, the simulator's outcomes and the exports'
captions must agree on what "TTFT" or "goodput" means. Every latency is
measured from the intended send time (no coordinated omission); the `_sent`
variants from the actual send. See docs/loadgen.md for the definitions.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from vocab import Request

HIST_MIN_US = 1
HIST_MAX_US = 3_600_000_000  # one hour
HIST_DIGITS = 3
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9))
LLM_CLASSES = ("chat", "completion", "pipeline")
# Reason kinds of a request the control plane dropped from its queue once its
# deadline could no longer be met (counted as `shed`; rejected at arrival is not).
SHED_REASONS = ("slo_shed",)
# A pipeline job's reason names the stage that failed it (`stage_<name>: ..`; older
# simulated runs `embed: ..`).
_STAGE_PREFIXES = ("embed", "chat", "stage_embed", "stage_chat")

# ------------------------------------------------------------ per request (s)


def lateness(r: Request) -> float | None:
    """sent − intended."""
    return None if r.t_sent is None else r.t_sent - r.t_intended


def ttft(r: Request) -> float | None:
    """first token − intended send."""
    return None if r.t_first_token is None else r.t_first_token - r.t_intended


def e2e(r: Request) -> float | None:
    """done − intended send (completed requests only)."""
    if r.status != "completed" or r.t_done is None:
        return None
    return r.t_done - r.t_intended


def ttft_sent(r: Request) -> float | None:
    """first token − actual send."""
    if r.t_first_token is None or r.t_sent is None:
        return None
    return r.t_first_token - r.t_sent


def e2e_sent(r: Request) -> float | None:
    if r.status != "completed" or r.t_done is None or r.t_sent is None:
        return None
    return r.t_done - r.t_sent


def tpot(r: Request) -> float | None:
    """(E2E − TTFT) / (output tokens − 1), as vLLM defines it (the record's
    own definition, which its TPOT SLO is judged by)."""
    return r.tpot_s


def itl(r: Request) -> list[float]:
    """Gaps between successive streamed chunks (pooled over requests)."""
    if r.status != "completed":
        return []
    c = r.chunk_times
    return [c[i + 1] - c[i] for i in range(len(c) - 1)]


def queue_wait(r: Request) -> float | None:
    """dispatched − received by the gateway (or the gateway's header value)."""
    if r.t_dispatched is not None and r.t_received is not None:
        return r.t_dispatched - r.t_received
    if r.queue_wait_ms is not None:
        return r.queue_wait_ms / 1000
    return None


def wait(r: Request) -> float | None:
    """How long a request waited for service to start: first token (else done) − intended."""
    end = r.t_first_token if r.t_first_token is not None else r.t_done
    return None if end is None else end - r.t_intended


def jain(values: Sequence[float]) -> float | None:
    """Jain's fairness index (Σx)² / (n·Σx²): 1 = equal, 1/n = one client gets all."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return None
    sq = float((x * x).sum())
    return 1.0 if sq == 0 else float(x.sum() ** 2 / (x.size * sq))


SCALAR_METRICS = {
    "ttft": ttft, "e2e": e2e, "tpot": tpot, "queue_wait": queue_wait,
    "lateness": lateness, "ttft_sent": ttft_sent, "e2e_sent": e2e_sent,
}

# ------------------------------------------------------------ histograms


def new_histogram() -> HdrHistogram:
    """1 µs .. 1 h, 3 significant digits (same as store.histograms.new_histogram)."""
    return HdrHistogram(HIST_MIN_US, HIST_MAX_US, HIST_DIGITS)


def lowest_equivalent_us(us: np.ndarray) -> np.ndarray:
    """The value HDR (1 µs, 3 digits: 2048 sub-buckets) files each value under.

    Recording these instead of the raw values gives the same histogram, and
    lets equal ones be recorded once with a count (aggregation of 30k requests
    in well under a second instead of seconds).
    """
    us = us.astype(np.int64)
    shift = np.zeros_like(us)
    big = us >= 2048
    shift[big] = np.floor(np.log2(us[big])).astype(np.int64) - 10
    return (us >> shift) << shift


class _Hists:
    """Values (s) by (metric, cls, window); histograms are built once at the end,
    the whole-window ones and class `all` from the same values."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, int], list[float]] = defaultdict(list)
        self.h: dict[tuple[str, str, int | None], HdrHistogram] = {}
        self.clamped = 0

    def add(self, metric: str, cls: str, win: int, seconds: float) -> None:
        self.values[(metric, cls, win)].append(seconds)

    def build(self) -> None:
        groups: dict[tuple[str, str, int | None], list[np.ndarray]] = defaultdict(list)
        key: tuple[str, str, int | None]
        for (metric, cls, win), vals in self.values.items():
            arr = np.rint(np.asarray(vals) * 1e6)
            self.clamped += int(((arr < 0) | (arr > HIST_MAX_US)).sum())
            arr = lowest_equivalent_us(np.clip(arr, 0, HIST_MAX_US))
            for key in ((metric, cls, win), (metric, cls, None)):
                groups[key].append(arr)
            if cls != "all" and not metric.startswith("stage_"):
                for key in ((metric, "all", win), (metric, "all", None)):
                    groups[key].append(arr)
        for key, parts in groups.items():
            h = new_histogram()
            uniq, counts = np.unique(np.concatenate(parts), return_counts=True)
            for v, c in zip(uniq.tolist(), counts.tolist(), strict=True):
                h.record_value(v, c)
            self.h[key] = h


def _mean_us(h: HdrHistogram) -> float:
    """HdrHistogram's mean over non-empty buckets only (its get_mean_value walks
    every bucket in Python: ~0.1 s per call, minutes per run)."""
    n = h.get_total_count()
    if n == 0:
        return 0.0
    counts = np.ctypeslib.as_array(h.counts, shape=(h.counts_len,))
    idx = np.flatnonzero(counts)
    vals = np.fromiter((h._hdr_median_equiv_value(h.get_value_from_index(int(i))) for i in idx),
                       dtype=np.float64, count=len(idx))
    return float(vals @ counts[idx].astype(np.float64)) / n


def percentiles_us(h: HdrHistogram, qs: Sequence[float]) -> list[int]:
    """h.get_value_at_percentile(q) for each q, in one numpy pass over the
    non-empty buckets (the library walks every bucket in Python per call)."""
    n = h.get_total_count()
    if n == 0:
        return [0 for _ in qs]
    counts = np.ctypeslib.as_array(h.counts, shape=(h.counts_len,))
    idx = np.flatnonzero(counts)
    cum = np.cumsum(counts[idx])
    out = []
    for q in qs:
        target = max(1, int(min(q, 100.0) / 100 * n + 0.5))
        j = int(np.searchsorted(cum, target))
        out.append(h.get_highest_equivalent_value(h.get_value_from_index(int(idx[j]))))
    return out


def distribution_ms(h: HdrHistogram) -> dict:
    """p50..p999, mean, max (ms) and count of a microsecond histogram."""
    values = percentiles_us(h, [p for _, p in PERCENTILES])
    out = {name: v / 1000 for (name, _), v in zip(PERCENTILES, values, strict=True)}
    out["mean"] = _mean_us(h) / 1000
    out["max"] = h.get_max_value() / 1000
    out["count"] = h.get_total_count()
    return out


# ------------------------------------------------------------ samples


def _pct_ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q) * 1000)


def second_sample(
    t_s: float, *, offered: int, finished: Iterable[Request], in_flight: int, done_total: int
) -> dict:
    """One per-second sample (Sample columns) from the requests that finished in it.

    Shared by the live runner's progress callback and `aggregate`, so both
    write the same numbers.
    """
    completed = errors = met = 0
    lat: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"ttft": [], "e2e": []})
    for r in finished:
        if r.parent_id is not None:
            continue
        if r.status != "completed":
            errors += 1
            continue
        completed += 1
        met += r.slo_met()
        for name, fn in (("ttft", ttft), ("e2e", e2e)):
            v = fn(r)
            if v is not None:
                lat[r.cls][name].append(v)
                lat["all"][name].append(v)
    latency = {}
    for cls, d in lat.items():
        latency[cls] = {
            f"{m}_{n}": _pct_ms(d[m], q)
            for m in ("ttft", "e2e") if d[m] for n, q in (("p50", 50), ("p99", 99))
        }
    return {
        "t_s": float(t_s), "offered_rps": float(offered), "achieved_rps": float(completed),
        "in_flight": int(in_flight), "errors": errors, "slo_met": met, "done": int(done_total),
        "latency_json": json.dumps(latency, sort_keys=True),
    }


def _samples(records: list[Request], end_s: float) -> list[dict]:
    top = [r for r in records if r.parent_id is None]
    last = max([end_s] + [r.t_done for r in top if r.t_done is not None])
    n = max(1, math.ceil(last))
    offered = np.zeros(n, np.int64)
    finished: list[list[Request]] = [[] for _ in range(n)]
    sent_at = np.zeros(n + 1, np.int64)
    done_at = np.zeros(n + 1, np.int64)
    for r in top:
        offered[min(int(r.t_intended), n - 1)] += 1
        t_end = r.t_done if r.t_done is not None else r.t_intended
        k = min(int(t_end), n - 1)
        finished[k].append(r)
        done_at[k + 1] += 1
        if r.t_sent is not None:
            sent_at[min(int(r.t_sent), n - 1) + 1] += 1
    sent_cum, done_cum = np.cumsum(sent_at), np.cumsum(done_at)
    return [
        second_sample(
            s, offered=int(offered[s]), finished=finished[s],
            in_flight=max(0, int(sent_cum[s + 1] - done_cum[s + 1])), done_total=int(done_cum[s + 1]),
        )
        for s in range(n)
    ]


# ------------------------------------------------------------ aggregate


@dataclass
class Aggregate:
    histograms: list[tuple[str, str, float | None, float | None, HdrHistogram]] = field(default_factory=list)
    summaries: dict[str, dict] = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)


def _gap_cv(times: list[float]) -> float | None:
    if len(times) < 3:
        return None
    g = np.diff(np.sort(np.asarray(times)))
    m = g.mean()
    return None if m <= 0 else float(g.std() / m)


def _per_client(recs: list[Request]) -> tuple[dict, float | None]:
    by: dict[str, list[Request]] = defaultdict(list)
    for r in recs:
        by[r.client_id].append(r)
    stats: dict[str, dict[str, float | None]] = {}
    for cid, rs in sorted(by.items()):
        e = [v for v in map(e2e, rs) if v is not None]
        w = [v for v in map(wait, rs) if v is not None]
        stats[cid] = {
            "issued": len(rs),
            "completed": sum(r.status == "completed" for r in rs),
            "e2e_p50_ms": _pct_ms(e, 50) if e else None,
            "e2e_p99_ms": _pct_ms(e, 99) if e else None,
            "longest_wait_ms": max(w) * 1000 if w else None,
        }
    return stats, jain([s["completed"] or 0 for s in stats.values()])


def aggregate(
    records: Iterable[Request],
    *,
    warmup_s: float,
    duration_s: float,
    target_rate_rps: float | None,
    window_s: float = 10.0,
) -> Aggregate:
    """Histograms, summaries (per class + `all`) and per-second samples.

    The measurement window is [warmup_s, warmup_s + duration_s) of intended
    send time: those requests are `issued` and feed the latency histograms
    (window k = requests intended in [warmup + k·window_s, ...)). Throughput
    and goodput count completions whose t_done falls in the window.
    Pipeline stage records (parent_id set) feed only stage_* histograms.
    """
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    if window_s <= 0:
        raise ValueError(f"window_s must be > 0, got {window_s}")
    records = list(records)
    w0, w1 = warmup_s, warmup_s + duration_s
    top = [r for r in records if r.parent_id is None]
    met = {id(r): r.slo_met() for r in top}
    stages = [r for r in records if r.parent_id is not None]
    issued = [r for r in top if w0 <= r.t_intended < w1]
    hists = _latency_hists(issued, stages, w0, w1, window_s)
    out = Aggregate()
    out.histograms = _histogram_rows(hists, w0, window_s)
    for cls in [*sorted({r.cls for r in issued}), "all"]:
        recs = issued if cls == "all" else [r for r in issued if r.cls == cls]
        out.summaries[cls] = _class_summary(cls, recs, top, hists, met, w0, w1, duration_s,
                                            target_rate_rps if cls == "all" else None)
    if "pipeline" in out.summaries:
        out.summaries["pipeline"]["extra"]["pipelines"] = pipeline_kinds(
            issued, stages, met, w0, w1, duration_s)
    out.samples = _samples(records, w1)
    return out


def _latency_hists(issued: list[Request], stages: list[Request], w0: float, w1: float,
                   window_s: float) -> _Hists:
    """Every per-request metric of the issued requests, per class and window (window k:
    intended in [w0 + k·window_s, ...)), and the pipeline stages' own histograms."""
    hists = _Hists()
    for r in issued:
        win = int((r.t_intended - w0) // window_s)
        cls = r.cls
        for name, fn in SCALAR_METRICS.items():
            v = fn(r)
            if v is not None:
                hists.add(name, cls, win, v)
        gaps = itl(r)
        if gaps:
            hists.values[("itl", cls, win)].extend(gaps)
        if r.overhead_us is not None:
            hists.add("overhead", cls, win, r.overhead_us / 1e6)
    _stage_hists(stages, hists, w0, w1, window_s)
    hists.build()
    return hists


def _histogram_rows(hists: _Hists, w0: float, window_s: float) -> list:
    """(metric, class, window start, window length, histogram); the whole run's first."""
    rows: list[tuple[str, str, float | None, float | None, Any]] = []
    for (metric, cls, window), h in sorted(hists.h.items(), key=lambda kv: (
            kv[0][0], kv[0][1], -1 if kv[0][2] is None else kv[0][2])):
        if window is None:
            rows.append((metric, cls, None, None, h))
        else:
            rows.append((metric, cls, w0 + window * window_s, window_s, h))
    return rows


def _class_summary(cls: str, recs: list[Request], top: list[Request], hists: _Hists,
                   met: dict[int, bool], w0: float, w1: float, duration_s: float,
                   target: float | None) -> dict:
    """One class's (or `all`'s) summary row: outcomes, throughput and goodput over the
    window, attainment, the distributions, fairness, failures and pacing."""
    done_in = [r for r in top if (cls == "all" or r.cls == cls) and r.status == "completed"
               and r.t_done is not None and w0 <= r.t_done < w1]
    sent = [r.t_sent for r in top if (cls == "all" or r.cls == cls)
            and r.t_sent is not None and w0 <= r.t_sent < w1]
    metrics = {m: distribution_ms(h) for (m, c, win), h in hists.h.items()
               if c == cls and win is None}
    late = metrics.get("lateness")
    tokens = sum(r.prompt_tokens if r.cls == "embedding" else r.output_tokens for r in done_in)
    clients, fairness = _per_client(recs)
    waits = [v for v in map(wait, recs) if v is not None]
    achieved = len(sent) / duration_s
    return {
        "issued": len(recs),
        "completed": sum(r.status == "completed" for r in recs),
        "failed": sum(r.status == "failed" for r in recs),
        "rejected": sum(r.status == "rejected" for r in recs),
        "throughput_rps": len(done_in) / duration_s,
        "throughput_tok_s": tokens / duration_s,
        "slo_attainment": (sum(met[id(r)] for r in recs) / len(recs)) if recs else None,
        "goodput_rps": sum(met[id(r)] for r in done_in) / duration_s,
        "target_rate_rps": target,
        "achieved_rate_rps": achieved,
        "lateness_p99_ms": late["p99"] if late else None,
        "metrics": metrics,
        "extra": {
            "fairness_jain": fairness,
            "fairness_basis": "completed requests per client",
            "clients": clients,
            "longest_wait_ms": max(waits) * 1000 if waits else None,
            "failure_reasons": _reasons(recs),
            **_outcomes(recs),
            **_slo_groups(cls, recs, done_in, met, duration_s),
            "pacing": _pacing(recs, sent, late, target, achieved, duration_s),
            "clamped_values": hists.clamped,
        },
    }


def _pacing(recs: list[Request], sent: list[float], late: dict | None, target: float | None,
            achieved: float, duration_s: float) -> dict:
    """How the sends kept to the schedule: rates, lateness, and the gaps' spread."""
    return {
        "target_rps": target,
        "offered_rps": len(recs) / duration_s,
        "achieved_rps": achieved,
        "achieved_over_target": achieved / target if target else None,
        "achieved_over_offered": achieved / (len(recs) / duration_s) if recs else None,
        "lateness_p50_ms": late["p50"] if late else None,
        "lateness_p99_ms": late["p99"] if late else None,
        "lateness_max_ms": late["max"] if late else None,
        "gap_cv_actual": _gap_cv(sent),
        "gap_cv_intended": _gap_cv([r.t_intended for r in recs]),
    }


def _reasons(recs: list[Request]) -> dict[str, int]:
    """Failure/rejection counts by reason kind (the text before the first ':')."""
    out: dict[str, int] = defaultdict(int)
    for r in recs:
        if r.status != "completed":
            out[r.reason.split(":", 1)[0] or "unknown"] += 1
    return dict(out)


def reason_kind(reason: str) -> str:
    """The reason's kind: its text before the first ':', past a pipeline's stage
    prefix (`chat: slo_shed` is a shed like `slo_shed`); "unknown" when empty."""
    head, _, rest = reason.partition(":")
    head = head.strip()
    if (head in _STAGE_PREFIXES or head.startswith("stage_")) and rest.strip():
        return reason_kind(rest)
    return head or "unknown"


def _outcomes(recs: list[Request]) -> dict:
    """Rejections and failures by reason kind, and how many were shed.

    Why apart from `failure_reasons`: a refusal at arrival (`queue_full`,
    `slo_infeasible`), a shed from the queue (`slo_shed`) and an engine
    failure say different things about a policy.
    """
    rejected: dict[str, int] = defaultdict(int)
    failed: dict[str, int] = defaultdict(int)
    shed = turned_away = 0
    for r in recs:
        if r.status == "completed":
            continue
        kind = reason_kind(r.reason)
        (rejected if r.status == "rejected" else failed)[kind] += 1
        shed += kind in SHED_REASONS
        turned_away += r.status == "rejected" or kind in SHED_REASONS
    return {"rejected_by_reason": dict(sorted(rejected.items())),
            "failed_by_reason": dict(sorted(failed.items())), "shed": shed,
            "rejected_or_shed": turned_away}


def _attainment(recs: list[Request], done_in: list[Request], met: dict[int, bool],
                duration_s: float) -> dict:
    """The same attainment and goodput as a class summary, for one group of requests."""
    n_met = sum(met[id(r)] for r in recs)
    return {"issued": len(recs), "met": n_met,
            "slo_attainment": n_met / len(recs) if recs else None,
            "goodput_rps": sum(met[id(r)] for r in done_in) / duration_s}


def _grouped(key, recs: list[Request], done_in: list[Request], met: dict[int, bool],
             duration_s: float) -> dict[str, dict]:
    """_attainment per value of key(record); records whose key is None are left out.
    One pass over each list (aggregate runs on tens of thousands of records)."""
    issued: dict[str, list[Request]] = defaultdict(list)
    done: dict[str, list[Request]] = defaultdict(list)
    for rs, into in ((recs, issued), (done_in, done)):
        for r in rs:
            k = key(r)
            if k is not None:
                into[k].append(r)
    return {k: _attainment(issued[k], done[k], met, duration_s) for k in sorted({*issued, *done})}


def _slo_groups(cls: str, recs: list[Request], done_in: list[Request],
                met: dict[int, bool], duration_s: float) -> dict:
    """Attainment and goodput per SLO tier and, for LLM requests, per priority.

    Why: a pooled figure hides a policy that serves the loose tier or the
    background priority at the expense of the others. In a class summary the
    tiers are keyed by name (`tight`); in `all` by class and name
    (`chat.tight`), since each class names its own tiers. Priorities are
    keyed "0".."4"; `all` pools the LLM classes (chat, completion, pipeline).
    """
    def tier(r: Request) -> str | None:
        if not r.slo_tier:
            return None
        return f"{r.cls}.{r.slo_tier}" if cls == "all" else r.slo_tier

    def prio(r: Request) -> str | None:
        return str(r.priority) if r.cls in LLM_CLASSES else None

    return {"slo_tiers": _grouped(tier, recs, done_in, met, duration_s),
            "slo_priorities": _grouped(prio, recs, done_in, met, duration_s)}


def _stage_spans(stages: list[Request]) -> dict[str, dict[str, tuple[float, float | None]]]:
    """Per job, per stage: (released, ended) — a loop's calls span from the first's
    release to the last's end; ended is None unless every call completed. Records
    without a stage name (older runs) are named by class (`embed`, `chat`)."""
    calls: dict[str, dict[str, list[Request]]] = defaultdict(lambda: defaultdict(list))
    for r in stages:
        name = r.stage or {"embedding": "embed"}.get(r.cls, r.cls)
        calls[r.parent_id or ""][name].append(r)
    out: dict[str, dict[str, tuple[float, float | None]]] = {}
    for job, by_stage in calls.items():
        out[job] = {}
        for name, rs in by_stage.items():
            ok = all(r.status == "completed" and r.t_done is not None for r in rs)
            end = max(r.t_done for r in rs) if ok else None  # type: ignore[type-var]  # ok: all set
            out[job][name] = (min(r.t_intended for r in rs), end)
    return out


def _stage_hists(stages: list[Request], hists: _Hists, w0: float, w1: float, window_s: float) -> None:
    """stage_<name> = each stage's time, release to end (docs/pipelines.md), for jobs
    whose first stage was released in the window. A job run without a record of its
    search (the live RAG shape) gets stage_search = chat's release − embed's end."""
    for kids in _stage_spans(stages).values():
        first = min(t0 for t0, _ in kids.values())
        if not (w0 <= first < w1):
            continue
        win = int((first - w0) // window_s)
        for name, (t0, t1) in kids.items():
            if t1 is not None:
                hists.add(f"stage_{name}", "pipeline", win, t1 - t0)
        emb, chat = kids.get("embed"), kids.get("chat")
        if "search" not in kids and emb is not None and chat is not None and emb[1] is not None:
            hists.add("stage_search", "pipeline", win, chat[0] - emb[1])


def pipeline_kinds(issued: list[Request], stages: list[Request], met: dict[int, bool],
                   w0: float, w1: float, duration_s: float) -> dict[str, dict]:
    """Per pipeline kind: jobs issued, completed, E2E p50/p95/p99 (ms), deadline
    attainment, pipeline goodput, and each stage's mean and p99 (ms) over its
    completed jobs: the breakdown a stacked-stage figure reads."""
    spans = _stage_spans(stages)
    out: dict[str, dict] = {}
    for kind in sorted({r.pipeline for r in issued if r.cls == "pipeline"}):
        jobs = [r for r in issued if r.cls == "pipeline" and r.pipeline == kind]
        done = [r for r in jobs if r.status == "completed" and r.t_done is not None]
        e = [r.t_done - r.t_intended for r in done]  # type: ignore[operator]  # done: set
        per_stage: dict[str, list[float]] = defaultdict(list)
        for r in done:
            for name, (t0, t1) in spans.get(r.id, {}).items():
                if t1 is not None:
                    per_stage[name].append(t1 - t0)
        out[kind] = {
            "issued": len(jobs), "completed": len(done),
            "e2e_p50_ms": _pct_ms(e, 50) if e else None,
            "e2e_p95_ms": _pct_ms(e, 95) if e else None,
            "e2e_p99_ms": _pct_ms(e, 99) if e else None,
            "deadline_attainment": sum(met[id(r)] for r in jobs) / len(jobs) if jobs else None,
            "goodput_rps": sum(met[id(r)] for r in done if w0 <= r.t_done < w1) / duration_s,  # type: ignore[operator]
            "stages": {n: {"mean_ms": float(np.mean(v)) * 1000, "p99_ms": _pct_ms(v, 99)}
                       for n, v in per_stage.items()},
        }
    return out
