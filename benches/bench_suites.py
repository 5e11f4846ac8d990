"""Wall time of the paper's full suites, the fidelity errors and the agent metrics.

Why: `suite show`'s run-time estimates are fitted to the wall time of each FULL
(not quick) suite A–D in simulation, and the fidelity claim rests on the
simulator-fidelity errors measured on this machine.
This runs each suite exactly as a user would (`python -m sagetui --db TMP
suite run NAME`, a child process), times it, counts its runs and the
requests it simulated, and reads the results back from the store:

- sim suites A–D: wall time, child CPU time, runs (completed/total), requests;
- `--fidelity`: the full fidelity suite live (vLLM on CPU with the tiny Llama
  + MiniLM; several minutes), then each sim run's `extra.fidelity.errors`
  (relative error of p50/p99 TTFT and E2E and of throughput vs its live twin);
- `--agents`: the agents suite (sim by default: BM25 / embedding / fusion;
  `--agents-mode live` also launches the chat engine for the LLM strategy).

It prints a markdown block: the figures of docs/benchmarks.md's "suites" and
"fidelity" tables (the docs keep the figures and this command, not the date).

`--calibrate` also fits the run-time estimator's constants (sagetui/suites/
estimate.py) to the per-run wall times (run `created` → `ended` in the store):
non-negative least squares over the sim runs of every suite timed, per-item
costs of each agent strategy, and the suite start (suite wall − its runs). It
prints the constants to paste and each suite's estimate against its measured
wall time, also with the suite left out of the fit (a fairer error).

    .venv/bin/python benches/bench_suites.py                       # A–D in sim
    .venv/bin/python benches/bench_suites.py --fidelity --agents   # + fidelity live, agents
    .venv/bin/python benches/bench_suites.py --suites policies --keep-db /tmp/b.db
    .venv/bin/python benches/bench_suites.py --agents --calibrate  # estimator constants
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exports.tables.fidelity import TARGET as FIDELITY_TARGET  # noqa: E402
from exports.tables.fidelity import verdict  # noqa: E402
from sagetui.suites.drift import describe  # noqa: E402
from store import open_store, queries  # noqa: E402
from store.queries import summaries_for  # noqa: E402

SIM_SUITES = ("control-plane", "policies", "scalability", "heterogeneous")


def run_suite(db: str, name: str, *, mode: str | None = None, extra: list[str] = (),
              verbose: bool = False) -> dict:
    """Run one suite in a child process; wall and CPU time, run ids, exit code."""
    argv = [sys.executable, "-m", "sagetui", "--db", db, "suite", "run", name,
            *(["--mode", mode] if mode else []), *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    tail: deque[str] = deque(maxlen=15)
    for line in proc.stderr:  # the suite's progress, passed through as it comes
        if verbose:
            print("   | " + line.rstrip(), file=sys.stderr)
        tail.append(line.rstrip())
    out = proc.stdout.read()
    rc = proc.wait()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = out.strip().splitlines()
    ids = [int(x) for x in lines[-1].split()] if lines and lines[-1].split()[0].isdigit() else []
    if rc != 0:
        print(f"!! suite {name} exited {rc}:\n" + "\n".join(tail), file=sys.stderr)
    return {"suite": name, "mode": mode or "sim", "wall_s": wall, "cpu_s": cpu, "ids": ids,
            "rc": rc, "load_start": load0, "load_end": os.getloadavg()[0]}


def _run_rows(db: str, select: str, ids: list[int], tail: str = "") -> list[tuple]:
    """`SELECT {select} FROM run WHERE id IN ids {tail}` on the store at `db`."""
    if not ids:
        return []
    return queries.run_sql(db, f"SELECT {select} FROM run WHERE id IN "
                           f"({','.join('?' * len(ids))}) {tail}", ids)[1]


def run_statuses(db: str, ids: list[int]) -> dict[str, int]:
    return dict(_run_rows(db, "status, COUNT(*)", ids, "GROUP BY status"))


def summaries(db: str, ids: list[int]) -> dict[int, dict[str, dict]]:
    store = open_store(db)
    try:
        return summaries_for(store, ids)
    finally:
        store.close()


def issued_requests(db: str, ids: list[int]) -> int:
    return sum(int((s.get("all") or {}).get("issued") or 0)
               for s in summaries(db, ids).values())


# -- tables -------------------------------------------------------------------------------------

def sim_table(results: list[dict]) -> list[str]:
    out = ["| suite | runs (completed/total) | requests simulated | wall time | "
           "CPU time (child) | load avg start→end |", "|---|---:|---:|---:|---:|---|"]
    for r in results:
        out.append(f"| {r['suite']} | {r['completed']}/{len(r['ids'])} | {r['requests']:,} | "
                   f"{r['wall_s']:.1f} s | {r['cpu_s']:.1f} s | "
                   f"{r['load_start']:.1f}→{r['load_end']:.1f} |")
    return out


def fidelity_rows(db: str, ids: list[int]) -> list[dict]:
    """Each sim run's stored `extra.fidelity` (rate, errors), ordered by rate."""
    rows = []
    for rid, by_cls in summaries(db, ids).items():
        fid = ((by_cls.get("all") or {}).get("extra") or {}).get("fidelity")
        if fid:
            rows.append({"sim_run": rid, **fid})
    return sorted(rows, key=lambda r: r["rate"])


