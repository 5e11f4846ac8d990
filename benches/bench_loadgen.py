"""Load generator accuracy and ceiling against the null server on loopback.

Why: every number in the paper comes from the load generator, so it must hold
its target rate without drift and say how late it sent. This drives the null
server (instant answers) with:
  1. Poisson at --rate for --duration, one process (target: achieved within 1%,
     lateness p99 <= 2 ms);
  2. the same with --workers processes sharing one schedule and start time
     (a comma list, e.g. 2,4, runs each count in turn);
  3. the ceilings: closed loop, 64 clients, no think time, 1 and N processes
     (--skip-ceiling leaves them out);
  4. vLLM's own serving benchmark (vllm.benchmarks.serve, in-process) at the
     same rate and sizes against the same server,
and prints both tools side by side, with the cores each run used and those
other processes on the machine used meanwhile (a shared machine's figure is
only as good as that last column). Figures go to docs/benchmarks.md (## loadgen).

    .venv/bin/python benches/bench_loadgen.py [--rate 1000] [--duration 30] [--workers 2[,4...]]
                                              [--skip-ceiling] [--skip-vllm] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadgen.client import ClientConfig  # noqa: E402
from loadgen.metrics import aggregate  # noqa: E402
from loadgen.pacer import LEAD_S  # noqa: E402
from loadgen.runner import run  # noqa: E402
from loadgen.spec import WorkloadSpec  # noqa: E402

PROMPT, OUTPUT = 32, 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_null() -> tuple[subprocess.Popen, str]:
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "loadgen.null_server", "--port", str(port)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/health", timeout=0.5).read()
            return p, url
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError("null server did not start")


def spec(rate: float, duration: float, **kw) -> WorkloadSpec:
    return WorkloadSpec(rate=rate, duration_s=duration, model="null", mix={"completion": 1.0},
                        sizes={"completion": {"prompt_tokens": PROMPT, "output_tokens": OUTPUT}}, **kw)


def ours_open(url: str, rate: float, duration: float, workers: int, lead_s: float, cpu: CpuMeter) -> dict:
    s = spec(rate, duration)
    with cpu:
        res = run(s, ClientConfig(targets=url, concurrency=512), workers=workers, lead_s=lead_s)
    t = time.perf_counter()
    a = aggregate(res.records, warmup_s=0, duration_s=duration, target_rate_rps=rate)
    aggregate_s = time.perf_counter() - t
    al = a.summaries["all"]
    m, p = al["metrics"], al["extra"]["pacing"]
    span = max(r.t_done for r in res.records)
    return {
        "tool": f"sagetui loadgen ({workers} proc)", "target_rps": rate, "pacer": res.pacer,
        "cores": cpu.cores,
        "sent_rps": p["achieved_rps"], "sent_over_target": p["achieved_over_target"],
        "sent_over_offered": p["achieved_over_offered"],
        "completed_over_span_rps": al["completed"] / span,
        "lateness_p50_ms": p["lateness_p50_ms"], "lateness_p99_ms": p["lateness_p99_ms"],
        "lateness_max_ms": p["lateness_max_ms"], "gap_cv_actual": p["gap_cv_actual"],
        "gap_cv_intended": p["gap_cv_intended"], "failed": al["failed"],
        "failure_reasons": al["extra"]["failure_reasons"],
        "records": len(res.records), "aggregate_s": aggregate_s,
        "ttft_p50_ms": m["ttft"]["p50"], "ttft_p99_ms": m["ttft"]["p99"],
        "ttft_sent_p50_ms": m["ttft_sent"]["p50"], "ttft_sent_p99_ms": m["ttft_sent"]["p99"],
        "e2e_p50_ms": m["e2e"]["p50"], "e2e_p99_ms": m["e2e"]["p99"],
        "e2e_sent_p50_ms": m["e2e_sent"]["p50"], "e2e_sent_p99_ms": m["e2e_sent"]["p99"],
    }


def pacer_floor(rate: float, duration: float, lead_s: float) -> dict:
    """The runner's pacer alone (no HTTP, nothing else on the loop): how late
    this machine lets the loop wake at the moment."""
    import numpy as np

    from loadgen.arrivals import poisson
    from loadgen.client import run_coro
    from loadgen.pacer import Pacer

    times = poisson(np.random.default_rng(0), rate, duration)

    async def go() -> list[float]:
        t0, late = time.monotonic() + 0.05, []
        async with Pacer(lead_s) as p:
            for t in times:
                await p.wait(t0 + t)
                late.append(time.monotonic() - t0 - t)
        return late

    late = np.asarray(run_coro(go())) * 1000
    return {"rate": rate, "lateness_p50_ms": float(np.percentile(late, 50)),
            "lateness_p99_ms": float(np.percentile(late, 99)), "lateness_max_ms": float(late.max())}


class CpuMeter:
    """Cores used while a block runs: by this process (and its workers), by
    the server, and by everything else on the machine (other people's work,
    which is what makes a figure from a shared machine worse)."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid

    @staticmethod
    def _busy_s() -> float:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(f) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")

    def _server_s(self) -> float:
        f = Path(f"/proc/{self.server_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_s() -> float:
        me, kids = os.times(), os.times()
        return me.user + me.system + kids.children_user + kids.children_system

    def __enter__(self) -> CpuMeter:
        self.t, self.busy, self.srv, self.own = time.monotonic(), self._busy_s(), self._server_s(), self._own_s()
        return self

    def __exit__(self, *exc) -> None:
        el = time.monotonic() - self.t
        busy, srv, own = self._busy_s() - self.busy, self._server_s() - self.srv, self._own_s() - self.own
        self.cores = {"loadgen": own / el, "server": srv / el, "others": (busy - own - srv) / el}


def ours_ceiling(url: str, workers: int, clients: int = 64, duration: float = 5.0,
                 cpu: CpuMeter | None = None) -> dict:
    s = spec(1, duration, clients={"n": clients, "think_time_s": 0.0})
    with cpu or contextlib.nullcontext():
        res = run(s, ClientConfig(targets=url, concurrency=clients), workers=workers)
    done = [r for r in res.records if r.status == "completed"]
    return {"workers": workers, "clients": clients, "req_s": len(done) / duration,
            "failed": len(res.records) - len(done)} | ({"cores": cpu.cores} if cpu else {})


def vllm_bench(url: str, rate: float, duration: float, tokenizer: str) -> dict:
    from vllm.benchmarks import serve
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    p = FlexibleArgumentParser()
    serve.add_cli_args(p)
    n = int(rate * duration)
    args = p.parse_args([
        "--backend", "vllm", "--base-url", url, "--model", "null", "--tokenizer", tokenizer,
        "--dataset-name", "random", "--random-input-len", str(PROMPT),
        "--random-output-len", str(OUTPUT), "--num-prompts", str(n), "--request-rate", str(rate),
        "--ignore-eos", "--seed", "0", "--percentile-metrics", "ttft,tpot,itl,e2el",
        "--metric-percentiles", "50,99", "--disable-tqdm",
    ])
    r = serve.main(args)
    return {
        "tool": "vllm bench serve", "target_rps": rate, "num_prompts": n,
        "completed_over_span_rps": r["request_throughput"], "duration_s": r["duration"],
        "failed": r["failed"], "ttft_sent_p50_ms": r["p50_ttft_ms"], "ttft_sent_p99_ms": r["p99_ttft_ms"],
        "e2e_sent_p50_ms": r["p50_e2el_ms"], "e2e_sent_p99_ms": r["p99_e2el_ms"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--workers", type=lambda v: [int(x) for x in v.split(",")], default=[2],
                    help="worker processes for the multi-process runs; a comma list runs each")
    ap.add_argument("--lead-ms", type=float, default=LEAD_S * 1000,
                    help="the pacer wakes this long before each send, then yields to it")
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument("--skip-ceiling", action="store_true", help="no closed-loop ceilings")
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args()
    out: dict = {"load_before": os.getloadavg(), "cores": os.cpu_count(),
                 "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    lead = a.lead_ms / 1000
    out["pacer_floor"] = pacer_floor(a.rate, min(a.duration, 10.0), lead)
    print(json.dumps(out["pacer_floor"]), flush=True)
    server, url = start_null()
    cpu = CpuMeter(server.pid)
    try:
        out["open_1"] = ours_open(url, a.rate, a.duration, 1, lead, cpu)
        print(json.dumps(out["open_1"], indent=1), flush=True)
        for n in a.workers:
            out[f"open_{n}"] = ours_open(url, a.rate, a.duration, n, lead, cpu)
            print(json.dumps(out[f"open_{n}"], indent=1), flush=True)
        out["open_n"] = out[f"open_{a.workers[0]}"]
        if not a.skip_ceiling:
            for n in [1, *a.workers]:
                out[f"ceiling_{n}"] = ours_ceiling(url, n, cpu=cpu)
            out["ceiling_n"] = out[f"ceiling_{a.workers[0]}"]
            print(json.dumps([out[f"ceiling_{n}"] for n in [1, *a.workers]]), flush=True)
        if not a.skip_vllm:
            sys.path.insert(0, str(ROOT))
            from engine.tiny_model import ensure_tiny_model

            with cpu:
                out["vllm"] = vllm_bench(url, a.rate, a.duration, str(ensure_tiny_model()))
            out["vllm"]["cores"] = cpu.cores
    finally:
        server.terminate()
        server.wait(timeout=10)
    out["load_after"] = os.getloadavg()
    rows = [out["open_1"]] + [out[f"open_{n}"] for n in a.workers] + ([out["vllm"]] if "vllm" in out else [])
    for r in rows:
        r["completed_over_target"] = r["completed_over_span_rps"] / r["target_rps"]
        r.update({f"cores_{k}": v for k, v in r["cores"].items()})
    keys = ["target_rps", "sent_over_target", "sent_over_offered", "completed_over_span_rps",
            "completed_over_target", "lateness_p50_ms",
            "lateness_p99_ms", "ttft_sent_p50_ms", "ttft_sent_p99_ms", "ttft_p99_ms",
            "e2e_sent_p50_ms", "e2e_sent_p99_ms", "e2e_p99_ms", "failed", "cores_loadgen",
            "cores_server", "cores_others"]
    print(f"\n{'metric':<26}" + "".join(f"{r['tool']:>28}" for r in rows))
    for k in keys:
        cells = []
        for r in rows:
            v = r.get(k)
            cells.append(f"{'n/a' if v is None else (f'{v:.4g}' if isinstance(v, float) else v):>28}")
        print(f"{k:<26}" + "".join(cells))
    if not a.skip_ceiling:
        print("ceiling (closed loop, 64 clients): " + ", ".join(
            f"{n} proc {out[f'ceiling_{n}']['req_s']:.0f} req/s" for n in [1, *a.workers]))
    print(f"pacer: {out['open_1']['pacer']}")
    pf = out["pacer_floor"]
    print(f"pacer alone at {pf['rate']:.0f}/s (no HTTP): lateness p50 {pf['lateness_p50_ms']:.3f} ms, "
          f"p99 {pf['lateness_p99_ms']:.3f} ms, max {pf['lateness_max_ms']:.3f} ms")
    print(f"load average before {out['load_before']}, after {out['load_after']}")
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
