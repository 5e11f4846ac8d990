"""Gateway overhead and throughput: engines direct vs a bare proxy vs the gateway.

Why: the control plane must add almost nothing to latency. In one
run, against the same upstream engines (the load generator's null server, one
process for LLM traffic and one for embeddings, fixed pace), the load
generator (loadgen.runner) sends the same schedule

  1. straight to the engines,
  2. through a bare aiohttp pass-through proxy (written here: the floor any
     Python HTTP hop costs on this machine),
  3. through the gateway (`sagetui gateway`, policy fifo: no batching wait),

and reports the added latency at p50/p99 and the gateway's overhead as a ratio
to the proxy's (latency, and each hop's own CPU per request). A one-in-flight
phase gives the hop's latency with no queueing; small embedding requests in a
closed loop measure the gateway's sustained req/s (policy fifo and hybrid).

    .venv/bin/python benches/bench_gateway.py [--rate 500] [--duration 10] [--rounds 2]
                                              [--only all|serial|mixed|embed] [--workers 1]
                                              [--baseline REF] [--gateways N] [--json OUT]

--workers spreads the load generator's sends over that many processes (open loop
and closed loop; the one-in-flight phase stays one), so that at high rates the
client is not what saturates.

--baseline REF adds the gateway of git revision REF (e.g. `94dcbb9`, the aiohttp gateway, extracted with
`git archive` into a temporary folder) as one more path in the open- and closed-loop
phases, so "CPU per request against the baseline" comes from one run on one
machine load; the summary prints gateway ÷ baseline and gateway ÷ bare proxy.

--gateways N (N > 1) adds a path of N independent gateway processes with the
load generator spreading requests over them round-robin: N control planes, no
global view, so it is not a design to run but the upper bound of what relaying
on more than one core could give on this machine (docs/gateway.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from revision import extract_ref  # noqa: E402

from loadgen.client import ClientConfig  # noqa: E402
from loadgen.runner import run  # noqa: E402
from loadgen.spec import WorkloadSpec  # noqa: E402

PY = sys.executable

# A path pushed past what it can pass queues without end; the client's default 300 s
# per request then held a 3000 req/s point past its step's time limit on the 16-core
# host, and nothing was measured. 30 s ends it with the overflow counted
# as failed, which is the answer: that path does not pass this rate.
REQUEST_TIMEOUT_S = 30.0


# -- the bare proxy (runs as `bench_gateway.py --proxy PORT LLM_URL EMB_URL`) -----------------

def serve_proxy(port: int, llm_url: str, emb_url: str) -> None:
    """A pass-through proxy: no parsing, no policy; streams bytes both ways."""
    import aiohttp
    import uvloop
    from aiohttp import web

    async def main() -> None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                        auto_decompress=False)

        async def handle(request: web.Request) -> web.StreamResponse:
            base = emb_url if request.path == "/v1/embeddings" else llm_url
            body = await request.read()
            async with session.post(base + request.path, data=body,
                                    headers={"Content-Type": "application/json"}) as up:
                out = web.StreamResponse(status=up.status, headers={
                    "Content-Type": up.headers.get("Content-Type", "application/json")})
                await out.prepare(request)
                async for chunk in up.content.iter_any():
                    await out.write(chunk)
                await out.write_eof()
                return out

        app = web.Application()
        app.router.add_post("/{tail:.*}", handle)
        app.router.add_get("/health", lambda r: web.Response(text="ok"))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()  # as the gateway
        await asyncio.Event().wait()

    uvloop.run(main())


# -- harness ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Servers' stderr goes to a file each: a pipe nobody reads fills up (64 KiB) once a
# swamped server logs its disconnects, and the server then blocks in write(2) with
# every request it holds, for the rest of the run.
LOGS = Path(tempfile.mkdtemp(prefix="bench_gw_logs_"))


def log_for(url: str) -> Path:
    return LOGS / (url.rsplit(":", 1)[-1] + ".log")


def wait_health(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            tail = log_for(url).read_text(errors="replace")[-2000:] if log_for(url).exists() else ""
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}: {tail}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not healthy after {timeout} s")


def start(args: list[str], url: str, cwd: Path = ROOT, env: dict | None = None
          ) -> subprocess.Popen:
    with open(log_for(url), "wb") as log:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    wait_health(url, proc)
    return proc


# What `sagetui gateway` imports: the packages a baseline revision needs.
GATEWAY_PACKAGES = ["scheduler", "engine", "vocab", "sagetui", "loadgen", "store", "exports"]


def start_gateway_proc(cfg: Path, port: int, url: str, tree: Path | None = None
                       ) -> subprocess.Popen:
    """`sagetui gateway` from this tree, or from `tree` (a baseline revision)."""
    if tree is None:
        return start([PY, "-m", "sagetui", "gateway", "--config", str(cfg), "--port",
                      str(port)], url)
    return start([PY, "-m", "sagetui", "gateway", "--config", str(cfg), "--port", str(port)],
                 url, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)})


class Group:
    """Several processes measured as one hop (their CPU summed)."""

    def __init__(self, procs: list[subprocess.Popen]) -> None:
        self.procs = procs


def gateway_config(path: Path, llm: str, emb: str, policy: str) -> None:
    path.write_text(
        f'[control_plane]\npolicy = "{policy}"\nrouter = "least-outstanding"\n'
        f'[control_plane.hybrid]\nbatch_max_texts = 32\nbatch_max_wait_ms = 2\n'
        f'[[backends]]\nname = "llm"\nkind = "openai"\ncapabilities = ["chat"]\n'
        f'model = "tiny"\nurl = "{llm}"\nmax_concurrency = 512\ndevice = "cpu"\n'
        f'[[backends]]\nname = "emb"\nkind = "openai"\ncapabilities = ["embedding"]\n'
        f'model = "mini"\nurl = "{emb}"\nmax_concurrency = 64\ndevice = "cpu"\n')


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def cpu_s(proc: subprocess.Popen | Group | None) -> float:
    """User+system CPU seconds a server process (or group) has used so far."""
    if proc is None:
        return 0.0
    if isinstance(proc, Group):
        return sum(map(cpu_s, proc.procs))
    t = psutil.Process(proc.pid).cpu_times()
    return t.user + t.system


def client_cpu_s() -> float:
    """CPU seconds of the load generator: this process and its finished worker
    processes (waited for, so counted in RUSAGE_CHILDREN; the servers are not waited
    for until the end)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def busy_span(records: list) -> float:
    """Seconds from the first send to the last answer: CPU over it is the cores a
    process used while the run was on (worker start-up left out)."""
    sent = [r.t_sent for r in records if r.t_sent is not None]
    done = [r.t_done for r in records if r.t_done is not None]
    return max(done) - min(sent) if sent and done else float("nan")


