"""Re-simulate a stored fidelity run: recalibrate from its profile runs, compare with its live runs.

Why: the live half of the fidelity suite takes ~15 min and needs a quiet machine;
the simulated half takes seconds. To judge a change to the simulator or to the
calibration, replay a store the suite already filled (`bench_suites.py --fidelity
--keep-db FILE`): the profile runs are fitted again with the current code, each
load is simulated again with the current code, and the errors are computed
against the stored live runs (pooled, as the suite does). The copy of the store
is a temporary file; the presets go to a temporary folder; nothing is written
next to FILE.

usage: bench_fidelity_replay.py FILE [--quick] [--sim-repeats N] [--skip-phase NAME ...]
                                [--keep-db OUT]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET = 0.10


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db", help="a store the fidelity suite filled (bench_suites.py --keep-db)")
    ap.add_argument("--quick", action="store_true", help="the store holds the quick suite")
    ap.add_argument("--sim-repeats", type=int, metavar="N",
                    help="simulated runs per load (default: the suite's sim_repeats)")
    ap.add_argument("--skip-phase", action="append", default=[], metavar="NAME",
                    help="fit without this profiling phase (repeatable): a paired A/B of a "
                         "phase on the same live runs")
    ap.add_argument("--keep-db", metavar="OUT",
                    help="keep the replayed store (the new sim runs beside the stored live ones)")
    args = ap.parse_args()
    if not Path(args.db).is_file():
        print(f"error: {args.db}: no such file", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fid-replay-") as tmp:
        os.environ["SAGETUI_PRESETS_DIR"] = str(Path(tmp) / "presets")
        os.environ["SAGETUI_RUNS_DIR"] = str(Path(tmp) / "runs")
        db = str(Path(tmp) / "replay.db")
        shutil.copy(args.db, db)
        rc = replay(db, args.quick, args.sim_repeats, args.skip_phase)
        if args.keep_db:
            shutil.copy(db, args.keep_db)
        return rc


def replay(db: str, quick: bool, sim_repeats: int | None = None, skip: list[str] = ()) -> int:
    from sagetui.orchestrate.runner import run_one
    from sagetui.suites import fidelity as fid
    from sagetui.suites import find_suite
    from sagetui.suites.drift import describe
    from store import open_store, queries

    suite = find_suite("fidelity")
    plan = fid.plan(suite, quick=quick)
    if sim_repeats:
        plan.sim_repeats = sim_repeats
    with open_store(db) as store:
        runs = queries.list_runs(store)
        stored = {r["name"]: r["id"] for r in runs if "/profile[" in r["name"]
                  and r["name"].split("[", 1)[1].rstrip("]") not in skip}
        # a store from an older suite may lack a phase added since: fit what it has
        plan.profiles = [c for c in plan.profiles if c.run.name in stored]
        profiles = [stored[c.run.name] for c in plan.profiles]
        if len(profiles) != len(stored):
            print(f"error: stored profile runs {sorted(stored)} are not phases of the "
                  "suite (--quick?)", file=sys.stderr)
            return 2
        cal = fid.calibrate_from_runs(store, profiles, plan)
        c = cal["llm"]["cost"]
        print(f"calibration: β0 {1e3 * c['beta0']:.2f} ms, β1 {1e6 * c['beta1']:.1f} µs, "
              f"β2 {1e6 * c['beta2']:.1f} µs, front end {1e3 * c['frontend']:.1f} ms; "
              f"embedding a {1e3 * cal['embedding']['cost']['a']:.1f} ms, "
              f"b {1e6 * cal['embedding']['cost']['b']:.1f} µs/token; "
              f"co-host +{1e6 * c.get('cohost_beta2', 0.0):.1f} µs per decode token, "
              f"MiniLM +{100 * cal['embedding']['cost'].get('cohost_per_seq', 0.0):.1f} % "
              f"per streaming sequence")
        # the drift probe, where the store has one (stores made before the probe existed have none)
        probe_rows = fid.profile_probe_rows(store, plan, profiles)
        speeds = []
        print("| load | statistic | live (pooled) | sim | error |")
        print("|---:|---|---:|---:|---:|")
        met = total = 0
        for rate in plan.loads:
            lives = sorted(r["id"] for r in runs if r["name"] == f"fidelity/live[rate={rate:g}]"
                           and r["status"] == "completed")
            if not lives:
                print(f"error: no completed live run at {rate:g} req/s", file=sys.stderr)
                return 2
            sims = [run_one(store, None, cfg).run_id
                    for cfg in fid.sim_configs(plan, rate, suite)]
            live = fid.pooled_summaries(store, lives)
            probes = [r["id"] for r in runs if r["name"] == f"fidelity/probe[rate={rate:g}]"
                      and r["status"] == "completed"]
            if probe_rows and probes:
                workload = fid.probe_config(plan, rate, suite).workload
                speeds.append((rate, fid.machine_speed(
                    probe_rows, [fid.request_rows(store, probes[0], workload)], cal)))
            for stat, e in fid.compare(live, fid.pooled_summaries(store, sims)).items():
                lv, sv = e.get("live_ms", e.get("live")), e.get("sim_ms", e.get("sim"))
                total += 1
                met += abs(e["rel_error"]) <= TARGET
                print(f"| {rate:g} | {stat} | {lv:.1f} | {sv:.1f} | {100 * e['rel_error']:+.1f}% |")
        print(f"\nWithin ±{100 * TARGET:.0f}%: {met} of {total} figures.")
        if not speeds:
            print("\nNo drift probe in this store (it was made before the fidelity suite ran a drift probe).")
            return 0
        print("\nMachine drift, the probe before each load against the profile's "
              "(+ = slower; lone requests profile/now):")
        for rate, speed in speeds:
            print(f"- {rate:g} req/s: {describe(speed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
