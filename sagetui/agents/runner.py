"""Evaluate every strategy on the shipped dataset and store one run per strategy.

Each run's summary `all` carries `extra.agent = {strategy, metrics}` (the shape
the agents table reads) and a `selection` latency histogram. The embedding
strategy uses the real embedding engine in-process (MiniLM); the LLM strategy
needs a chat engine, so it runs only in live mode (launched or by URL) and is
skipped with a stored reason in sim mode.
"""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Callable

import numpy as np

from loadgen.metrics import distribution_ms, new_histogram
from store import open_store

from . import dataset, metrics
from .strategies import (
    BM25Retriever,
    EmbeddingRetriever,
    HybridRetriever,
    LLMRetriever,
    Retriever,
    plan,
    should_call,
    timed,
)

STRATEGIES = ("bm25", "embedding", "hybrid", "llm")


def subsample(items: list[dict], limit: int | None, seed: int) -> list[dict]:
    if limit is None or limit >= len(items):
        return items
    return random.Random(seed).sample(items, limit)


def limits(limit: int | None) -> dict[str, int | None]:
    """Items evaluated per part of the dataset under a `--quick` limit (None: all).
    Planning and timing get a third of it, at least 10."""
    other = limit and max(10, limit // 3)
    return {"selection": limit, "planning": other, "timing": other}


def item_counts(data: dict, limit: int | None) -> dict[str, int]:
    """How many items of each part one strategy is evaluated on (for run-time estimates)."""
    return {part: len(data[part]) if n is None else min(n, len(data[part]))
            for part, n in limits(limit).items()}


def evaluate(retriever: Retriever, data: dict, *, limit: int | None = None,
             seed: int = 0) -> tuple[dict, list[float]]:
    """All agent metrics of one strategy, and its per-query selection latencies (s)."""
    lim = limits(limit)
    sel = subsample(data["selection"], lim["selection"], seed)
    ranks, lat = [], []
    for item in sel:
        (ranking, _), dt = timed(retriever.rank, item["query"])
        ranks.append((ranking, item["tool"]))
        lat.append(dt)
    out = {
        "top1_acc_pct": 100 * np.mean([metrics.top_k(r, g, 1) for r, g in ranks]),
        "top5_acc_pct": 100 * np.mean([metrics.top_k(r, g, 5) for r, g in ranks]),
        "recall_at_3_pct": 100 * np.mean([metrics.top_k(r, g, 3) for r, g in ranks]),
        "mrr": float(np.mean([metrics.reciprocal_rank(r, g) for r, g in ranks])),
        "selection_p50_ms": 1000 * float(np.percentile(lat, 50)),
    }
    plans = subsample(data["planning"], lim["planning"], seed)
    made = [(plan(retriever, p["task"]), p["steps"]) for p in plans]
    out["plan_step_acc_pct"] = 100 * np.mean([metrics.step_accuracy(m, g) for m, g in made])
    out["plan_seq_match_pct"] = 100 * np.mean([m == g for m, g in made])
    out["plan_success_pct"] = 100 * np.mean([metrics.plan_success(m, g) for m, g in made])
    timing = subsample(data["timing"], lim["timing"], seed)
    pred = [should_call(retriever, t["utterance"]) for t in timing]
    scores = metrics.binary_scores(pred, [t["call_tool"] for t in timing])
    out.update({f"timing_{k}_pct": 100 * v for k, v in scores.items()})
    counts = {"selection_items": len(sel), "planning_items": len(plans),
              "timing_items": len(timing)}
    return {k: float(v) for k, v in out.items()} | counts, lat


def embedder() -> Callable[[list[str]], np.ndarray]:
    """The embedding engine (sentence-transformers MiniLM) as a blocking function."""
    from engine.st_engine import STEngine

    engine = STEngine(max_batch=64, threads=1)  # 2 threads spin-wait on a shared CPU
    return lambda texts: engine.encode(texts).vectors


def chat_client(url: str, model: str, max_tokens: int = 12) -> Callable[[str], str]:
    """Blocking /v1/completions call to the chat engine (greedy decoding)."""

    def chat(prompt: str) -> str:
        body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens,
                           "temperature": 0}).encode()
        req = urllib.request.Request(f"{url}/v1/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.load(resp)["choices"][0]["text"]

    return chat


def run_agents(db: str, *, suite_name: str, spec_text: str, mode: str, limit: int | None,
               strategies: tuple[str, ...] = STRATEGIES, chat_engine=None, seed: int = 0,
               on_run: Callable[[dict], None] | None = None) -> list[int]:
    """Evaluate `strategies`; one stored run each. `chat_engine` = (url, model) or None."""
    data = dataset.load()
    tools = data["tools"]
    store = open_store(db)
    ids: list[int] = []
    try:
        exp_id = store.create_experiment(suite_name + (" (quick)" if limit else ""),
                                         kind="suite", suite=suite_name, spec=spec_text)
        need_embed = {"embedding", "hybrid"} & set(strategies)
        emb = EmbeddingRetriever(tools, embedder()) if need_embed else None
        bm25 = BM25Retriever(tools)
        for name in strategies:
            config = {"run": {"name": f"{suite_name}/{name}", "mode": mode, "part": "agents",
                              "seed": seed},
                      "agent": {"strategy": name, "limit": limit, "dataset": "sagetui/agents/data",
                                "chat_engine": list(chat_engine) if chat_engine else None}}
            writer = store.create_run(experiment_id=exp_id, name=config["run"]["name"],
                                      mode=mode, config=config, seed=seed, repetition=0,
                                      tags=["agents", f"suite:{suite_name}"])
            writer.start()
            if name == "llm" and chat_engine is None:
                writer.add_event(0.0, "warning", subject="llm",
                                 message="skipped: the LLM strategy needs a chat engine "
                                         "(live mode)")
                writer.finish("cancelled", "LLM strategy needs a chat engine (run in live mode)")
                ids.append(writer.run_id)
                continue
            retriever = {"bm25": lambda: bm25, "embedding": lambda: emb,
                         "hybrid": lambda: HybridRetriever(bm25, emb),
                         "llm": lambda: LLMRetriever(tools, chat_client(*chat_engine),
                                                     shortlist=bm25)}[name]()
            try:
                values, lat = evaluate(retriever, data, limit=limit, seed=seed)
                if isinstance(retriever, LLMRetriever):
                    values["llm_errors"] = float(retriever.errors)
            except Exception as exc:  # noqa: BLE001 - stored as the run's failure
                writer.finish("failed", f"{type(exc).__name__}: {exc}")
                ids.append(writer.run_id)
                continue
            hist = new_histogram()
            for s in lat:
                hist.record_value(max(1, round(s * 1e6)))
            writer.add_histograms([("selection", "all", None, None, hist)])
            total = sum(lat)
            writer.add_summaries({"all": {
                "issued": len(lat), "completed": len(lat),
                "throughput_rps": len(lat) / total if total else 0.0,
                "metrics": {"selection": distribution_ms(hist)},
                "extra": {"agent": {"strategy": name, "metrics": values}},
            }})
            writer.finish("completed")
            ids.append(writer.run_id)
            if on_run:
                on_run({"run_id": writer.run_id, "strategy": name, "metrics": values})
    finally:
        store.close()
    return ids