def fidelity_table(rows: list[dict]) -> list[str]:
    """Per statistic and load: live → sim (error), and the live repeat's difference."""
    stats = sorted({k for r in rows for k in r["errors"]},
                   key=lambda k: (not k.startswith("chat"), not k.startswith("embedding"), k))
    out = ["| statistic | " + " | ".join(f"{r['rate']:g} req/s: live → sim (error; live repeat)"
                                        for r in rows) + " |",
           "|---|" + "---:|" * len(rows)]
    worst = 0.0
    for stat in stats:
        cells = []
        for r in rows:
            e = r["errors"].get(stat)
            if e is None:
                cells.append("–")
                continue
            live = e.get("live_ms", e.get("live"))
            sim = e.get("sim_ms", e.get("sim"))
            unit = " ms" if "live_ms" in e else ""
            n = (r.get("live_noise") or {}).get(stat)
            rep = f"; {100 * n['rel_error']:+.1f}%" if n else ""
            cells.append(f"{live:.1f} → {sim:.1f}{unit} ({100 * e['rel_error']:+.1f}%{rep})")
            worst = max(worst, abs(e["rel_error"]))
        out.append(f"| {stat} | " + " | ".join(cells) + " |")
    met = sum(abs(e["rel_error"]) <= FIDELITY_TARGET for r in rows for e in r["errors"].values())
    total = sum(len(r["errors"]) for r in rows)
    noise = [abs(e["rel_error"]) for r in rows for e in (r.get("live_noise") or {}).values()]
    out.append("")
    mean = sum(abs(e["rel_error"]) for r in rows for e in r["errors"].values()) / max(total, 1)
    out.append(f"Within ±{100 * FIDELITY_TARGET:.0f}%: {met} of {total} figures; "
               f"mean |error| {100 * mean:.1f}%, worst {100 * worst:.1f}%.")
    if noise:
        within = sum(x <= FIDELITY_TARGET for x in noise)
        out.append(f"Live repeat vs first live run: {within} of {len(noise)} within "
                   f"±{100 * FIDELITY_TARGET:.0f}%; worst {100 * max(noise):.1f}%.")
    out.append(f"Verdict: {verdict(rows)}.")
    drift = [(r["rate"], r["machine_speed"]) for r in rows if r.get("machine_speed")]
    if drift:
        out += ["", "Machine drift, the probe before each load against the profile's "
                "(+ = slower; lone requests profile/now):"]
        out += [f"- {rate:g} req/s: {describe(speed)}" for rate, speed in drift]
    return out


def _late(cost: dict) -> str:
    """The calibrated completion lateness (decode stalls) at p50/p90/p99, in ms."""
    q = cost.get("completion_quantiles") or []
    if len(q) < 2:
        return "none"
    return "/".join(f"{1e3 * q[round(p * (len(q) - 1))]:.1f}" for p in (0.5, 0.9, 0.99)) + " ms"


