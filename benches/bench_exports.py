"""Benchmark: a bundle for a 200-run suite (all tables, all figures as PDF) in <= 60 s.

Builds the fixed export store (tests/exports/fixture_store.py) with 5 repetitions,
7 offered rates and 65 per-second samples per sampled run = 200 runs, then times
`sagetui export --format pdf --bundle --suite bench` end to end (store reading,
tables in 4 formats, 8 figures as HTML + PDF in one Chromium session, brief).

Run: .venv/bin/python benches/bench_exports.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "exports"))

from click.testing import CliRunner  # noqa: E402
from fixture_store import build_store  # noqa: E402

from exports.imaging import find_browser  # noqa: E402
from sagetui.cli import main  # noqa: E402
from store import queries  # noqa: E402

TARGET_S = 60.0
RATES = (10.0, 20.0, 40.0, 60.0, 80.0, 120.0, 160.0)


def main_() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if find_browser() is None:
        print("no Chromium found: the PDF part of this benchmark cannot run (apt-get install chromium)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        t0 = time.perf_counter()
        build_store(db, reps=5, suite="bench", rates=RATES, n_samples=65)
        n_runs = queries.run_sql(db, "select count(*) from run")[1][0][0]
        print(f"store: {n_runs} runs built in {time.perf_counter() - t0:.1f} s")
        assert n_runs == 200, n_runs
        times = []
        for i in range(args.repeat):
            out = Path(tmp) / f"out{i}"
            t0 = time.perf_counter()
            res = CliRunner().invoke(main, ["--db", str(db), "export", "--format", "pdf", "--bundle",
                                            "--suite", "bench", "-o", str(out)], catch_exceptions=False)
            times.append(time.perf_counter() - t0)
            assert res.exit_code == 0, res.output
            pdfs = list(out.glob("*/figures/*.pdf"))
            tables = list(out.glob("*/tables/*.tex"))
            print(f"run {i + 1}: {times[-1]:.2f} s, {len(tables)} LaTeX tables, {len(pdfs)} PDF figures, "
                  f"{sum(1 for p in out.rglob('*') if p.is_file())} files")
    print(f"bundle of a {n_runs}-run suite: median {statistics.median(times):.2f} s, "
          f"min {min(times):.2f} s, max {max(times):.2f} s (target <= {TARGET_S:.0f} s: "
          f"{'met' if max(times) <= TARGET_S else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_())
