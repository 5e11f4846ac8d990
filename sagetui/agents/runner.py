"""Suite E's runs: every strategy on the dataset's test split, through the gateway.

The agent workload is control-plane traffic: each item is one pipeline request
(record class `pipeline`, id `<strategy>/<item>`) whose stages are real requests
through the gateway, tagged with the pipeline's id as `parent_id`, exactly as
the load generator's RAG pipeline tags its stages:

- `embed`: the query (or, for retrieval planning, each clause) embedded by the
  embedding engine (bm25 sends none: it scores in process);
- `chat`: the LLM strategy's call to the chat engine, shown a shortlist of the
  fusion's best functions and answering in JSON (sagetui.agents.llm).

Before the strategies run, every pool tool is embedded (not measured) and the
dev split is scored to fit the fusion and the timing thresholds
(retrieval.tune). Each strategy is one stored run: its request records and
latency summaries (loadgen.metrics, as any live run), and on summary `all`
`extra.agent` = {strategy, metrics, dataset, split, tuning, items}, where
`items` keeps each category's per-item outcomes and latencies for the exports'
bootstrap intervals.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from loadgen.client import Client, ClientConfig, run_coro
from loadgen.metrics import aggregate
from store.schema import request_row
from vocab import Request

from . import llm, scoring
from .items import CATEGORIES, Dataset, DatasetError, Item, Tool
from .retrieval import (
    RETRIEVAL,
    Index,
    Tuning,
    clauses,
    ranking,
    scores,
    timing_score,
    tune,
    unit,
)

STRATEGIES = (*RETRIEVAL, "llm")
Parts = tuple[np.ndarray | None, np.ndarray | None]  # BM25 and cosine scores of the candidates
DATASETS = ("bfcl", "template")
INDEX_BATCH = 32
CLIENT_ID = "agents"


@dataclass
class AgentConfig:
    """`[agents]` of the suite file."""

    dataset: str = "bfcl"
    strategies: tuple[str, ...] = STRATEGIES
    categories: tuple[str, ...] = CATEGORIES
    limit: int | None = None  # test items per category (None: all)
    dev_limit: int | None = None  # dev items per category used for tuning
    llm_limit: int | None = None  # test items per category for the LLM strategy
    concurrency: int = 4  # items in flight
    priority: int = 2
    slo_e2e_ms: float | None = None  # sent as X-SLO-E2E-Ms on every stage
    shortlist: int = 5
    plan_shortlist: int = 8
    max_tokens: int = 160
    structured: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def parse_config(raw: dict, source: str, quick: dict | None = None) -> AgentConfig:
    """`[agents]` (+ `[quick]` overrides) → AgentConfig; errors name the file and field."""
    raw = dict(raw or {})
    if quick:
        raw.update({k: v for k, v in quick.items() if k in AgentConfig.__dataclass_fields__})
    known = AgentConfig.__dataclass_fields__
    for key in raw:
        if key not in known:
            raise DatasetError(f"{source}: agents.{key}: unknown field (known: "
                               f"{', '.join(known)})")
    cfg = AgentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    if cfg.dataset not in DATASETS:
        raise DatasetError(f"{source}: agents.dataset: {cfg.dataset!r} is not one of "
                           f"{', '.join(DATASETS)}")
    bad = [s for s in cfg.strategies if s not in STRATEGIES]
    if bad or not cfg.strategies:
        raise DatasetError(f"{source}: agents.strategies: {bad or 'empty'}; choose from "
                           f"{', '.join(STRATEGIES)}")
    bad = [c for c in cfg.categories if c not in CATEGORIES]
    if bad or not cfg.categories:
        raise DatasetError(f"{source}: agents.categories: {bad or 'empty'}; choose from "
                           f"{', '.join(CATEGORIES)}")
    for name in ("limit", "dev_limit", "llm_limit"):
        v = getattr(cfg, name)
        if v is not None and (not isinstance(v, int) or v < 1):
            raise DatasetError(f"{source}: agents.{name}: must be a positive integer, got {v!r}")
    for name in ("concurrency", "shortlist", "plan_shortlist", "max_tokens"):
        v = getattr(cfg, name)
        if not isinstance(v, int) or v < 1:
            raise DatasetError(f"{source}: agents.{name}: must be a positive integer, got {v!r}")
    if cfg.priority not in range(5):
        raise DatasetError(f"{source}: agents.priority: must be 0..4, got {cfg.priority!r}")
    return cfg


def load_dataset(name: str) -> Dataset:
    if name == "bfcl":
        from . import bfcl

        return bfcl.load()
    from .items import template_dataset

    return template_dataset()


def subsample(items: list[Item], limit: int | None, seed: int) -> list[Item]:
    items = sorted(items, key=lambda i: i.id)
    if limit is None or limit >= len(items):
        return items
    return sorted(random.Random(seed).sample(items, limit), key=lambda i: i.id)


def test_items(ds: Dataset, cfg: AgentConfig, strategy: str) -> dict[str, list[Item]]:
    limit = cfg.limit
    if strategy == "llm" and cfg.llm_limit is not None:
        limit = min(limit or cfg.llm_limit, cfg.llm_limit)
    return {c: subsample(ds.select(c, "test"), limit, cfg.seed) for c in cfg.categories
            if ds.select(c, "test")}


def item_counts(ds: Dataset, cfg: AgentConfig) -> dict[str, dict[str, int]]:
    """Test items per category each strategy is evaluated on, and the dev items tuned on."""
    out = {s: {c: len(v) for c, v in test_items(ds, cfg, s).items()} for s in cfg.strategies}
    out["dev"] = {c: len(subsample(ds.select(c, "dev"), cfg.dev_limit, cfg.seed))
                  for c in ("selection", "timing")}
    return out


@dataclass
class Endpoints:
    """The gateway and the models it serves (chat None: the LLM strategy cannot run)."""

    gateway_url: str
    embedding_model: str
    chat_model: str | None = None


@dataclass
class Outcome:
    values: dict[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0
    error: str = ""


# -- the requests -------------------------------------------------------------------------------

class Agent:
    """One strategy's pipelines against the gateway."""

    def __init__(self, strategy: str, ds: Dataset, index: Index, tuning: Tuning,
                 cfg: AgentConfig, ep: Endpoints, client: Client):
        self.strategy, self.ds, self.index, self.tuning = strategy, ds, index, tuning
        self.cfg, self.ep, self.client = cfg, ep, client
        self.records: list[Request] = []
        self.errors = 0
        self.format_ok: list[bool] = []

    def _req(self, rid: str, cls: str, *, n_texts: int = 0, output_tokens: int = 0,
             model: str, parent: str | None) -> Request:
        return Request(
            id=rid, t_intended=self.client.now(), cls=cls, client_id=CLIENT_ID,
            priority=self.cfg.priority, prompt_tokens=0, output_tokens=output_tokens,
            n_texts=n_texts, text_tokens=0, slo_ttft_ms=None, slo_e2e_ms=self.cfg.slo_e2e_ms,
            model=model, parent_id=parent)

    async def embed(self, pid: str, texts: list[str]) -> np.ndarray | None:
        vecs: list = []
        req = self._req(f"{pid}/embed", "embedding", n_texts=len(texts),
                        model=self.ep.embedding_model, parent=pid)
        rec = await self.client.call(req, texts=texts, vectors=vecs)
        self.records.append(rec)
        if rec.status != "completed":
            raise StageError(f"embed: {rec.reason}")
        return unit(np.asarray(vecs, dtype=np.float32))

    async def chat(self, pid: str, item: Item, shortlist: list[Tool]) -> list[dict]:
        max_tokens = self.cfg.max_tokens * (2 if item.category == "planning" else 1)
        body = llm.body(self.ep.chat_model or "", item, shortlist, max_tokens=max_tokens,
                        structured=self.cfg.structured)
        req = self._req(f"{pid}/chat", "chat", output_tokens=max_tokens,
                        model=self.ep.chat_model or "", parent=pid)
        out: list[str] = []
        rec = await self.client.call(req, body=Client.encode(body), output=out)
        self.records.append(rec)
        if rec.status != "completed":
            raise StageError(f"chat: {rec.reason}")
        calls, ok = llm.parse("".join(out))
        self.format_ok.append(ok)
        return calls

    def _parts(self, query: str, tools: list[Tool], qvec) -> Parts:
        """BM25 and cosine scores of `tools` (None for the part the strategy does not use)."""
        ids = self.index.ids(tools)
        b = self.index.bm25_scores(query, ids) if self.strategy != "embedding" else None
        c = self.index.cos_scores(qvec, ids) if self.strategy != "bm25" else None
        return b, c

    def _scores(self, query: str, tools: list[Tool], qvec, bc: Parts | None = None) -> np.ndarray:
        b, c = bc or self._parts(query, tools, qvec)
        if self.strategy == "llm":  # its shortlist comes from the fusion: both parts scored
            assert b is not None and c is not None
            return self.tuning.fuse(b, c)
        return scores(self.strategy, b, c, self.tuning)

    def _candidates(self, item: Item) -> list[Tool]:
        return self.ds.pool if item.category == "selection_pool" else item.tools

    async def run_item(self, item: Item) -> Outcome:
        pid = f"{self.strategy}/{item.id}"
        top = Request(id=pid, cls="pipeline", client_id=CLIENT_ID, status="completed",
                      priority=self.cfg.priority, slo_e2e_ms=self.cfg.slo_e2e_ms)
        top.t_intended = top.t_sent = t0 = self.client.now()
        try:
            values = await self._evaluate(pid, item)
            error = ""
        except StageError as exc:
            self.errors += 1
            values, error = _zero(item.category, self.strategy), str(exc)
            top.status, top.reason = "failed", str(exc)[:200]
        top.t_done = top.t_first_token = self.client.now()
        self.records.append(top)
        return Outcome(values, 1000 * (top.t_done - t0), error)

    async def _evaluate(self, pid: str, item: Item) -> dict[str, float]:
        tools = self._candidates(item)
        cat = item.category
        if cat == "planning" and self.strategy != "llm":
            parts = clauses(item.query)
            vecs = (await self.embed(pid, parts) if self.strategy != "bm25" and tools
                    else [None] * len(parts))
            plan = [ranking(tools, self._scores(p, tools, v))[0]
                    for p, v in zip(parts, vecs, strict=True)] if tools else []
            return _plan_values(plan, item)
        if not tools:  # nothing to call: every strategy answers "no call"
            return _values(cat, [], item, False, None, llm=self.strategy == "llm")
        qvec = (await self.embed(pid, [item.query]))[0] if self.strategy != "bm25" else None
        bc = self._parts(item.query, tools, qvec)
        s = self._scores(item.query, tools, qvec, bc)
        ranked = ranking(tools, s)
        if self.strategy != "llm":
            call = cat == "timing" and (timing_score(self.strategy, *bc, self.tuning)
                                        >= self.tuning.thresholds.get(self.strategy, 0.0))
            return _values(cat, ranked, item, call, None, llm=False)
        k = self.cfg.plan_shortlist if cat == "planning" else self.cfg.shortlist
        by_name = {}
        for i in np.argsort(-s, kind="stable"):
            by_name.setdefault(tools[i].name, tools[i])
        shortlist = [by_name[n] for n in ranked[:k]]
        calls = await self.chat(pid, item, shortlist)
        names = [c["name"] for c in calls]
        if cat == "planning":
            return _plan_values(names, item)
        ranked_llm = list(dict.fromkeys(names))
        return _values(cat, ranked_llm, item, bool(calls), calls[0] if calls else None, llm=True)


