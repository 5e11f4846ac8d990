"""Scheduler benchmarks: sim throughput, the scalability grid, decision time.

    .venv/bin/python benches/bench_scheduler.py [throughput|grid|decision|all] [--repeat N]
        [--policies fifo,slo,...] [--baseline REF [--rounds N]]

Targets: >= 50,000 simulated requests per wall second (8 backends,
7B-on-H100 preset, 1000 req/s, 70% chat / 30% embedding); the whole grid
(backends {1,2,4,8} x rates {10,100,500,1000} x 4 policies x 60 sim-s) in
<= 2 min; policy decision time p99 <= 50 us at a queue depth of 1000.
Workload generation is outside the timed region; everything simulate() does
(core, engines, outcomes, samples) is inside. Figures go to docs/benchmarks.md.

--baseline REF (throughput or decision) measures git revision REF's scheduler
and simulator against this tree's in one run: each of `--rounds` rounds runs
both, in turn and in alternating order, each in a fresh process, and the
medians and their ratio are printed. On a shared machine only such a ratio
means anything; the absolute figures move with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.spec import BackendSpec  # noqa: E402
from scheduler.config import POLICIES, ControlPlaneConfig  # noqa: E402
from scheduler.core import ControlPlane  # noqa: E402
from scheduler.simrt import simulate  # noqa: E402
from vocab import Request  # noqa: E402


def backends(n: int, conc: int = 64) -> list[BackendSpec]:
    """n 7B-on-H100 sim backends, each serving chat and embeddings (prefill-only)."""
    return [BackendSpec(name=f"b{i}", kind="sim", capabilities=["chat", "embedding"],
                        preset="7b-h100", max_concurrency=conc, price_per_hour=2.5)
            for i in range(n)]


def workload(rate: float, duration: float, seed: int) -> list[Request]:
    """Poisson arrivals, 70% chat (32-256 in, 16-96 out), 30% embedding (1-8 texts)."""
    rng = random.Random(seed)
    out, t, i = [], 0.0, 0
    while True:
        t += rng.expovariate(rate)
        if t >= duration:
            return out
        i += 1
        if rng.random() < 0.7:
            out.append(Request(id=f"r{i}", cls="chat", arrival=t, t_intended=t,
                               priority=rng.randint(0, 4), prompt_tokens=rng.randint(32, 256),
                               output_tokens=rng.randint(16, 96), slo_ttft_ms=500,
                               slo_e2e_ms=5000))
        else:
            n = rng.randint(1, 8)
            out.append(Request(id=f"r{i}", cls="embedding", arrival=t, t_intended=t, n_texts=n,
                               text_tokens=n * rng.randint(16, 64), slo_e2e_ms=200,
                               model="minilm"))


def throughput(repeat: int, policies: list[str]) -> None:
    reqs_n = len(workload(1000, 60, 1))
    print(f"## throughput: 8 x 7b-h100, 1000 req/s, 70/30, 60 sim-s ({reqs_n} requests)")
    print("| policy | runs | best wall s | req/s min / median / max | CPU s (best) | completed "
          "| load avg (1 min) |")
    print("|---|---|---|---|---|---|---|")
    for policy in policies:
        walls, cpus = [], []
        load = os.getloadavg()[0]
        for _ in range(repeat):
            reqs = workload(1000, 60, 1)
            c0 = time.process_time()
            res = simulate(ControlPlaneConfig(policy=policy), backends(8), reqs)
            cpus.append(time.process_time() - c0)
            walls.append(res.wall_s)
        walls.sort()
        done = res.counters["completed"]
        rates = [reqs_n / w for w in walls]  # fastest first
        print(f"| {policy} | {repeat} | {walls[0]:.3f} | {rates[-1]:,.0f} / "
              f"{rates[len(rates) // 2]:,.0f} / {rates[0]:,.0f} | {min(cpus):.2f} | "
              f"{done}/{reqs_n} | {load:.2f} |")


def grid() -> None:
    print("## grid: backends {1,2,4,8} x rates {10,100,500,1000} x 4 policies x 60 sim-s")
    print("(horizon 60 s: whatever is still queued or running then fails `run_ended`)")
    t0, c0 = time.perf_counter(), time.process_time()
    total, rows = 0, []
    for nb in (1, 2, 4, 8):
        for rate in (10, 100, 500, 1000):
            for policy in POLICIES:
                reqs = workload(rate, 60, 2)
                w0 = time.perf_counter()
                res = simulate(ControlPlaneConfig(policy=policy), backends(nb), reqs,
                               horizon_s=60.0)
                total += len(reqs)
                rows.append((nb, rate, policy, len(reqs), res.counters["completed"],
                             time.perf_counter() - w0))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print("| backends | rate | policy | requests | completed | wall s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]:.2f} |")
    print(f"\ngrid total: {len(rows)} runs, {total} requests, {wall:.1f} s wall, "
          f"{cpu:.1f} s CPU")


class _DepthDriver:
    """Holds a control plane at a fixed queue depth: all slots busy, `depth` waiting."""

    def __init__(self, policy: str, depth: int) -> None:
        self.rng = random.Random(3)
        self.cp = ControlPlane(ControlPlaneConfig(policy=policy,
                                                  hybrid={"batch_max_wait_ms": 0}),
                               backends(8, conc=4))
        self.flying: list = []
        self.now, self.n, self.depth = 0.0, 0, depth

    def _take(self, actions) -> None:
        self.flying.extend(a for a in actions if hasattr(a, "dispatch_id"))

    def arrive(self) -> None:
        rng, self.n = self.rng, self.n + 1
        self.now += 1e-4
        if rng.random() < 0.7:
            r = Request(id=f"r{self.n}", cls="chat", arrival=self.now,
                        priority=rng.randint(0, 4), prompt_tokens=100, output_tokens=50,
                        slo_ttft_ms=rng.choice([200, 2000]))
        else:
            r = Request(id=f"r{self.n}", cls="embedding", arrival=self.now,
                        n_texts=rng.randint(1, 8), text_tokens=64, slo_e2e_ms=200, model="m")
        self._take(self.cp.on_arrival(r, self.now))

    def fill(self) -> None:
        while sum(self.cp.queued.values()) < self.depth:
            self.arrive()

    def complete_one(self) -> None:
        d = self.flying.pop(self.rng.randrange(len(self.flying)))
        self.now += 1e-4
        self._take(self.cp.on_completion(d.backend, d.dispatch_id, self.now))


def decision_run(policy: str, events: int = 20_000, depth: int = 1000
                 ) -> tuple[dict[str, float], list[int]]:
    """Decision-time statistics of `events` decisions at queue depth `depth`, and the
    depths seen."""
    drv = _DepthDriver(policy, depth)
    drv.fill()
    drv.cp.decision_times_us.clear()
    depths = []
    while len(drv.cp.decision_times_us) < events:
        drv.complete_one()  # frees a slot: the policy picks from `depth` waiting
        drv.fill()  # arrivals that only queue
        depths.append(sum(drv.cp.queued.values()))
    return drv.cp.decision_stats(), depths


def decision(policies: list[str], events: int = 20_000, depth: int = 1000) -> None:
    print(f"## decision time at queue depth {depth} (8 backends x 4 slots, all busy)")
    print("| policy | decisions | p50 us | p99 us | max us | depth min..max |")
    print("|---|---|---|---|---|---|")
    for policy in policies:
        st, depths = decision_run(policy, events, depth)
        print(f"| {policy} | {st['count']} | {st['p50']:.1f} | {st['p99']:.1f} | "
              f"{st['max']:.0f} | {min(depths)}..{max(depths)} |")


# -- against a baseline revision ------------------------------------------------------------

def measure_once(what: str, policies: list[str]) -> dict[str, list[float]]:
    """One measurement per policy in this process: throughput gives [sim req per wall s,
    per CPU s], decision gives [p50 us, p99 us]."""
    out = {}
    for policy in policies:
        if what == "throughput":
            reqs = workload(1000, 60, 1)
            c0 = time.process_time()
            res = simulate(ControlPlaneConfig(policy=policy), backends(8), reqs)
            out[policy] = [len(reqs) / res.wall_s, len(reqs) / (time.process_time() - c0)]
        else:
            st, _ = decision_run(policy)
            out[policy] = [st["p50"], st["p99"]]
    return out


def baseline_tree(ref: str, into: Path) -> Path:
    """Revision `ref`'s packages with this bench beside them, so the one driver runs
    against either tree."""
    from revision import extract_ref  # here: the copied bench runs without it

    extract_ref(ref, into, ["scheduler", "engine", "vocab"])
    (into / "benches").mkdir()
    shutil.copy(__file__, into / "benches" / "bench_scheduler.py")
    return into


def compare(what: str, ref: str, rounds: int, policies: list[str]) -> None:
    """This tree against revision `ref`, alternating, each run in a fresh process."""
    cols = ("sim req / wall s", "sim req / CPU s") if what == "throughput" else ("p50 us",
                                                                                "p99 us")
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": ROOT, ref: baseline_tree(ref, Path(tmp))}
        got: dict[str, dict[str, list[list[float]]]] = {t: {p: [] for p in policies}
                                                        for t in trees}
        for i in range(rounds):
            for name in (list(trees) if i % 2 == 0 else list(trees)[::-1]):
                bench = trees[name] / "benches" / "bench_scheduler.py"
                cp = subprocess.run([sys.executable, str(bench), what, "--measure-once",
                                     "--policies", ",".join(policies)],
                                    capture_output=True, text=True)
                if cp.returncode:
                    sys.exit(f"--baseline: the run of {name} failed:\n{cp.stderr[-2000:]}")
                for p, v in json.loads(cp.stdout.strip().splitlines()[-1]).items():
                    got[name][p].append(v)
        print(f"## {what}: this tree against `{ref}`, {rounds} rounds, medians "
              f"(load average now {os.getloadavg()[0]:.1f})")
        print(f"| policy | {cols[0]}: this / {ref} / ratio | {cols[1]}: this / {ref} / ratio |")
        print("|---|---|---|")
        for p in policies:
            cells = []
            for k in (0, 1):
                a = statistics.median(v[k] for v in got["this tree"][p])
                b = statistics.median(v[k] for v in got[ref][p])
                cells.append(f"{a:,.1f} / {b:,.1f} / {a / b:.2f}")
            print(f"| {p} | {cells[0]} | {cells[1]} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", default="all",
                    choices=["throughput", "grid", "decision", "all"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--policies", default=",".join(POLICIES),
                    help="comma-separated, for throughput and decision (default: all)")
    ap.add_argument("--baseline", metavar="REF", help="git revision to measure against")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of --baseline")
    ap.add_argument("--measure-once", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    policies = [p for p in a.policies.split(",") if p]
    unknown = [p for p in policies if p not in POLICIES]
    if unknown or not policies:
        ap.error(f"--policies: {', '.join(unknown) or 'none given'} not in {', '.join(POLICIES)}")
    if a.measure_once or a.baseline:
        if a.what not in ("throughput", "decision"):
            ap.error("--baseline: compares throughput or decision, not " + a.what)
        if a.measure_once:  # the child of compare(): one JSON line
            print(json.dumps(measure_once(a.what, policies)))
        else:
            compare(a.what, a.baseline, a.rounds, policies)
        return
    print(f"load average at start: {os.getloadavg()[0]:.1f} (2-core machine shared with others)")
    if a.what in ("throughput", "all"):
        throughput(a.repeat, policies)
    if a.what in ("decision", "all"):
        decision(policies)
    if a.what in ("grid", "all"):
        grid()


if __name__ == "__main__":
    main()
