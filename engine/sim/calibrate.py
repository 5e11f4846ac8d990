"""Fit simulator cost models to measurements and save them as named presets.

Three sources:
- per-step records (a profiling sweep, or vLLM step traces):
  seconds = β0 + β1·prefill + β2·decode + β3·kv_read (+ α·new);
- per-request records of a live run: TTFT − queue ≈ one prefill step
  (β0 + α + β1·prompt + β2·(others decoding)) and TPOT ≈ one decode step
  (β0 + β2·batch + β3·batch·context);
- embedding batches: seconds = a + b·tokens.

Coefficients are fitted by non-negative least squares on relative error (each
row divided by its measured value) so short and long steps count alike; the
fit reports R² and MAPE on the original scale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import nnls
from scipy.stats import theilslopes

from engine.sim.cost import EmbedCost, EmbedPreset, LLMCost, LLMPreset

STEP_FIELDS = ("prefill", "decode", "kv_read", "new", "seconds")
REQUEST_FIELDS = ("prompt_tokens", "output_tokens", "ttft_s", "tpot_s")
# A decode-time excess above this is an engine stall (several steps' worth: it holds the
# whole batch); below it, per-request jitter on the streaming path. Chosen from 1, 5,
# 10 and 20 ms by replaying the three uncached stored suites (docs/fidelity.md).
STALL_MIN_S = 0.020


@dataclass(frozen=True)
class FitReport:
    """How well the fitted model explains the data it was fitted on."""

    n: int
    r2: float
    mape: float  # mean absolute percentage error, in percent

    def __str__(self) -> str:
        return f"n={self.n} R²={self.r2:.4f} MAPE={self.mape:.2f}%"


def _report(y: np.ndarray, pred: np.ndarray) -> FitReport:
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    mape = float(np.mean(np.abs(pred - y) / y) * 100.0)
    return FitReport(n=len(y), r2=r2, mape=mape)


def _field(rec: Mapping, name: str, i: int, default: float | None = None) -> float:
    if name not in rec:
        if default is not None:
            return default
        raise ValueError(f"record {i}: missing field {name!r}")
    v = rec[name]
    if not isinstance(v, int | float) or v != v:
        raise ValueError(f"record {i}: field {name!r} must be a number, got {v!r}")
    if v < 0:
        raise ValueError(f"record {i}: field {name!r} must be >= 0, got {v}")
    return float(v)


def _solve(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    if np.any(y <= 0):
        raise ValueError("measured times must be > 0 to fit")
    w = 1.0 / y
    coef, _ = nnls(X * w[:, None], np.ones_like(y))
    return coef


def _need(rows: int, cols: int, what: str) -> None:
    if rows < cols:
        raise ValueError(f"{what}: need at least {cols} records to fit {cols} coefficients, got {rows}")


def fit_steps(records: Iterable[Mapping], *, fit_alpha: bool = False) -> tuple[LLMCost, FitReport]:
    """β (and optionally α) from per-step records with fields STEP_FIELDS."""
    rows, y = [], []
    for i, r in enumerate(records):
        x = [1.0, _field(r, "prefill", i), _field(r, "decode", i), _field(r, "kv_read", i, 0.0)]
        if fit_alpha:
            x.append(_field(r, "new", i, 0.0))
        rows.append(x)
        y.append(_field(r, "seconds", i))
    X, Y = np.array(rows, dtype=float), np.array(y, dtype=float)
    _need(len(Y), X.shape[1] if len(Y) else 4, "steps")
    coef = _solve(X, Y)
    cost = LLMCost(
        beta0=float(coef[0]), beta1=float(coef[1]), beta2=float(coef[2]), beta3=float(coef[3]),
        alpha=float(coef[4]) if fit_alpha else 0.0,
    )
    return cost, _report(Y, X @ coef)


def fit_requests(records: Iterable[Mapping], *, spread_min: int = 20
                 ) -> tuple[LLMCost, FitReport, FitReport]:
    """β, α and the front-end latency from per-request records (a live run).

    Returns the cost and the TTFT and TPOT fit reports. Fields: prompt_tokens,
    output_tokens, ttft_s, tpot_s; optional queue_s (time before the engine saw
    it, default 0), in_flight (the engine's other requests at this one's
    dispatch, default 0), batch (mean sequences decoding while it decoded,
    default 1), prefill_per_step and new_per_step (others' prompt tokens
    prefilled, and others started, per step of its decode; default 0), cohost (the
    share of its decode during which another engine on the same machine was busy,
    default 0: it gives `cohost_beta2`, engine.sim.host), group (the profile phase the
    record came from: stalls are measured against its own phase, below), idle_s (how
    long the engine had had nothing open when a lone request came, default 0; inf for
    a run's first request, which met a new connection and joins no spread).

    Why staged rather than one joint least squares: a request that reaches an
    idle engine (in_flight 0) has TTFT = frontend + α + β0 + β1·prompt exactly,
    while its TPOT is the mean step time of the batches it decoded in,
    β0 + β2·batch + β3·batch·context + β1·prefill_per_step + α·new_per_step.
    Fitted jointly, the few TTFT rows with a busy engine (which also wait for
    the step in progress) pulled β0 and β2 towards zero (measured on the live
    tiny Llama: β2 came out 5 µs against ~0.1–0.4 ms). So: (1) lone TTFTs give
    β1 and the intercept; (2) TPOTs net of others' prefills give β0, β2, β3 and
    α — the per-request cost that does stretch the steps it lands in; (3) what
    is left of the intercept is the front end, which delays only its own
    request. With at least `spread_min` lone requests the front end's measured
    spread is kept too (quantiles of each lone request's residual), so
    simulated TTFT tails carry the jitter the live machine showed: lone requests
    straight after another and after a while idle (the latter wait 3-4 ms longer at
    the median) pooled in one spread, which fitted the stored suites better than two
    kept apart (docs/fidelity.md). Likewise, with at
    least `spread_min` decoding requests, each one's decode time beyond the fit (TPOT
    residual × steps) above the upper quartile of its group's residuals gives the
    stalls that make the chat E2E tail, which mean step times cannot carry: above
    STALL_MIN_S engine stalls (`step_stall_rate`, `step_stall_quantiles`, at the rate
    per step and sequence that gives each request its share over steps × batch), the
    rest `completion_quantiles`, drawn per request. Per group because a phase the linear step model misfits (16
    clients' steps slower than the line) is off as a whole, not stalling: against all
    records' quartile that misfit was drawn as a stall by every simulated request.
    Vary the concurrency across records (closed loops of 1 … 16
    clients, say) or β0 and β2 cannot be told apart, and include lone
    requests of varied prompt lengths.
    """
    # Long on purpose: one fit whose steps (the TTFT fit, the TPOT fit, the front-end)
    # share their intermediate arrays.
    lone_p, lone_y, tpot_rows, tpot_y, tpot_pps, tpot_steps = [], [], [], [], [], []
    lone_idle: list[float] = []
    tpot_group: list = []
    for i, r in enumerate(records):
        p = _field(r, "prompt_tokens", i)
        o = _field(r, "output_tokens", i)
        ttft = _field(r, "ttft_s", i) - _field(r, "queue_s", i, 0.0)
        if ttft <= 0:
            raise ValueError(f"record {i}: ttft_s - queue_s must be > 0")
        if _field(r, "in_flight", i, 0.0) == 0:
            lone_p.append(p)
            lone_y.append(ttft)
            lone_idle.append(_field(r, "idle_s", i, 0.0))
        if o > 1:
            tpot_steps.append(o - 1)
            b = max(_field(r, "batch", i, 1.0), 1.0)
            tpot_rows.append([1.0, b, b * (p + o / 2.0), _field(r, "new_per_step", i, 0.0),
                              b * min(_field(r, "cohost", i, 0.0), 1.0)])
            tpot_y.append(_field(r, "tpot_s", i))
            tpot_pps.append(_field(r, "prefill_per_step", i, 0.0))
            tpot_group.append(r.get("group", ""))
    if len(lone_y) < 2 or len(set(lone_p)) < 2:
        raise ValueError("requests: need at least 2 requests of different prompt lengths that "
                         "found the engine idle (in_flight 0) to fit the prefill cost; profile "
                         "with a single client")
    _need(len(tpot_y), 4, "requests with output_tokens > 1")
    XL, YL = np.column_stack([np.ones(len(lone_p)), lone_p]), np.array(lone_y)
    # Theil–Sen (median of pairwise slopes): the front end's jitter is additive and
    # heavy-tailed on a busy machine; least squares let one 70 ms outlier flatten β1
    # to 0, and relative weights tilt the line towards the fastest requests.
    ts = theilslopes(YL, XL[:, 1])
    beta1 = max(float(ts.slope), 0.0)
    intercept = float(np.median(YL - beta1 * XL[:, 1]))
    XT, YT = np.array(tpot_rows), np.array(tpot_y)
    net = YT - beta1 * np.array(tpot_pps)
    keep = net > 0
    if keep.sum() < 4:
        raise ValueError("requests: TPOTs are not longer than others' prefills explain; "
                         "cannot fit the decode cost")
    beta0, beta2, beta3, alpha, cohost = _solve(XT[keep], net[keep])
    frontend = max(float(intercept) - float(beta0) - float(alpha), 0.0)
    quantiles: tuple[float, ...] = ()
    # a run's first request (idle unknown) met a new connection: one was a 45 ms outlier
    known = np.isfinite(np.array(lone_idle))
    if known.sum() >= spread_min:  # each lone request's own front-end time, as measured
        delays = np.clip(YL - (alpha + beta0 + beta1 * XL[:, 1]), 0.0, None)[known]
        quantiles = _spread(delays)
        frontend = float(delays.mean())
    ttft_pred = frontend + alpha + beta0 + beta1 * XL[:, 1]
    tpot_pred = XT @ np.array([beta0, beta2, beta3, alpha, cohost]) + beta1 * np.array(tpot_pps)
    late: tuple[float, ...] = ()
    stall_rate = 0.0
    stall_q: tuple[float, ...] = ()
    if len(YT) >= spread_min:  # the decode stalls: each request's decode-time residual
        steps = np.array(tpot_steps, dtype=float)
        resid = (YT - tpot_pred) * steps
        # above the upper quartile: centred at the median, the draws' mean (~6 ms) lifted
        # every E2E p50 by ~5 %; replayed on three stored suites, 51 of 63 figures
        # within 10 % against 48 (median) and 50 (none) (docs/fidelity.md)
        excess = np.clip(resid - _upper_quartiles(resid, tpot_group), 0.0, None)
        stalled = excess > STALL_MIN_S
        if stalled.sum() >= 5:
            # an engine stall: each request saw its own steps' stalls, at a rate per step
            # and sequence (Poisson over its steps × batch)
            exposure = steps * XT[:, 1]
            stall_rate = float(-np.log(1.0 - stalled.mean()) / exposure.mean())
            stall_q = _spread(excess[stalled])
            late = _spread(np.where(stalled, 0.0, excess))  # the small ones: per request
        else:
            late = _spread(excess)
    cost = LLMCost(beta0=float(beta0), beta1=float(beta1), beta2=float(beta2),
                   beta3=float(beta3), alpha=float(alpha), frontend=frontend,
                   frontend_quantiles=quantiles, completion_quantiles=late,
                   step_stall_rate=stall_rate, step_stall_quantiles=stall_q,
                   cohost_beta2=float(cohost))
    return cost, _report(YL, ttft_pred), _report(YT, tpot_pred)


def _upper_quartiles(resid: np.ndarray, groups: list) -> np.ndarray:
    """Per record, the upper quartile of its group's residuals (all records' where its
    group has fewer than 8)."""
    out = np.full(len(resid), np.percentile(resid, 75))
    g = np.array([str(x) for x in groups])
    for name in set(g):
        mask = g == name
        if mask.sum() >= 8:
            out[mask] = np.percentile(resid[mask], 75)
    return out


def _spread(samples: np.ndarray) -> tuple[float, ...]:
    """Quantiles at evenly spaced probabilities, as many as samples (up to 101): each
    measured value keeps its own weight; 21 fixed quantiles gave one outlier in 50 a
    5 % share of the draws."""
    k = min(len(samples), 101)
    return tuple(float(q) for q in np.quantile(samples, np.linspace(0, 1, k)))


def fit_embedding(records: Iterable[Mapping], *, spread_min: int = 20
                  ) -> tuple[EmbedCost, FitReport]:
    """a, b from embedding batch records with fields tokens, seconds.

    Records with `in_flight` > 0 (the engine was busy when the request came, so
    its time includes waiting, or it shared a batch) are left out; without the
    field every record counts. With at least `spread_min` records the body of
    measured / fitted is kept too (`EmbedCost.spread_quantiles`): its 10th to 90th
    percentiles, scaled to mean 1 so a and b still give the mean pass time.

    Why only the body: it is what a workload of a few distinct sizes needs (each
    size's passes spread around its line, so a p50 falls between two sizes as it
    does live). The tail is passes slowed while vLLM worked and rare hiccups; drawn
    for every pass, whatever the other engine did, it put the simulated embedding
    p99 at 5 req/s up to 46 % over live on the stored suites (docs/fidelity.md).
    """
    rows, y, seqs = [], [], []
    for i, r in enumerate(records):
        if _field(r, "in_flight", i, 0.0) > 0:
            continue
        rows.append([1.0, _field(r, "tokens", i)])
        y.append(_field(r, "seconds", i))
        seqs.append(_field(r, "cohost_seqs", i, 0.0))
    _need(len(y), 2, "batches")
    X, Y, S = np.array(rows, dtype=float), np.array(y, dtype=float), np.array(seqs)
    k = _cohost_per_seq(X, Y, S)
    stretch = 1.0 + k * S
    coef = _solve(X * stretch[:, None], Y)
    pred = (X @ coef) * stretch
    spread: tuple[float, ...] = ()
    if len(Y) >= spread_min and (pred > 0).all():
        ratio = np.clip(Y / pred, *np.percentile(Y / pred, [10, 90]))
        spread = _spread(ratio / ratio.mean())
    return (EmbedCost(a=float(coef[0]), b=float(coef[1]), spread_quantiles=spread,
                      cohost_per_seq=k), _report(Y, pred))


# co-host slowdowns tried by the embedding fit, per sequence decoding beside a pass
_COHOST_GRID = np.linspace(0.0, 0.5, 201)


def _cohost_per_seq(X: np.ndarray, Y: np.ndarray, seqs: np.ndarray, min_each: int = 10
                    ) -> float:
    """The stretch per decoding sequence k in seconds = (a + b·tokens)(1 + k·seqs).

    A grid search over k, each with its (a, b) fitted as the rest of the module fits
    (relative error): the model is linear but for k. Needs at least `min_each` lone
    passes with nothing decoding beside them and as many with something: without
    both, k and the line cannot be told apart, and k is 0.
    """
    if (seqs == 0).sum() < min_each or (seqs > 0).sum() < min_each:
        return 0.0
    best, best_k = np.inf, 0.0
    for k in _COHOST_GRID:
        stretch = 1.0 + k * seqs
        coef = _solve(X * stretch[:, None], Y)
        err = float(np.sum(((X @ coef) * stretch / Y - 1.0) ** 2))
        if err < best:
            best, best_k = err, float(k)
    return best_k


def calibrated(base: LLMPreset | EmbedPreset, cost: LLMCost | EmbedCost, name: str,
               report: str) -> LLMPreset | EmbedPreset:
    """A copy of `base` with the fitted cost, named and annotated with its fit error."""
    source = f"calibrated from {base.name}: {report}"
    if isinstance(base, LLMPreset) and isinstance(cost, LLMCost):
        return replace(base, name=name, cost=cost, source=source)
    if isinstance(base, EmbedPreset) and isinstance(cost, EmbedCost):
        return replace(base, name=name, cost=cost, source=source)
    raise ValueError("cost: an LLM preset needs an LLMCost, an embedding preset an EmbedCost")


def busy_spans(rows: Iterable[Mapping]) -> np.ndarray:
    """The merged [t_dispatched, t_done] intervals of `rows`: when their engine was busy."""
    iv = sorted((r["t_dispatched"], r["t_done"]) for r in rows
                if r.get("t_dispatched") is not None and r.get("t_done") is not None)
    out: list[list[float]] = []
    for a, b in iv:
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return np.array(out, dtype=float).reshape(-1, 2)


def busy_share(spans: np.ndarray, a: float, b: float) -> float:
    """The share of [a, b] that `spans` (from busy_spans) cover."""
    if b <= a or not len(spans):
        return 0.0
    return float(np.clip(np.minimum(spans[:, 1], b) - np.maximum(spans[:, 0], a), 0.0,
                         None).sum() / (b - a))


def records_from_requests(rows: Iterable[Mapping], cohost: np.ndarray | None = None
                          ) -> list[dict]:
    """Fit records (for `fit_requests`) from a run's raw per-request rows.

    Rows carry the store's `request` columns (t_dispatched, t_first_token,
    t_done, prompt_tokens, output_tokens, status, backend). TTFT is measured
    from dispatch, so the control plane's queue is out; `in_flight` counts the
    same backend's other requests dispatched no later and not yet done; `batch` is the mean
    number of the same backend's requests decoding during this one's decode
    (from the rows themselves), and `prefill_per_step` the prompt tokens of
    requests whose prefill finished during its decode, per decode step;
    `cohost` the share of its decode that another engine on the same machine
    was busy, given that engine's `busy_spans`; `idle_s` how long the backend had had
    nothing open at this one's dispatch (0 if something was). Rows that did not complete, or
    lack stamps, are skipped.
    """
    done = [r for r in rows if r.get("status", "completed") == "completed"
            and r.get("t_dispatched") is not None and r.get("t_first_token") is not None
            and r.get("t_done") is not None and r.get("prompt_tokens", 0) > 0
            and r.get("output_tokens", 0) > 0]
    out = []
    for group in _by_backend(done):
        starts = np.array([r["t_first_token"] for r in group], dtype=float)
        ends = np.array([r["t_done"] for r in group], dtype=float)
        # integral of the number of decoding requests over time, piecewise linear
        t = np.concatenate([starts, ends])
        step = np.concatenate([np.ones_like(starts), -np.ones_like(ends)])
        order = np.argsort(t, kind="stable")
        t, count = t[order], np.cumsum(step[order])
        integral = np.concatenate([[0.0], np.cumsum(count[:-1] * np.diff(t))])
        # prompt tokens whose prefill completed by time x: searchsorted on first tokens
        f_order = np.argsort(starts, kind="stable")
        f_t = starts[f_order]
        f_cum = np.concatenate([[0.0], np.cumsum(
            np.array([group[j]["prompt_tokens"] for j in f_order], dtype=float))])
        busy = _in_flight_at_dispatch(group)
        idle = _idle_at_dispatch(group)
        for r, n_busy, idle_s, a, b in zip(group, busy, idle, starts, ends, strict=True):
            o = int(r["output_tokens"])
            span = b - a
            batch = (np.interp(b, t, integral) - np.interp(a, t, integral)) / span if span > 0 else 1.0
            i0, i1 = np.searchsorted(f_t, a, "right"), np.searchsorted(f_t, b, "right")
            others = f_cum[i1] - f_cum[i0]
            out.append({
                "in_flight": n_busy,
                "idle_s": idle_s,
                "new_per_step": float(i1 - i0) / (o - 1) if o > 1 else 0.0,
                "prefill_per_step": float(others) / (o - 1) if o > 1 else 0.0,
                "prompt_tokens": int(r["prompt_tokens"]), "output_tokens": o,
                "ttft_s": r["t_first_token"] - r["t_dispatched"],
                "tpot_s": span / (o - 1) if o > 1 else 0.0,
                "batch": max(float(batch), 1.0),
                "cohost": busy_share(cohost, a, b) if cohost is not None else 0.0,
            })
    return out


def embedding_records_from_requests(rows: Iterable[Mapping],
                                    chat: Iterable[Mapping] | None = None) -> list[dict]:
    """Fit records (for `fit_embedding`) from a run's completed embedding rows.

    Rows carry t_dispatched, t_done, prompt_tokens (all texts' tokens) and
    backend; `in_flight` counts the same backend's other requests dispatched no later
    and not yet done at this one's dispatch. Given the same run's `chat` rows (with
    t_first_token and t_done), `cohost_seqs` counts those streaming at its dispatch:
    the sequences the LLM engine on the same machine was decoding.
    """
    done = [r for r in rows if r.get("status", "completed") == "completed"
            and r.get("t_dispatched") is not None and r.get("t_done") is not None
            and r.get("prompt_tokens", 0) > 0]
    streams = [r for r in chat or ()
               if r.get("t_first_token") is not None and r.get("t_done") is not None]
    first = [r["t_first_token"] for r in streams]
    last = [r["t_done"] for r in streams]
    return [{"tokens": int(r["prompt_tokens"]), "seconds": r["t_done"] - r["t_dispatched"],
             "in_flight": n_busy, "cohost_seqs": int(_open_at(first, last, r["t_dispatched"]))}
            for group in _by_backend(done)
            for r, n_busy in zip(group, _in_flight_at_dispatch(group), strict=True)]


def _by_backend(rows: list[Mapping]) -> list[list[Mapping]]:
    groups: dict[str, list[Mapping]] = {}
    for r in rows:
        groups.setdefault(str(r.get("backend", "")), []).append(r)
    return list(groups.values())


def _idle_at_dispatch(group: list[Mapping]) -> list[float]:
    """Per row: how long the group had had nothing open at its dispatch (0 if something
    was open; inf for a row before anything was done)."""
    order = sorted(range(len(group)), key=lambda i: group[i]["t_dispatched"])
    out = [0.0] * len(group)
    open_until = float("-inf")  # when the rows dispatched so far have all finished
    for i in order:
        t = group[i]["t_dispatched"]
        if t >= open_until:
            out[i] = t - open_until  # inf before the first row
        open_until = max(open_until, group[i]["t_done"])
    return out


def _open_at(starts, ends, t):
    """How many of the intervals (starts[i], ends[i]) hold time(s) `t`: started at or
    before it, not ended by it."""
    return (np.searchsorted(np.sort(starts), t, "right")
            - np.searchsorted(np.sort(ends), t, "right"))


def _in_flight_at_dispatch(group: list[Mapping]) -> list[int]:
    """Per row: the group's other rows dispatched no later and not done at its dispatch."""
    sent = [r["t_dispatched"] for r in group]
    others = _open_at(sent, [r["t_done"] for r in group], sent) - 1  # less the row itself
    return [max(int(n), 0) for n in others]