class StageError(Exception):
    pass


def _values(cat: str, ranked: list[str], item: Item, call: bool, first: dict | None, *,
            llm: bool) -> dict:
    if cat == "timing":
        return {"correct": float(call == item.call), "call": float(item.call)}
    gold = item.gold[0]
    rr = 1.0 / (ranked.index(gold) + 1) if gold in ranked else 0.0
    out = {"top1": float(ranked[:1] == [gold]), "mrr": rr}
    if cat == "selection_pool":
        out["top5"] = float(gold in ranked[:5])
    if llm and cat == "selection":  # the call's arguments, as BFCL's answer allows
        out["args"] = float(first is not None and item.answer is not None
                            and scoring.call_matches(first, item.answer))
    return out


def _plan_values(plan: list[str], item: Item) -> dict:
    return {"exact": float(scoring.plan_exact(plan, item.gold, item.ordered)),
            "f1": scoring.multiset_f1(plan, item.gold)}


def _zero(cat: str, strategy: str) -> dict:
    if cat == "timing":
        return {"correct": 0.0}
    if cat == "planning":
        return {"exact": 0.0, "f1": 0.0}
    out = {"top1": 0.0, "mrr": 0.0}
    if cat == "selection_pool":
        out["top5"] = 0.0
    if cat == "selection" and strategy == "llm":
        out["args"] = 0.0
    return out


