"""Dashboard benchmarks: start-up to first paint with 10,000 runs; live refresh rate and CPU.

Run: .venv/bin/python benches/bench_tui.py [--runs 10000] [--seconds 10]
Targets: first paint <= 1 s with 10,000 runs; live refresh >= 2 Hz
with the dashboard process under 10% of one core. The run writer is a
separate process (as a real `sagetui run` is), so its CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T_START = time.perf_counter()

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "tui")]

WRITER = """
import sys, time, random
sys.path[:0] = [{root!r}, {tests!r}]
import storefill
from store import open_store
store = open_store({db!r})
w = store.create_run(experiment_id=None, name="bench-live", mode="live",
                     config={{"control_plane": {{"policy": "hybrid"}}}}, seed=1, repetition=0,
                     duration_s={secs}, requests_planned=100 * {secs})
w.start()
w.add_backends([{{"name": "gpu0", "max_concurrency": 8}}, {{"name": "cpu0", "max_concurrency": 4}}])
print(w.run_id, flush=True)
rng = random.Random(1)
t0 = time.monotonic()
for t in range({secs} + 5):
    row = storefill.sample_row(w.run_id, t, rng, rate=100.0)
    w.add_sample({{c: getattr(row, c) for c in type(row).model_fields if c not in ("id", "run_id")}})
    time.sleep(max(0.0, t0 + t + 1 - time.monotonic()))
w.finish("completed")
"""


async def first_paint(db: Path) -> tuple[float, float, float, int]:
    """Seconds from process start and from app start to the first page of runs drawn,
    and the CPU seconds the process used until then (what an idle machine would take)."""
    from sagetui.tui.app import SageApp
    from sagetui.tui.screens.runs import RunsScreen

    t_app = time.perf_counter()
    app = SageApp(db)
    async with app.run_test(size=(80, 24)):
        deadline = time.perf_counter() + 60
        while True:
            screen = app.screen
            if isinstance(screen, RunsScreen) and screen._drawn:  # a page is in the table
                break
            if time.perf_counter() > deadline:
                status = screen.query_one("#status").render() if isinstance(
                    screen, RunsScreen) else screen
                raise SystemExit(f"no runs drawn after 60 s; the screen says: {status}")
            await asyncio.sleep(0.002)
        painted = asyncio.Event()
        marks: list[float] = []
        app.call_after_refresh(lambda: (marks.extend((time.perf_counter(), time.process_time())),
                                        painted.set()))
        await painted.wait()  # the screen refresh that drew it has happened
        t_end, cpu = marks
        n = len(screen._page_ids)
        while screen.partial or not screen.rows:
            await asyncio.sleep(0.005)
        t_all = time.perf_counter()
        print(f"all {len(screen.rows)} runs loaded (sort/filter ready) "
              f"{t_all - t_app:.3f} s after App creation")
    return t_end - T_START, t_end - t_app, cpu, n


async def live(db: Path, run_id: int, seconds: float) -> tuple[float, float, float]:
    """(refreshes per second, dashboard CPU % of one core, seconds measured)."""
    from sagetui.tui.app import SageApp
    from sagetui.tui.screens.live import LiveScreen

    app = SageApp(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
        app.open_live(run_id)
        await pilot.pause(1.0)
        screen = app.screen
        assert isinstance(screen, LiveScreen)
        polls0, cpu0, wall0 = screen.polls, time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        polls, cpu, wall = (screen.polls - polls0, time.process_time() - cpu0,
                            time.perf_counter() - wall0)
    return polls / wall, 100 * cpu / wall, wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--paint-only", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.paint_only:  # child: a fresh interpreter, so imports count as a user sees them
        total, in_app, cpu, n = asyncio.run(first_paint(Path(args.paint_only)))
        print(f"first paint ({n} rows drawn): {total:.3f} s wall from process start, "
              f"{in_app:.3f} s from App creation, {cpu:.3f} s CPU")
        return
    import storefill

    tmp = Path(tempfile.mkdtemp(prefix="bench-tui-"))
    db = tmp / "sagetui.db"
    storefill.fill(db, args.runs, detailed=0)
    print(f"{args.runs} runs; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for _ in range(3):
        out = subprocess.run([sys.executable, __file__, "--paint-only", str(db)],
                             capture_output=True, text=True, check=True)
        print(out.stdout.strip())
    live_db = tmp / "live.db"
    storefill.fill(live_db, 100, detailed=0)
    secs = int(args.seconds) + 3
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(root=str(ROOT), tests=str(ROOT / "tests/tui"),
                                             db=str(live_db), secs=secs)],
        stdout=subprocess.PIPE, text=True)
    try:
        run_id = int(writer.stdout.readline())
        hz, cpu, wall = asyncio.run(live(live_db, run_id, args.seconds))
    finally:
        writer.terminate()
        writer.wait()
    print(f"live monitor: {hz:.2f} refreshes/s, dashboard CPU {cpu:.1f}% of one core "
          f"over {wall:.1f} s")


if __name__ == "__main__":
    main()
