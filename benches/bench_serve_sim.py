"""How many requests per second one serve-sim process sustains on this machine.

Why: the gateway benchmark loads 8 serve-sim engines at 1000 req/s in total on
2 cores, so each engine must serve ~125 req/s while leaving most of the CPU to
the gateway and the load generator. This measures one engine alone (client in
this process, server a launched child), closed loop at a fixed concurrency,
and the server's own CPU time per request — the figure that decides how many
fit on the machine. Run:

    .venv/bin/python benches/bench_serve_sim.py [--seconds 10] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.launcher import Launcher  # noqa: E402
from engine.spec import BackendSpec  # noqa: E402


async def _load(url: str, path: str, body: dict, seconds: float, concurrency: int,
                stream: bool) -> tuple[int, int, list[float]]:
    done, chunks, lat = 0, 0, []
    end = time.perf_counter() + seconds
    data = json.dumps(body).encode()
    hdr = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        async def worker() -> None:
            nonlocal done, chunks
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                async with s.post(url + path, data=data, headers=hdr) as r:
                    if stream:
                        async for line in r.content:
                            if line.startswith(b"data: {"):
                                chunks += 1
                    else:
                        await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{path}: HTTP {r.status}")
                lat.append(time.perf_counter() - t0)
                done += 1

        await asyncio.gather(*[worker() for _ in range(concurrency)])
    return done, chunks, lat


def _case(name: str, engine, path: str, body: dict, seconds: float, conc: int,
          stream: bool) -> dict:
    proc = psutil.Process(engine.pid)
    cpu0 = sum(proc.cpu_times()[:2])
    t0 = time.perf_counter()
    done, chunks, lat = asyncio.run(_load(engine.url, path, body, seconds, conc, stream))
    wall = time.perf_counter() - t0
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    lat.sort()
    return {"case": name, "req_s": done / wall, "chunks_s": chunks / wall,
            "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[int(len(lat) * 0.99)],
            "server_cpu_ms_per_req": 1000 * cpu / max(done, 1),
            "server_cpu_share": cpu / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--preset", default="7b-h100")
    ap.add_argument("--output-tokens", type=int, default=32)
    a = ap.parse_args()
    specs = [
        BackendSpec(name="llm1", kind="sim", capabilities=["chat"], preset=a.preset),
        BackendSpec(name="llm8", kind="sim", capabilities=["chat"], preset=a.preset,
                    extra_args=["--stream-interval", "8"]),
        BackendSpec(name="emb", kind="sim", capabilities=["embedding"], preset="minilm-h100"),
    ]
    chat = {"messages": [{"role": "user", "content": " ".join(["w"] * 64)}],
            "max_tokens": a.output_tokens, "stream": True,
            "stream_options": {"include_usage": True}}
    emb = {"input": ["a short text to embed"]}
    with tempfile.TemporaryDirectory() as run_dir, Launcher(specs, run_dir) as (l1, l8, e):
        rows = [
            _case(f"chat stream, {a.output_tokens} tok, 1 tok/chunk", l1, "/v1/chat/completions",
                  chat, a.seconds, a.concurrency, True),
            _case(f"chat stream, {a.output_tokens} tok, 8 tok/chunk", l8, "/v1/chat/completions",
                  chat, a.seconds, a.concurrency, True),
            _case("embedding, 1 text", e, "/v1/embeddings", emb, a.seconds, a.concurrency, False),
        ]
    print(f"preset {a.preset}, concurrency {a.concurrency}, {a.seconds:g} s per case")
    print("| case | req/s | chunks/s | p50 ms | p99 ms | server CPU ms/req | server CPU share |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['req_s']:.0f} | {r['chunks_s']:.0f} | {r['p50_ms']:.1f} | "
              f"{r['p99_ms']:.1f} | {r['server_cpu_ms_per_req']:.2f} | "
              f"{r['server_cpu_share']:.2f} |")


if __name__ == "__main__":
    main()