def calibration_lines(db: str, ids: list[int]) -> list[str]:
    for by_cls in summaries(db, ids).values():
        cal = ((by_cls.get("all") or {}).get("extra") or {}).get("calibration")
        if cal and "llm" in cal and "profile_runs" in cal and "live_run" not in cal:
            llm, emb, c = cal["llm"], cal["embedding"], cal["llm"]["cost"]
            return [f"Calibration (profile runs {cal['profile_runs']}): β0 "
                    f"{1e3 * c['beta0']:.2f} ms, β1 {1e6 * c['beta1']:.1f} µs, β2 "
                    f"{1e6 * c['beta2']:.1f} µs, β3 {1e9 * c['beta3']:.2f} ns, α "
                    f"{1e3 * c['alpha']:.2f} ms, front end {1e3 * c.get('frontend', 0):.1f} ms, "
                    f"completion lateness p50/p90/p99 {_late(c)}, co-host "
                    f"+{1e6 * c.get('cohost_beta2', 0.0):.1f} µs per decoding sequence; "
                    f"embedding a {1e3 * emb['cost']['a']:.1f} ms, b "
                    f"{1e6 * emb['cost']['b']:.1f} µs/token. TTFT fit "
                    f"R² {llm['ttft_fit']['r2']:.2f} / MAPE {llm['ttft_fit']['mape_pct']:.1f}% "
                    f"(n={llm['ttft_fit']['n']}), TPOT fit R² {llm['tpot_fit']['r2']:.2f} / "
                    f"MAPE {llm['tpot_fit']['mape_pct']:.1f}%, embedding fit "
                    f"R² {emb['fit']['r2']:.2f} / MAPE {emb['fit']['mape_pct']:.1f}%."]
    return []


def agents_table(db: str, ids: list[int]) -> list[str]:
    cols = [("selection_top1_pct", "sel top-1 %"), ("selection_args_pct", "args %"),
            ("selection_pool_top1_pct", "pool top-1 %"), ("selection_pool_top5_pct", "pool top-5 %"),
            ("timing_balanced_acc_pct", "timing bal. %"), ("planning_exact_pct", "plan exact %"),
            ("planning_f1_pct", "plan F1 %"), ("selection_p50_ms", "sel p50 ms"),
            ("selection_p99_ms", "sel p99 ms")]
    out = ["| strategy | " + " | ".join(c[1] for c in cols) + " | items |",
           "|---|" + "---:|" * (len(cols) + 1)]
    status = dict(queries.run_sql(
        db, f"SELECT id, name || ': ' || status || ' ' || status_reason FROM run "
            f"WHERE id IN ({','.join('?' * len(ids))})", ids)[1]) if ids else {}
    for rid, by_cls in summaries(db, ids).items():
        agent = ((by_cls.get("all") or {}).get("extra") or {}).get("agent")
        if not agent:
            out.append(f"| ({status.get(rid, rid)}) |" + " |" * (len(cols) + 1))
            continue
        m = agent["metrics"]
        cells = [f"{m[k]:.1f}" if k in m else "–" for k, _ in cols]
        items = "/".join(str(b["n"]) for b in agent.get("items", {}).values())
        out.append(f"| {agent['strategy']} | " + " | ".join(cells) + f" | {items} |")
    return out


def run_walls(db: str, ids: list[int]) -> list[float]:
    """Per-run wall seconds (created → ended: engine construction and store writes included).

    The first run of a process also pays the store's one-time setup (hardware
    fingerprint, ~1 s) between created and started; that belongs to the suite's start,
    so its created → started counts as the median of the other runs'."""
    import statistics
    from datetime import datetime as dt

    rows = _run_rows(db, "id, created, started, ended", ids, "ORDER BY id")
    t = [(dt.fromisoformat(c).timestamp(), dt.fromisoformat(st).timestamp(),
          dt.fromisoformat(e).timestamp()) for _, c, st, e in rows]
    walls = [e - c for c, _, e in t]
    if len(t) > 1:
        walls[0] = t[0][2] - t[0][1] + statistics.median(st - c for c, st, _ in t[1:])
    return walls


