"""What prefix caching costs a workload without shared prefixes: the throughput bench's
workload (bench_scheduler.py) simulated with the engines' prefix caching on and off
(`--no-enable-prefix-caching`), interleaved in one process, CPU time compared.

    .venv/bin/python benches/bench_prefix_overhead.py [--repeat N] [--policies fifo,slo]

Why a ratio: the machine is shared, and two runs minutes apart differ by more than
the cost measured; interleaved runs in one process see the same machine. The two
settings also give the same outcomes for this workload (checked on every run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scheduler as bs  # noqa: E402

from scheduler.config import POLICIES, ControlPlaneConfig  # noqa: E402


def once(policy: str, caching: bool) -> tuple[float, list]:
    backends = bs.backends(8)
    if not caching:
        backends = [b.model_copy(update={"extra_args": ["--no-enable-prefix-caching"]})
                    for b in backends]
    reqs = bs.workload(1000, 60, 1)
    c0 = time.process_time()
    res = bs.simulate(ControlPlaneConfig(policy=policy), backends, reqs)
    return time.process_time() - c0, [(o.id, o.t_first_token, o.t_done) for o in res.outcomes]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--policies", default=",".join(POLICIES))
    args = ap.parse_args()
    print("| policy | runs | CPU s median, caching off | on | on / off | same outcomes |")
    print("|---|---|---|---|---|---|")
    for policy in args.policies.split(","):
        cpu: dict[bool, list[float]] = {True: [], False: []}
        same = True
        for r in range(args.repeat):
            out = {}
            for caching in ((True, False) if r % 2 else (False, True)):
                t, out[caching] = once(policy, caching)
                cpu[caching].append(t)
            same &= out[True] == out[False]
        off, on = statistics.median(cpu[False]), statistics.median(cpu[True])
        print(f"| {policy} | {args.repeat} | {off:.2f} | {on:.2f} | {on / off:.3f} | {same} |")


if __name__ == "__main__":
    main()
