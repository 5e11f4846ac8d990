"""Where the pipeline tail's time goes: the slowest jobs' critical path, split.

Why: a pipeline-aware order can only remove waiting in the control plane's
queue; it cannot shorten an engine's prefill or decode. For the jobs at or
above 0.9 × the run's pipeline E2E p99 this walks each job's critical path
backwards (the stage that ended last, then the stage whose end released it)
and sums, per job: control-plane wait (released → dispatched), engine first
token (dispatched → first token: the engine's own queue and prefill), decode
(first token → done), embedding calls and local stages (retrieve, tool).

Needs per-request records (`run.raw = true`), e.g.
    sagetui --db F suite run pipelines --set run.raw=true
    python scripts/pipeline_tail.py F --where "policy in ('fifo','pipeline-fcfs')"
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

from store.errors import StoreError
from store.queries import run_sql

PARTS = ("cp_wait", "engine_ttft", "decode", "embedding", "local")
COLS = ("request_id, request_class, parent_id, stage, status, t_intended, t_dispatched, "
        "t_first_token, t_done, output_tokens, backend")


def _critical_path(stages: list[tuple], start: float) -> tuple[dict[str, float], int, int]:
    """Seconds per part along the path, LLM calls on it, their output tokens."""
    ends = {round(s[8], 9): s for s in stages}
    cur, out, hops, tokens = max(stages, key=lambda s: s[8]), defaultdict(float), 0, 0
    while cur is not None:
        _, cls, _, _, _, t_rel, t_disp, t_first, t_done, n_out, backend = cur
        if backend == "local":
            out["local"] += t_done - t_rel
        elif cls == "embedding":
            out["embedding"] += t_done - t_rel
        else:
            out["cp_wait"] += t_disp - t_rel
            out["engine_ttft"] += t_first - t_disp
            out["decode"] += t_done - t_first
            hops, tokens = hops + 1, tokens + n_out
        cur = None if t_rel <= start + 1e-9 else ends.get(round(t_rel, 9))
    return out, hops, tokens


def run_tail(db: str, run_id: int, warmup: float, duration: float) -> dict:
    _, rows = run_sql(db, f"SELECT {COLS} FROM request WHERE run_id = ?", (run_id,))
    jobs = {r[0]: r for r in rows if r[1] == "pipeline" and r[3] == "" and r[4] == "completed"
            and warmup <= r[5] < warmup + duration}
    stages = defaultdict(list)
    for r in rows:
        if r[2] in jobs and r[8] is not None:
            stages[r[2]].append(r)
    if not jobs:
        raise StoreError(f"run {run_id}: no completed pipeline jobs with per-request records "
                         "(run with run.raw = true)")
    e2e = sorted(j[8] - j[5] for j in jobs.values())
    p99 = e2e[min(len(e2e) - 1, int(0.99 * len(e2e)))]
    tail = [j for j in jobs.values() if j[8] - j[5] >= 0.9 * p99]
    acc, hops, tokens = defaultdict(float), 0, 0
    for j in tail:
        parts, h, t = _critical_path(stages[j[0]], j[5])
        for k, v in parts.items():
            acc[k] += v
        hops, tokens = hops + h, tokens + t
    n = len(tail)
    return {"p99_s": p99, "tail_jobs": n, "llm_calls": hops / n, "output_tokens": tokens / n,
            **{k: acc[k] / n for k in PARTS}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--where", default="1", help="SQL condition on run columns and `policy`, "
                    "`load` (the run's load fraction)")
    a = ap.parse_args(argv)
    try:
        _, runs = run_sql(a.db, "SELECT * FROM (SELECT id, seed, "
                          "json_extract(config_json, '$.control_plane.policy') AS policy, "
                          "json_extract(config_json, '$.run.load_fraction') AS load, "
                          "json_extract(config_json, '$.run.part') AS part, config_json "
                          f"FROM run WHERE status = 'completed') WHERE {a.where} ORDER BY id")
        print("| run | part | load | policy | seed | p99 (s) | tail jobs | LLM calls | output tokens | "
              + " | ".join(f"{p} (s)" for p in PARTS) + " |")
        print("|" + "---|" * (9 + len(PARTS)))
        for rid, seed, pol, load, part, cfg in runs:
            w = json.loads(cfg)["workload"]
            t = run_tail(a.db, rid, w["warmup_s"], w["duration_s"])
            print(f"| {rid} | {part} | {load} | {pol} | {seed} | {t['p99_s']:.2f} | {t['tail_jobs']} | "
                  f"{t['llm_calls']:.1f} | {t['output_tokens']:.0f} | "
                  + " | ".join(f"{t[p]:.2f}" for p in PARTS) + " |")
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