def calibrate(db: str, sims: list[dict], agents: dict | None, quick: bool) -> list[str]:
    """Fit the estimator's constants; print them and each suite's estimate vs measured."""
    import numpy as np
    from scipy.optimize import nnls

    from sagetui.suites import expand_suite, find_suite
    from sagetui.suites.estimate import SimCosts, estimate_seconds, sim_features

    out: list[str] = []
    rows, exps = [], {}
    for r in sims:
        exp = expand_suite(find_suite(r["suite"]), quick=quick)
        walls = run_walls(db, r["ids"])
        if len(walls) != len(exp.runs):
            raise SystemExit(f"{r['suite']}: {len(walls)} stored runs, {len(exp.runs)} expected")
        exps[r["suite"]] = exp
        r["start_s"] = r["wall_s"] - sum(walls)
        rows += [(r["suite"], sim_features(c), w) for c, w in zip(exp.runs, walls, strict=True)]

    def fit(keep) -> SimCosts:
        sel = [(f, w) for s, f, w in rows if keep(s)]
        coef, _ = nnls(np.array([f for f, _ in sel]), np.array([w for _, w in sel]))
        starts = [r["start_s"] for r in sims if keep(r["suite"])]
        return SimCosts(float(np.median(starts)), *(float(c) for c in coef))

    if sims:
        costs = fit(lambda s: True)
        out += ["Fitted (paste into sagetui/suites/estimate.py):", "",
                f"    SIM = SimCosts(suite_start_s={costs.suite_start_s:.2f}, "
                f"run_s={costs.run_s:.4f}, backend_s={costs.backend_s:.4f}, "
                f"llm_per_1k_s={costs.llm_per_1k_s:.4f}, "
                f"embed_per_1k_s={costs.embed_per_1k_s:.4f})", "",
                "| suite | measured | estimate (fit on all) | error | estimate (suite left out "
                "of the fit) | error |", "|---|---:|---:|---:|---:|---:|"]
        for r in sims:
            est = estimate_seconds(exps[r["suite"]], costs)
            loo = (estimate_seconds(exps[r["suite"]], fit(lambda s, n=r["suite"]: s != n))
                   if len(sims) > 1 else float("nan"))
            out.append(f"| {r['suite']} | {r['wall_s']:.1f} s | {est:.1f} s | "
                       f"{100 * (est / r['wall_s'] - 1):+.0f}% | {loo:.1f} s | "
                       f"{100 * (loo / r['wall_s'] - 1):+.0f}% |")
        out.append("")
    if agents:
        from sagetui.agents.runner import item_counts, load_dataset, parse_config
        from sagetui.suites.estimate import AGENTS, AgentCosts, agents_seconds

        suite = find_suite("agents")
        cfg = parse_config(suite.raw.get("agents", {}), "agents",
                           suite.raw.get("quick") if quick else None)
        counts = item_counts(load_dataset(cfg.dataset), cfg)
        items = next(counts[s] for s in cfg.strategies if s != "llm")
        n = sum(items.values())
        n_llm = sum(counts.get("llm", {}).values()) or 1
        walls = run_walls(db, agents["ids"])
        strategies = tuple(suite.raw["agents"]["strategies"])
        per = dict(zip(strategies, walls, strict=False))
        start = agents["wall_s"] - sum(walls)
        live = agents["mode"] == "live"
        llm = per.pop("llm", 0.0)
        # Live: the chat engine's start is the start beyond the sim start already fitted.
        costs = AgentCosts(AGENTS.start_s if live else start, {k: v / n for k, v in per.items()},
                           start - AGENTS.start_s if live else AGENTS.engine_start_s,
                           llm / n_llm if live else AGENTS.llm_per_item_s)
        est = agents_seconds(strategies, items, agents["mode"], costs,
                             llm_items=counts.get("llm"))
        out += ["Fitted agents costs (live: engine start and LLM cost; the rest kept from "
                "estimate.py):" if live else "Fitted agents costs (sim; the live-only costs "
                "kept from estimate.py):", "",
                f"    AGENTS = AgentCosts(start_s={costs.start_s:.2f}, per_item_s={{"
                + ", ".join(f'"{k}": {v:.5f}' for k, v in costs.per_item_s.items())
                + f"}}, engine_start_s={costs.engine_start_s:.1f}, "
                f"llm_per_item_s={costs.llm_per_item_s:.4f})", "",
                f"agents ({agents['mode']}, {n} items per strategy): measured "
                f"{agents['wall_s']:.1f} s, estimate with these costs {est:.1f} s.", ""]
    return out


