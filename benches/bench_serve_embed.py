"""What dynamic batching buys serve-embed (packaged MiniLM on CPU), over HTTP.

Why: the hybrid policy's embedding batching rests on batching being much
cheaper per text than one-at-a-time encoding (~4.6x in-process, SETUP-FACTS).
This checks the server keeps that gain end to end: closed loop with one text
per request at concurrency 1, 8, 32 and 128 against one launched serve-embed.

    .venv/bin/python benches/bench_serve_embed.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import tempfile

from bench_serve_sim import _case  # same closed-loop client and CPU accounting

from engine.launcher import Launcher
from engine.spec import BackendSpec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    a = ap.parse_args()
    spec = BackendSpec(name="minilm", kind="sentence-transformers", capabilities=["embedding"],
                       device="cpu", extra_args=["--max-batch", str(a.max_batch),
                                                 "--max-wait-ms", str(a.max_wait_ms)])
    body = {"input": ["a short sentence about serving embeddings on a CPU"]}
    with tempfile.TemporaryDirectory() as run_dir, Launcher([spec], run_dir) as (eng,):
        _case("warm-up", eng, "/v1/embeddings", body, 2.0, 8, False)
        rows = [_case(f"concurrency {c}", eng, "/v1/embeddings", body, a.seconds, c, False)
                for c in (1, 8, 32, 128)]
    print(f"max_batch {a.max_batch}, max_wait_ms {a.max_wait_ms:g}, {a.seconds:g} s per case")
    print("| case | texts/s | p50 ms | p99 ms | server CPU ms/text |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['req_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
              f"{r['server_cpu_ms_per_req']:.2f} |")


if __name__ == "__main__":
    main()
