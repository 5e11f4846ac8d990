"""How fast the machine ran at each comparison load, relative to its profile.

Why: the fidelity suite fits the simulator on a profile and compares it with
live runs up to ~10 minutes later, on a shared VM whose speed moves by a few
per cent between the two. That drift is the largest source of error left
(docs/fidelity.md): one per cent of MiniLM's pass time moves the embedding p99
at 20 req/s by 1.5–3.5 points. A simulator fitted on the profile cannot know
it. So the suite runs one short, light workload — the probe — in the profile
and again before each comparison load, and this compares the two: the same
workload and seed, so the same sizes and timing, on the same engines. It
reports; it corrects nothing.

Only the probe's *lone* requests are compared, those whose latency has no
queueing in it: nothing (of any class, on any engine) was open for at least
`LONE_IDLE_S` before the dispatch, and nothing else was dispatched until the
request finished (chat: until its first token). A request with another sent
within ~10 ms of it takes 4–6 ms longer to its first token on this machine
(docs/fidelity.md).

Why a probe and not the comparison runs' own lone requests: a lone request's
latency depends on what the machine did before it. Chat TTFT less β1·prompt was
8.3–9.4 ms after < 20 ms idle, 10.9–12.3 ms after 20–100 ms and 12.1–12.8 ms
after more, at every load of one stored suite (s8c); and even matched for idle,
lone requests at 20 req/s came out 3–7 % faster than the profile's in all four
stored suites — the load before them, not drift.

Rows are the store's `request` columns with `prompt_tokens` replaced by the
workload's intended size (what the cost model was fitted in).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from scipy import stats

# A request after >= 20 ms of idle waits 3–4 ms longer than one straight after
# another (the `chat-open` phase); the probe's requests are compared past that.
LONE_IDLE_S = 0.02


def lone_indices(rows: list[Mapping], until: str) -> list[tuple[int, float]]:
    """(index, idle seconds before it) of the rows that had the machine to themselves,
    from `LONE_IDLE_S` before their dispatch to their `until` stamp (t_first_token or
    t_done)."""
    order = sorted(range(len(rows)), key=lambda i: rows[i]["t_dispatched"])
    out = []
    open_until = float("-inf")  # when every row dispatched so far had finished
    for k, i in enumerate(order):
        r = rows[i]
        t0 = r["t_dispatched"]
        nxt = rows[order[k + 1]]["t_dispatched"] if k + 1 < len(order) else float("inf")
        end = r.get(until)
        if (end is not None and open_until != float("-inf")
                and t0 - open_until >= LONE_IDLE_S and nxt > end):
            out.append((i, t0 - open_until))
        open_until = max(open_until, r["t_done"])
    return out


def _done(rows: Iterable[Mapping]) -> list[Mapping]:
    return [r for r in rows if r.get("status", "completed") == "completed"
            and r.get("t_dispatched") is not None and r.get("t_done") is not None]


def lone_chat(rows: Iterable[Mapping], beta1: float) -> np.ndarray:
    """(idle s, TTFT less β1·prompt s) of one run's lone chat requests: what is left
    (front end, α, β0) does not depend on the workload's sizes."""
    done = _done(rows)
    return np.array([(idle, done[i]["t_first_token"] - done[i]["t_dispatched"]
                      - beta1 * done[i]["prompt_tokens"])
                     for i, idle in lone_indices(done, "t_first_token")
                     if done[i].get("request_class") == "chat"], dtype=float).reshape(-1, 2)


def lone_embedding(rows: Iterable[Mapping], a: float, b: float) -> np.ndarray:
    """(idle s, time over the fitted a + b·tokens) of one run's lone embedding requests."""
    done = _done(rows)
    return np.array([(idle, (done[i]["t_done"] - done[i]["t_dispatched"])
                      / (a + b * done[i]["prompt_tokens"]))
                     for i, idle in lone_indices(done, "t_done")
                     if done[i].get("request_class") == "embedding"], dtype=float).reshape(-1, 2)


def _shift(profile: np.ndarray, live: np.ndarray, min_n: int = 5) -> dict:
    """Medians of the two sides' lone latencies, live ÷ profile − 1, and a two-sided
    Mann–Whitney U p-value; None where a side has fewer than `min_n`."""
    out: dict = {"n_profile": int(len(profile)), "n_live": int(len(live)),
                 "profile_median": None, "live_median": None, "change": None, "p_value": None}
    if len(profile) < min_n or len(live) < min_n:
        return out
    pm, lm = float(np.median(profile[:, 1])), float(np.median(live[:, 1]))
    out.update(profile_median=pm, live_median=lm, change=lm / pm - 1.0,
               p_value=float(stats.mannwhitneyu(live[:, 1], profile[:, 1],
                                                alternative="two-sided").pvalue))
    return out


def machine_speed(profile_runs: Iterable[list[Mapping]], live_runs: Iterable[list[Mapping]],
                  calibration: Mapping) -> dict:
    """Per engine class, how much slower (+) or faster (−) the probe's lone requests were
    now than in the profile. Each argument is a list of runs' rows: runs have their own
    clocks and never meet, so lone requests are found per run. Chat: lone TTFT less
    β1·prompt (seconds); embedding: lone time over the fitted line (a ratio)."""
    profile_runs, live_runs = list(profile_runs), list(live_runs)
    beta1 = calibration["llm"]["cost"]["beta1"]
    emb = calibration["embedding"]["cost"]

    def pooled(runs, lone, *args):
        return np.concatenate([lone(r, *args) for r in runs] or [np.empty((0, 2))])

    return {"chat": _shift(pooled(profile_runs, lone_chat, beta1),
                           pooled(live_runs, lone_chat, beta1)),
            "embedding": _shift(pooled(profile_runs, lone_embedding, emb["a"], emb["b"]),
                                pooled(live_runs, lone_embedding, emb["a"], emb["b"]))}


def describe(speed: Mapping) -> str:
    """One line for a report: per class the change, its p-value and the lone counts."""
    parts = []
    for cls, d in speed.items():
        if d.get("change") is None:
            parts.append(f"{cls} — ({d['n_profile']}/{d['n_live']} lone, too few)")
        else:
            parts.append(f"{cls} {100 * d['change']:+.1f}% (p {d['p_value']:.2g}; "
                         f"{d['n_profile']}/{d['n_live']} lone)")
    return ", ".join(parts)