async def _run_items(agent: Agent, items: list[Item]) -> list[Outcome]:
    sem = asyncio.Semaphore(agent.cfg.concurrency)
    out: list[Outcome | None] = [None] * len(items)

    async def one(i: int, item: Item) -> None:
        async with sem:
            out[i] = await agent.run_item(item)

    await asyncio.gather(*(one(i, it) for i, it in enumerate(items)))
    return out  # type: ignore[return-value]


def _client(ep: Endpoints, cfg: AgentConfig) -> Client:
    targets = {c: [ep.gateway_url] for c in ("chat", "completion", "embedding")}
    return Client(ClientConfig(targets, concurrency=max(8, 2 * cfg.concurrency),
                               ignore_eos=False, timeout_s=300.0))


# -- index and tuning ---------------------------------------------------------------------------

async def _embed_texts(client: Client, model: str, texts: list[str], tag: str) -> np.ndarray:
    """Embed `texts` through the gateway in batches (background priority, not measured)."""
    vecs: list = []
    for start in range(0, len(texts), INDEX_BATCH):
        chunk = texts[start:start + INDEX_BATCH]
        req = Request(id=f"{tag}-{start}", t_intended=client.now(), cls="embedding",
                      client_id=tag, priority=4, n_texts=len(chunk), model=model)
        rec = await client.call(req, texts=chunk, vectors=vecs)
        if rec.status != "completed":
            raise RuntimeError(f"{tag}: embedding through the gateway failed: {rec.reason}")
    return np.asarray(vecs, dtype=np.float32)


