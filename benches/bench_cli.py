"""CLI benchmarks: start-up of light commands and `runs list` formats over 10,000 runs.

Targets: `sagetui --help` and `sagetui runs list` (table, 10,000-run store) at most
0.3 s of process wall time above a bare interpreter start (`python -c pass`), medians,
measured interleaved in the same run so machine load hits all three alike;
`runs list --format json|csv` over the same store within 0.3 s in-process (CliRunner).

Run: .venv/bin/python benches/bench_cli.py [--store PATH] [--repeat N]
(--store keeps the 10,000-run store there and reuses it on the next call; it is
built through RunWriter as real runs are, which takes 20-40 s.)
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benches")]

TARGET_S = 0.3
N_RUNS = 10_000

# `make bench` (benches/run_all.py): a 1,000-run store, 5 starts per case.
QUICK_ARGV = ["--runs", "1000", "--repeat", "5"]
QUICK_HEADLINE = r"(sagetui runs list \([\d,]+ runs\)).*?(\+\S+ s over bare)"


def sagetui_argv() -> list[str]:
    """The console script users run, else `python -m sagetui`."""
    script = Path(sys.executable).with_name("sagetui")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "sagetui"]


def ensure_store(path: Path, n: int) -> None:
    """A store with `n` finished runs (4-class summaries), unless it is there already."""
    from store import open_store, queries

    if path.exists():
        with open_store(path) as s:
            if len(queries.list_runs(s)) == n:
                return
        raise SystemExit(f"{path}: exists but does not hold {n} runs; remove it")
    from bench_store import populate_runs

    t = time.perf_counter()
    with open_store(path) as s:
        populate_runs(s, n)
    print(f"(built {n:,} runs in {time.perf_counter() - t:.1f} s)", flush=True)


def child_env(cache: Path) -> dict[str, str]:
    """The environment of the timed processes: bytecode cached as in any installed
    sagetui (in `cache`, outside the tree), even where PYTHONDONTWRITEBYTECODE is set —
    compiling every module from source again on each start would be timed otherwise."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.setdefault("PYTHONPYCACHEPREFIX", str(cache))
    return env


ENV: dict[str, str] = dict(os.environ)


def wall(argv: list[str]) -> tuple[float, float]:
    """(wall, CPU user+system) seconds of one process; CPU is the steadier figure on a
    loaded machine, where the wall time includes waiting for a core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=ENV)
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bench_startup(db: Path, n: int, repeat: int) -> None:
    """Interleaved process wall times: bare interpreter, --help, runs list."""
    cases = {"python -c pass": [sys.executable, "-c", "pass"],
             "sagetui --help": [*sagetui_argv(), "--help"],
             f"sagetui runs list ({n:,} runs)": [*sagetui_argv(), "--db", str(db), "runs",
                                                 "list"]}
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
    for argv in cases.values():  # warm the page cache once
        wall(argv)
    for _ in range(repeat):
        for name, argv in cases.items():
            times[name].append(wall(argv))
    bare = statistics.median(w for w, _ in times["python -c pass"])
    bare_cpu = statistics.median(c for _, c in times["python -c pass"])
    print(f"\nprocess wall time, median of {repeat} (min-max), interleaved; CPU median:")
    for name, ts in times.items():
        walls = [w for w, _ in ts]
        med, cpu = statistics.median(walls), statistics.median(c for _, c in ts)
        extra = "" if name.startswith("python") else (
            f"  +{med - bare:.3f} s over bare ({med / bare:.1f}x), CPU +{cpu - bare_cpu:.3f} s;"
            f" target +{TARGET_S} s: " + ("ok" if med - bare <= TARGET_S else "MISSED"))
        print(f"  {name:<34} {med:.3f} s ({min(walls):.3f}-{max(walls):.3f}) CPU {cpu:.3f} s"
              f"{extra}", flush=True)


def bench_listing(db: Path, n: int, repeat: int) -> None:
    """In-process `runs list` per format: through CliRunner (output captured in memory, as
    the store benchmark measures it) and with stdout on /dev/null (the command alone)."""
    from click.testing import CliRunner

    from sagetui.cli import main

    runner = CliRunner()
    argv = ["--db", str(db), "runs", "list", "--format"]

    def captured(fmt: str) -> int:
        result = runner.invoke(main, [*argv, fmt])
        assert result.exit_code == 0, result.output[-500:]
        return len(result.stdout_bytes)

    def to_devnull(fmt: str) -> int:
        saved = sys.stdout
        with open(os.devnull, "w") as sys.stdout:
            try:
                main([*argv, fmt], standalone_mode=False)
            finally:
                sys.stdout = saved
        return 0

    print(f"\nin-process `runs list` over {n:,} runs, best / median of {repeat}:")
    for how, fn in (("stdout to /dev/null", to_devnull), ("CliRunner", captured)):
        for fmt in ("table", "json", "csv"):
            walls, cpus, size = [], [], 0
            for _ in range(repeat):
                t, c = time.perf_counter(), time.process_time()
                size = fn(fmt) or size
                walls.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
            med = statistics.median(walls)
            print(f"  {how:<19} --format {fmt:<6} {min(walls):.3f} / {med:.3f} s  cpu "
                  f"{min(cpus):.3f} s" + (f"  ({size / 1e6:.1f} MB)" if size else "")
                  + f"  target {TARGET_S} s: " + ("ok" if med <= TARGET_S else "MISSED"),
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, help="keep/reuse the store of runs here")
    ap.add_argument("--runs", type=int, default=N_RUNS, help="runs in the store")
    ap.add_argument("--repeat", type=int, default=15, help="process starts per case")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as tmp:
        env = child_env(Path(tmp) / "pycache")
        ENV.clear()
        ENV.update(env)
        db = args.store or Path(tmp) / "runs.db"
        ensure_store(db, args.runs)
        bench_startup(db, args.runs, args.repeat)
        bench_listing(db, args.runs, max(5, args.repeat // 3))
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