def measure_mixed(target: str | dict, rate: float, duration: float, warmup: float,
                  hop: subprocess.Popen | Group | None = None, workers: int = 1,
                  engines: tuple[subprocess.Popen, ...] = ()) -> dict:
    """Open-loop Poisson, 70% streamed chat / 30% embeddings; latencies from the actual
    send (the same schedule for every path, so differences are the hop's cost)."""
    spec = WorkloadSpec(rate=rate, duration_s=duration, warmup_s=warmup, seed=7,
                        mix={"chat": 0.7, "completion": 0.0, "embedding": 0.3, "pipeline": 0.0},
                        sizes={"chat": {"prompt_tokens": 32, "output_tokens": 8},
                               "embedding": {"n_texts": 1, "text_tokens": 16}},
                        model="tiny", embedding_model="mini")
    targets = target if isinstance(target, dict) else {"chat": [target], "embedding": [target]}
    c0, e0, l0 = cpu_s(hop), sum(map(cpu_s, engines)), client_cpu_s()
    res = run(spec, ClientConfig(targets=targets, concurrency=2048,
                                 timeout_s=REQUEST_TIMEOUT_S), workers=workers)
    wall = busy_span(res.records)
    hop_cpu, eng_cpu = cpu_s(hop) - c0, sum(map(cpu_s, engines)) - e0
    n_all = len(res.records) or 1
    per_req = {"client_cpu_us_per_req": (client_cpu_s() - l0) * 1e6 / n_all,
               "engine_cpu_us_per_req": eng_cpu * 1e6 / n_all}
    recs = [r for r in res.records if r.t_intended >= warmup]
    ok = [r for r in recs if r.status == "completed"]
    e2e = [(r.t_done - r.t_sent) * 1000 for r in ok]
    ttft = [(r.t_first_token - r.t_sent) * 1000 for r in ok if r.cls == "chat"]
    late = [(r.t_sent - r.t_intended) * 1000 for r in recs if r.t_sent is not None]
    return {"n": len(recs), "failed": len(recs) - len(ok),
            "e2e_p50": pct(e2e, 50), "e2e_p99": pct(e2e, 99),
            "ttft_p50": pct(ttft, 50), "ttft_p99": pct(ttft, 99),
            "lateness_p99": pct(late, 99),
            "offered_rps": len(recs) / duration,  # the run is warmup + duration
            "sent_rps": len(late) / duration,
            "completed_rps": len(ok) / (max(r.t_done for r in ok) - warmup) if ok else 0.0,
            "hop_cores": hop_cpu / wall, "engine_cores": eng_cpu / wall,
            "hop_cpu_us_per_req": hop_cpu * 1e6 / len(res.records) if res.records else None,
            **per_req}