def machine_line(started: datetime, load_start: tuple[float, ...]) -> str:
    fmt = " ".join(f"{x:.2f}" for x in load_start)
    end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{started:%Y-%m-%d %H:%M}–{datetime.now(UTC):%H:%M} UTC, {os.cpu_count()}-core "
            f"{platform.machine()}, no GPU, load average (1/5/15 min, as `uptime`) {fmt} at "
            f"the start, {end} at the end; Python {platform.python_version()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", default=",".join(SIM_SUITES),
                    help="comma-separated sim suites to time (default: A–D; '' for none)")
    ap.add_argument("--fidelity", action="store_true", help="also run the full fidelity suite live")
    ap.add_argument("--agents", action="store_true", help="also run the agents suite")
    ap.add_argument("--agents-mode", choices=("sim", "live"), default="sim")
    ap.add_argument("--quick", action="store_true", help="the quick versions (a smoke check)")
    ap.add_argument("-v", "--verbose", action="store_true", help="pass each suite's progress through")
    ap.add_argument("--keep-db", metavar="FILE", help="store runs here instead of a temp file")
    ap.add_argument("--calibrate", action="store_true",
                    help="fit the run-time estimator's constants (sagetui/suites/estimate.py)")
    ap.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                    help="an override for the fidelity suite (as `suite run --set`), repeatable")
    args = ap.parse_args()

    tmp = None if args.keep_db else tempfile.TemporaryDirectory(prefix="bench-suites-")
    db = args.keep_db or str(Path(tmp.name) / "suites.db")
    extra = ["--quick"] if args.quick else []
    started, load_start = datetime.now(UTC), os.getloadavg()
    md: list[str] = []
    failed = False
    try:
        sims = []
        for name in [s for s in args.suites.split(",") if s]:
            print(f"-- {name} (sim{' quick' if args.quick else ''}) ...", file=sys.stderr)
            r = run_suite(db, name, mode="sim", extra=extra, verbose=args.verbose)
            st = run_statuses(db, r["ids"])
            r.update(completed=st.get("completed", 0), requests=issued_requests(db, r["ids"]))
            failed |= r["rc"] != 0
            print(f"   {r['wall_s']:.1f} s wall, {len(r['ids'])} runs {st}", file=sys.stderr)
            sims.append(r)
        if sims:
            md += [f"Suites in simulation ({'QUICK versions' if args.quick else 'full'}):", "",
                   *sim_table(sims), ""]
        if args.fidelity:
            print("-- fidelity (live) ...", file=sys.stderr)
            sets = [a for v in args.set for a in ("--set", v)]
            r = run_suite(db, "fidelity", mode="live", extra=[*extra, *sets],
                          verbose=args.verbose)
            failed |= r["rc"] != 0
            rows = fidelity_rows(db, r["ids"])
            md += [f"Fidelity suite{' (QUICK)' if args.quick else ''}, live on vLLM-CPU "
                   f"(tiny Llama) + MiniLM: {len(r['ids'])} runs in {r['wall_s'] / 60:.1f} min "
                   f"(exit {r['rc']}).", "", *calibration_lines(db, r["ids"]), ""]
            md += [*fidelity_table(rows), ""] if rows else [
                "No fidelity errors stored (see the suite's stderr above).", ""]
        agents = None
        if args.agents:
            print(f"-- agents ({args.agents_mode}) ...", file=sys.stderr)
            r = agents = run_suite(db, "agents", mode=args.agents_mode, extra=extra,
                                   verbose=args.verbose)
            failed |= r["rc"] != 0
            md += [f"Agents suite ({args.agents_mode}{', quick' if args.quick else ''}): "
                   f"{r['wall_s']:.1f} s wall.", "", *agents_table(db, r["ids"]), ""]
        if args.calibrate:
            md += calibrate(db, sims, agents, args.quick)
    finally:
        if tmp is not None:
            tmp.cleanup()
    print("\n".join([f"Measured {machine_line(started, load_start)}.", "", *md]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