def prepare(ds: Dataset, cfg: AgentConfig, ep: Endpoints) -> tuple[Index, Tuning]:
    """Embed the pool, score the dev split and fit the fusion and thresholds."""
    index = Index(ds.pool)
    dev_sel = subsample(ds.select("selection", "dev") or ds.select("selection_pool", "dev"),
                        cfg.dev_limit, cfg.seed)
    dev_time = subsample(ds.select("timing", "dev"), cfg.dev_limit, cfg.seed)

    if "selection_pool" in cfg.categories:
        needed = index.all
    else:  # only the candidates of the items this run ranks
        used = [*dev_sel, *dev_time, *(i for s in cfg.strategies
                                       for v in test_items(ds, cfg, s).values() for i in v)]
        needed = sorted({k for i in used for k in index.ids(i.tools)})
    texts = index.texts()

    async def go():
        async with _client(ep, cfg) as client:
            if needed:
                vecs = await _embed_texts(client, ep.embedding_model,
                                          [texts[k] for k in needed], "index")
                index.set_vectors(vecs, None if needed is index.all else needed)
            queries = [i.query for i in dev_sel + dev_time]
            return unit(await _embed_texts(client, ep.embedding_model, queries, "dev")
                        if queries else np.zeros((0, 1), dtype=np.float32))

    qv = run_coro(go())

    def triple(item: Item, v) -> tuple[Item, np.ndarray, np.ndarray]:
        tools = ds.pool if item.category == "selection_pool" else item.tools
        ids = index.ids(tools)
        return item, index.bm25_scores(item.query, ids), index.cos_scores(v, ids)

    sel = [triple(it, qv[k]) for k, it in enumerate(dev_sel)]
    tim = [triple(it, qv[len(dev_sel) + k]) for k, it in enumerate(dev_time)]
    return index, tune(sel, tim)