def measure_embed_throughput(target: str | list[str], clients: int, duration: float,
                             hop: subprocess.Popen | Group | None = None,
                             workers: int = 1, engine: subprocess.Popen | None = None) -> dict:
    """Closed loop: `clients` concurrent callers of small embedding requests."""
    spec = WorkloadSpec(clients={"n": clients, "think_time_s": 0.0}, duration_s=duration,
                        warmup_s=1.0, seed=3,
                        mix={"chat": 0.0, "completion": 0.0, "embedding": 1.0, "pipeline": 0.0},
                        sizes={"embedding": {"n_texts": 1, "text_tokens": 8}},
                        model="tiny", embedding_model="mini")
    c0, e0, l0 = cpu_s(hop), cpu_s(engine), client_cpu_s()
    urls = target if isinstance(target, list) else [target]
    res = run(spec, ClientConfig(targets={"embedding": urls}, concurrency=clients,
                                 timeout_s=REQUEST_TIMEOUT_S), workers=workers)
    wall = busy_span(res.records)
    hop_cpu = cpu_s(hop) - c0
    n_all = len(res.records) or 1
    per_req = {"client_cpu_us_per_req": (client_cpu_s() - l0) * 1e6 / n_all,
               "engine_cpu_us_per_req": (cpu_s(engine) - e0) * 1e6 / n_all}
    ok = [r for r in res.records if r.status == "completed" and r.t_done is not None]
    t_first = min(r.t_sent for r in ok)
    t_last = max(r.t_done for r in ok)
    e2e = [(r.t_done - r.t_sent) * 1000 for r in ok]
    return {"rps": len(ok) / (t_last - t_first), "failed": len(res.records) - len(ok),
            "e2e_p50": pct(e2e, 50), "e2e_p99": pct(e2e, 99), "hop_cores": hop_cpu / wall,
            "hop_cpu_us_per_req": hop_cpu * 1e6 / len(res.records) if res.records else None,
            **per_req}


def measure_serial(target: str | dict, duration: float) -> dict:
    """One request in flight at a time (closed loop, one caller): the hop's own latency
    with no queueing anywhere, 70 % streamed chat / 30 % embeddings."""
    spec = WorkloadSpec(clients={"n": 1, "think_time_s": 0.0}, duration_s=duration,
                        warmup_s=0.5, seed=5,
                        mix={"chat": 0.7, "completion": 0.0, "embedding": 0.3, "pipeline": 0.0},
                        sizes={"chat": {"prompt_tokens": 32, "output_tokens": 8},
                               "embedding": {"n_texts": 1, "text_tokens": 16}},
                        model="tiny", embedding_model="mini")
    targets = target if isinstance(target, dict) else {"chat": [target], "embedding": [target]}
    res = run(spec, ClientConfig(targets=targets, concurrency=1))
    ok = [r for r in res.records if r.status == "completed" and r.t_intended >= 0.5]
    e2e = [(r.t_done - r.t_sent) * 1000 for r in ok]
    ttft = [(r.t_first_token - r.t_sent) * 1000 for r in ok if r.cls == "chat"]
    return {"n": len(ok), "failed": len(res.records) - len(ok) - sum(
                r.t_intended < 0.5 for r in res.records),
            "e2e_p50": pct(e2e, 50), "e2e_p99": pct(e2e, 99),
            "ttft_p50": pct(ttft, 50), "ttft_p99": pct(ttft, 99)}


