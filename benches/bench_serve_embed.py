"""What dynamic batching buys serve-embed (MiniLM on CPU or CUDA), in process and over HTTP.

Why: the hybrid policy's embedding batching rests on batching being much
cheaper per text than one-at-a-time encoding (~4.6x in-process, measured with the packaged MiniLM on 2 cores).
Two parts, both through the project's own code:

- encode: `STEngine.encode` on batches of 1, 8, 32 and 128 texts (embeddings/s),
  the engine's raw speed on the device and dtype asked for;
- http: one launched serve-embed, closed loop with one text per request at
  concurrency 1, 8, 32 and 128 — whether the server keeps the gain end to end.

`--save-vectors` writes the embeddings of a fixed set of 128 texts and
`--reference` compares them (cosine) with a saved set, e.g. CUDA against CPU:

    .venv/bin/python benches/bench_serve_embed.py [--seconds 8] [--part encode|http|both]
    python3 benches/bench_serve_embed.py --device cuda --model DIR --reference cpu.npy
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_serve_sim import _case  # noqa: E402  same closed-loop client and CPU accounting

from engine.launcher import Launcher  # noqa: E402
from engine.spec import BackendSpec  # noqa: E402
from engine.st_engine import DTYPES, STEngine  # noqa: E402

BATCHES = (1, 8, 32, 128)
_WORDS = ("the scheduler batches embedding requests while chat streams tokens from a GPU "
          "queue latency throughput model server cluster policy priority client vector "
          "sentence search index document answer retrieval prompt cache memory").split()


def fixed_texts(n: int = 128) -> list[str]:
    """n sentences of 6-40 words, the same on every machine (seeded)."""
    rng = random.Random(0)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 40))) for _ in range(n)]


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"reference: shape {b.shape} does not match {a.shape}")
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return float(cos.min())


def encode_part(a: argparse.Namespace) -> list[dict]:
    t0 = time.perf_counter()
    eng = STEngine(a.model, device=a.device, max_batch=max(BATCHES), threads=a.threads,
                   dtype=a.dtype)
    warm = " (warm-up encode included)" if a.device != "cpu" else ""
    print(f"loaded {eng.name} on {a.device} ({a.dtype}) in {time.perf_counter() - t0:.1f} s{warm}")
    texts = fixed_texts()
    vecs = eng.encode(texts).vectors
    if a.save_vectors:
        np.save(a.save_vectors, vecs)
    for ref in a.reference:
        print(f"min cosine vs {ref} over {len(texts)} texts: "
              f"{min_cosine(vecs, np.load(ref)):.6f}")
    rows = []
    for b in BATCHES:
        batch = texts[:b]
        eng.encode(batch)  # warm-up at this shape
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < a.encode_seconds:
            eng.encode(batch)
            n += 1
        wall = time.perf_counter() - t0
        rows.append({"batch": b, "emb_s": n * b / wall, "ms_per_batch": 1000 * wall / n})
    print(f"| batch | embeddings/s | ms per batch |  ({a.device}, {a.dtype}, "
          f"{a.encode_seconds:g} s per batch size)")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['emb_s']:.0f} | {r['ms_per_batch']:.2f} |")
    return rows


def http_part(a: argparse.Namespace) -> list[dict]:
    extra = ["--max-batch", str(a.max_batch), "--max-wait-ms", str(a.max_wait_ms),
             "--dtype", a.dtype]
    spec = BackendSpec(name="minilm", kind="sentence-transformers", capabilities=["embedding"],
                       device="gpu" if a.device.startswith("cuda") else "cpu",
                       model=a.model or "", extra_args=extra)
    body = {"input": ["a short sentence about serving embeddings on a CPU"]}
    with tempfile.TemporaryDirectory() as run_dir, Launcher([spec], run_dir) as (eng,):
        print(f"serve-embed version: {eng.version}")
        _case("warm-up", eng, "/v1/embeddings", body, 2.0, 8, False)
        rows = [_case(f"concurrency {c}", eng, "/v1/embeddings", body, a.seconds, c, False)
                for c in BATCHES]
    print(f"max_batch {a.max_batch}, max_wait_ms {a.max_wait_ms:g}, {a.seconds:g} s per case")
    print("| case | texts/s | p50 ms | p99 ms | server CPU ms/text |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['req_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
              f"{r['server_cpu_ms_per_req']:.2f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("encode", "http", "both"), default="both")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--model", default=None, help="model folder (default: packaged MiniLM)")
    ap.add_argument("--dtype", default="float32", choices=DTYPES)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads for the encode part (default: torch's)")
    ap.add_argument("--encode-seconds", type=float, default=3.0)
    ap.add_argument("--save-vectors", default=None, help="write the fixed texts' vectors (.npy)")
    ap.add_argument("--reference", action="append", default=[],
                    help="compare with vectors saved earlier (repeatable)")
    ap.add_argument("--seconds", type=float, default=8.0, help="per HTTP concurrency level")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    a = ap.parse_args()
    if a.part in ("encode", "both"):
        encode_part(a)
    if a.part in ("http", "both"):
        http_part(a)


if __name__ == "__main__":
    main()