# -- one strategy, one stored run ---------------------------------------------------------------

@dataclass
class StrategyResult:
    strategy: str
    metrics: dict[str, float]
    items: dict[str, dict]
    records: list[Request]
    wall_s: float


def evaluate_strategy(strategy: str, ds: Dataset, index: Index, tuning: Tuning,
                      cfg: AgentConfig, ep: Endpoints) -> StrategyResult:
    per_cat = test_items(ds, cfg, strategy)

    async def go():
        async with _client(ep, cfg) as client:
            agent = Agent(strategy, ds, index, tuning, cfg, ep, client)
            outcomes = {c: await _run_items(agent, items) for c, items in per_cat.items()}
            return agent, outcomes, client.now()

    agent, outcomes, wall = run_coro(go())
    items_block, metrics = {}, {}
    for cat, outs in outcomes.items():
        ids = [i.id for i in per_cat[cat]]
        keys = sorted({k for o in outs for k in o.values} - {"call"})
        block = {"n": len(outs), "ids": ids,  # paired comparisons across strategies
                 "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
                 "outcomes": {k: [round(o.values.get(k, 0.0), 4) for o in outs] for k in keys},
                 "latency_ms": [round(o.latency_ms, 3) for o in outs],
                 "errors": sum(1 for o in outs if o.error)}
        if cat == "timing":
            block["labels"] = [int(i.call) for i in per_cat[cat]]
        items_block[cat] = block
        metrics.update(category_metrics(cat, block))
    metrics["errors"] = float(agent.errors)
    if agent.format_ok:
        metrics["llm_json_ok_pct"] = 100 * float(np.mean(agent.format_ok))
    return StrategyResult(strategy, metrics, items_block, agent.records, wall)


def category_metrics(cat: str, block: dict) -> dict[str, float]:
    """Means of a category's per-item outcomes, named `<category>_<metric>`."""
    o = block["outcomes"]
    out: dict[str, float] = {}
    if cat == "timing":
        correct, labels = np.asarray(o["correct"]), np.asarray(block["labels"], dtype=bool)
        out["timing_acc_pct"] = 100 * float(correct.mean())
        rel = correct[labels].mean() if labels.any() else np.nan
        irr = correct[~labels].mean() if (~labels).any() else np.nan
        out["timing_relevance_pct"] = 100 * float(rel)
        out["timing_irrelevance_pct"] = 100 * float(irr)
        out["timing_balanced_acc_pct"] = 100 * float(np.nanmean([rel, irr]))
    else:
        for k, v in o.items():
            pct = k != "mrr"
            out[f"{cat}_{k}" + ("_pct" if pct else "")] = (100 if pct else 1) * float(np.mean(v))
    lat = block["latency_ms"]
    if lat:
        out[f"{cat}_p50_ms"] = float(np.percentile(lat, 50))
        out[f"{cat}_p99_ms"] = float(np.percentile(lat, 99))
    return {k: v for k, v in out.items() if np.isfinite(v)}