def keep(rounds: dict[str, list[dict]], key: str, i: int, measure) -> None:
    """One path's measurement of round i, kept under `key`. A path that does not answer
    at all (its preflight times out when the machine is swamped) loses that round,
    said on stdout, instead of the whole run."""
    try:
        r = measure()
    except RuntimeError as exc:
        rounds.setdefault(key, [])
        print(f"round {i} {key.replace('_', ' ', 1)}: not measured: {exc}", flush=True)
        return
    rounds.setdefault(key, []).append(r)
    print(f"round {i} {key.replace('_', ' ', 1)}", json.dumps(r), flush=True)


def median_of(rounds: list[dict]) -> dict:
    """Per-key median over rounds (the machine is shared: rounds interleave paths so
    a busy moment hits all of them)."""
    return {k: float(np.median([r[k] for r in rounds if r.get(k) is not None]))
            for k in rounds[0] if isinstance(rounds[0][k], int | float)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", choices=("all", "mixed", "embed", "serial"), default="all")
    ap.add_argument("--workers", type=int, default=1,
                    help="load-generator processes for the open- and closed-loop phases")
    ap.add_argument("--baseline", default=None, metavar="REF",
                    help="also measure the gateway of this git revision (e.g. main)")
    ap.add_argument("--gateways", type=int, default=1,
                    help="also measure N independent gateways behind client-side round robin")
    ap.add_argument("--json", type=Path, default=None, help="write the results here too")
    ap.add_argument("--proxy", nargs=3, metavar=("PORT", "LLM_URL", "EMB_URL"),
                    help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.proxy:
        serve_proxy(int(a.proxy[0]), a.proxy[1], a.proxy[2])
        return
    procs: list[subprocess.Popen] = []
    results: dict = {"machine": f"{os.cpu_count()} cores", "rate": a.rate, "workers": a.workers,
                     "duration_s": a.duration, "load_avg_start": os.getloadavg()}
    rounds: dict[str, list[dict]] = {}
    try:
        names = ["llm", "emb", "proxy", "fifo", "hybrid"]
        names += ["base"] if a.baseline else []
        names += [f"fifo{i}" for i in range(1, a.gateways)]
        ports = {k: free_port() for k in names}
        url = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
        procs.append(start([PY, "-m", "loadgen.null_server", "--port", str(ports["llm"]),
                            "--ttft-ms", "5", "--tpot-ms", "1"], url["llm"]))
        procs.append(start([PY, "-m", "loadgen.null_server", "--port", str(ports["emb"]),
                            "--ttft-ms", "2"], url["emb"]))
        proxy = start([PY, __file__, "--proxy", str(ports["proxy"]), url["llm"], url["emb"]],
                      url["proxy"])
        procs.append(proxy)
        tmp = Path(tempfile.mkdtemp(prefix="bench_gw_"))
        gws = {}
        for policy in ("fifo", "hybrid"):
            cfg = tmp / f"{policy}.toml"
            gateway_config(cfg, url["llm"], url["emb"], policy)
            gws[policy] = start_gateway_proc(cfg, ports[policy], url[policy])
            procs.append(gws[policy])
        if a.baseline:
            results["baseline"] = a.baseline
            tree = extract_ref(a.baseline, tmp / "baseline", GATEWAY_PACKAGES)
            gws["base"] = start_gateway_proc(tmp / "fifo.toml", ports["base"], url["base"], tree)
            procs.append(gws["base"])
        many = [f"fifo{i}" for i in range(1, a.gateways)]
        for k in many:
            gws[k] = start_gateway_proc(tmp / "fifo.toml", ports[k], url[k])
            procs.append(gws[k])
        warm = min(2.0, a.duration / 4)
        direct_t = {"chat": [url["llm"]], "embedding": [url["emb"]]}
        serial = () if a.only not in ("all", "serial") else (
            ("direct", direct_t), ("proxy", url["proxy"]), ("gateway", url["fifo"]))
        mixed: list = [] if a.only not in ("all", "mixed") else [
            ("direct", direct_t, None), ("proxy", url["proxy"], proxy),
            ("gateway", url["fifo"], gws["fifo"])]
        embed: list = [] if a.only not in ("all", "embed") else [
            ("direct", url["emb"], None), ("proxy", url["proxy"], proxy),
            ("gateway_fifo", url["fifo"], gws["fifo"]),
            ("gateway_hybrid", url["hybrid"], gws["hybrid"])]
        if a.baseline and mixed:
            mixed.append(("gateway_base", url["base"], gws["base"]))
        if a.baseline and embed:
            embed.append(("gateway_base", url["base"], gws["base"]))
        if many:
            spread = [url["fifo"]] + [url[k] for k in many]
            group = Group([gws["fifo"]] + [gws[k] for k in many])
            if mixed:
                mixed.append((f"gateway_x{a.gateways}",
                              {"chat": spread, "embedding": spread}, group))
            if embed:
                embed.append((f"gateway_x{a.gateways}", spread, group))
        for i in range(a.rounds):
            for name, tgt in serial:
                keep(rounds, f"serial_{name}", i, lambda t=tgt: measure_serial(t, a.duration))
            for name, tgt, hop in mixed:
                keep(rounds, f"mixed_{name}", i, lambda t=tgt, h=hop: measure_mixed(
                    t, a.rate, a.duration, warm, h, a.workers, tuple(procs[:2])))
            for name, tgt, hop in embed:
                keep(rounds, f"embed_{name}", i, lambda t=tgt, h=hop: measure_embed_throughput(
                    t, a.clients, a.duration, h, a.workers, procs[1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    results["load_avg_end"] = os.getloadavg()
    results["rounds"] = rounds
    med = {k: median_of(v) for k, v in rounds.items() if v}
    results["median"] = med
    summary: dict = {}
    three = ("direct", "proxy", "gateway")
    if serial and all(f"serial_{k}" in med for k in three):
        d, p_, g = (med[f"serial_{k}"] for k in three)
        summary["serial"] = {q: {"gateway_adds_ms": round(g[q] - d[q], 3),
                                 "proxy_adds_ms": round(p_[q] - d[q], 3)}
                             for q in ("e2e_p50", "e2e_p99", "ttft_p50", "ttft_p99")}
    if mixed and all(f"mixed_{k}" in med for k in three):
        d, p_, g = (med[f"mixed_{k}"] for k in three)
        for q in ("e2e_p50", "e2e_p99", "ttft_p50", "ttft_p99"):
            add_gw, add_px = g[q] - d[q], p_[q] - d[q]
            summary[q] = {"gateway_adds_ms": round(add_gw, 3),
                          "proxy_adds_ms": round(add_px, 3),
                          "ratio_to_proxy": round(add_gw / add_px, 2) if add_px > 0 else None}
        pc, gc_ = p_["hop_cpu_us_per_req"], g["hop_cpu_us_per_req"]
        summary["hop_cpu_us_per_req"] = {"gateway": round(gc_, 1), "proxy": round(pc, 1),
                                         "ratio_to_proxy": round(gc_ / pc, 2)}
        if "mixed_gateway_base" in med:
            b = med["mixed_gateway_base"]
            bc = b["hop_cpu_us_per_req"]
            summary["hop_cpu_us_per_req"].update(
                baseline=round(bc, 1), baseline_ref=a.baseline,
                ratio_to_baseline=round(gc_ / bc, 2), baseline_ratio_to_proxy=round(bc / pc, 2))
            summary["baseline_adds_ms"] = {q: round(b[q] - d[q], 3)
                                           for q in ("e2e_p50", "e2e_p99", "ttft_p50",
                                                     "ttft_p99")}
    summary["embed_rps"] = {k.removeprefix("embed_"): round(v["rps"], 1)
                            for k, v in med.items() if k.startswith("embed_")}
    # CPU per request of each process kind at saturation: on a machine whose cores the
    # client and the engines share with the hop, the hop's share bounds what moving it
    # to more cores could give
    summary["embed_cpu_us_per_req"] = {
        k.removeprefix("embed_"): {w: round(v[f"{w}_cpu_us_per_req"] or 0.0, 1)
                                   for w in ("hop", "client", "engine")}
        for k, v in med.items() if k.startswith("embed_")}
    results["summary"] = summary
    print(json.dumps(summary, indent=2))
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