def store_result(writer, res: StrategyResult, *, ds: Dataset, cfg: AgentConfig,
                 tuning: Tuning) -> dict:
    """Records, latency summaries and the agent block on summary `all`."""
    agg = aggregate(res.records, warmup_s=0.0, duration_s=max(res.wall_s, 1e-3) + 1.0,
                    target_rate_rps=None)
    writer.add_histograms(agg.histograms)
    summaries = agg.summaries
    summaries.setdefault("all", {}).setdefault("extra", {})["agent"] = {
        "strategy": res.strategy, "metrics": res.metrics, "split": "test",
        "dataset": {k: v for k, v in ds.info.items()},
        "dev_test": {c: ds.counts()[c] for c in cfg.categories},
        "tuning": tuning.to_dict(), "items": res.items}
    writer.add_summaries(summaries)
    writer.add_requests(request_row(r) for r in res.records)
    return summaries


def run_suite(db: str, ds: Dataset, cfg: AgentConfig, ep: Endpoints, *,
              suite_name: str, spec_text: str, mode: str, quick: bool,
              backends: list[dict] | None = None, control_plane: dict | None = None,
              on_run: Callable[[dict], None] | None = None) -> list[int]:
    """Tune on dev, evaluate every strategy on test, one stored run each (the LLM
    strategy is stored as cancelled when `ep` has no chat model)."""
    from store import open_store

    store = open_store(db)
    ids: list[int] = []
    try:
        exp_id = store.create_experiment(suite_name + (" (quick)" if quick else ""),
                                         kind="suite", suite=suite_name, spec=spec_text)
        index, tuning = prepare(ds, cfg, ep)
        for name in cfg.strategies:
            config = {"run": {"name": f"{suite_name}/{name}", "mode": mode, "part": "agents",
                              "seed": cfg.seed},
                      "control_plane": control_plane or {},
                      "agent": {**cfg.to_dict(), "strategy": name,
                                "dataset_version": ds.info.get("version"),
                                "dataset_files": ds.info.get("files"),
                                "tuning": tuning.to_dict()}}
            writer = store.create_run(experiment_id=exp_id, name=config["run"]["name"],
                                      mode=mode, config=config, seed=cfg.seed, repetition=0,
                                      tags=["agents", f"suite:{suite_name}", f"dataset:{ds.name}"])
            writer.start()
            if backends:
                writer.add_backends(backends)
            if name == "llm" and ep.chat_model is None:
                writer.add_event(0.0, "warning", subject="llm",
                                 message="skipped: the LLM strategy needs a chat engine "
                                         "(live mode)")
                writer.finish("cancelled", "LLM strategy needs a chat engine (run in live mode)")
                ids.append(writer.run_id)
                continue
            t0 = time.monotonic()
            try:
                res = evaluate_strategy(name, ds, index, tuning, cfg, ep)
                store_result(writer, res, ds=ds, cfg=cfg, tuning=tuning)
            except Exception as exc:  # noqa: BLE001 - stored as the run's failure
                writer.finish("failed", f"{type(exc).__name__}: {exc}")
                ids.append(writer.run_id)
                continue
            writer.finish("completed")
            ids.append(writer.run_id)
            if on_run:
                on_run({"run_id": writer.run_id, "strategy": name, "metrics": res.metrics,
                        "wall_s": time.monotonic() - t0})
    finally:
        store.close()
    return ids


def describe(metrics: dict[str, float]) -> str:
    """A one-line summary of a strategy's headline figures."""
    keys = [("selection_top1_pct", "sel top-1 {:.1f}%"), ("selection_args_pct", "args {:.1f}%"),
            ("selection_pool_top1_pct", "pool top-1 {:.1f}%"),
            ("timing_balanced_acc_pct", "timing bal. {:.1f}%"),
            ("planning_exact_pct", "plan exact {:.1f}%")]
    parts = [fmt.format(metrics[k]) for k, fmt in keys if k in metrics]
    return "  ".join(parts) or json.dumps(metrics)[:120]
