"""The simulator-fidelity suite: calibrate from real engines, then compare live vs sim.

Steps (one experiment in the store):
1. profile — a live run on this machine's real engines (tiny Llama on
   vLLM-on-CPU, MiniLM on serve-embed) with varied sizes and a ramping load,
   raw per-request records kept;
2. calibrate — fit the LLM cost model (β, α) from the chat records and the
   embedding cost model (a, b) from the embedding records
   (engine.sim.calibrate); save them as named presets; the fit errors go into
   the profile run's summary (`extra.calibration`);
3. compare — at each load, the same workload (same seed) live and simulated
   with the calibrated presets; each sim run's summary carries
   `extra.fidelity`: the relative error of chat p50/p99 TTFT and E2E and of
   throughput against its live twin.
"""

from __future__ import annotations

import copy
import dataclasses
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from store import open_store

from ..config import ConfigError, RunConfig, _set_path, expand_raw
from ..orchestrate.runner import RunReport, run_one
from . import Suite

# What the comparison reports: (summary class, metric, statistic).
COMPARED = (("chat", "ttft", "p50"), ("chat", "ttft", "p99"), ("chat", "e2e", "p50"),
            ("chat", "e2e", "p99"), ("embedding", "e2e", "p50"), ("embedding", "e2e", "p99"))


@dataclass
class FidelityPlan:
    profile: RunConfig
    loads: list[float]
    live_base: dict
    llm_preset: str
    embed_preset: str


def plan(suite: Suite, *, quick: bool, overrides: list[str] = (),
         backends_file: str | None = None) -> FidelityPlan:
    """Validate the suite's live runs before anything starts."""
    from . import _read_backends

    fid = suite.raw.get("fidelity", {})
    base = copy.deepcopy(suite.raw.get("base", {}))
    if backends_file:
        base["backends"] = _read_backends(backends_file)
    q = suite.raw.get("quick", {}) if quick else {}
    for dotted, value in q.get("set", {}).items():
        _set_path(base, dotted, copy.deepcopy(value), suite.path, what="quick.set")
    profile_raw = copy.deepcopy(base)
    for dotted, value in {**fid.get("profile", {}), **q.get("profile", {})}.items():
        _set_path(profile_raw, dotted, copy.deepcopy(value), suite.path, what="fidelity.profile")
    profile_raw.setdefault("run", {}).update(part="profile", name=f"{suite.name}/profile",
                                             raw=True, mode="live")
    exp = expand_raw(profile_raw, source=suite.path, spec_text="", overrides=overrides)
    loads = q.get("loads", fid.get("loads"))
    if not loads or any(not isinstance(x, int | float) or x <= 0 for x in loads):
        raise ConfigError(f"{suite.path}: fidelity.loads: a non-empty list of rates > 0")
    live_base = base
    for rate in loads:  # every comparison point must validate now
        point = _point(live_base, rate, "live", suite.name)
        expand_raw(point, source=suite.path, spec_text="", overrides=overrides)
    return FidelityPlan(profile=exp.runs[0], loads=list(loads), live_base=live_base,
                        llm_preset=fid.get("llm_preset", "tiny-cpu-fit"),
                        embed_preset=fid.get("embed_preset", "minilm-cpu-fit"))


def _point(base: dict, rate: float, mode: str, suite_name: str) -> dict:
    point = copy.deepcopy(base)
    point.setdefault("workload", {})["rate"] = rate
    point.setdefault("run", {}).update(part=f"compare-{mode}", mode=mode, raw=True,
                                       name=f"{suite_name}/{mode}[rate={rate:g}]")
    return point


def run_fidelity(suite: Suite, db: str, *, quick: bool = False, overrides: list[str] = (),
                 backends_file: str | None = None,
                 on_run: Callable[[RunReport], None] | None = None) -> list[RunReport]:
    """Profile, calibrate, compare; everything stored under one suite experiment."""
    from ..orchestrate.live import engine_session

    p = plan(suite, quick=quick, overrides=overrides, backends_file=backends_file)
    store = open_store(db)
    reports: list[RunReport] = []

    def record(report: RunReport) -> RunReport:
        reports.append(report)
        if on_run:
            on_run(report)
        return report

    try:
        exp_id = store.create_experiment(suite.name + (" (quick)" if quick else ""),
                                         kind="suite", suite=suite.name, spec=suite.text)
        with engine_session():
            prof = record(run_one(store, exp_id, p.profile))
            if prof.status != "completed":
                raise RuntimeError(f"profile run {prof.run_id} {prof.status}: {prof.error}")
            calibration = calibrate_from_run(store, prof.run_id, p)
            _add_extra(store, prof.run_id, {"calibration": calibration})
            for rate in p.loads:
                live_cfg = expand_raw(_point(p.live_base, rate, "live", suite.name),
                                      source=suite.path, spec_text="",
                                      overrides=overrides).runs[0]
                sim_cfg = expand_raw(_sim_point(p, rate, suite.name), source=suite.path,
                                     spec_text="", overrides=overrides).runs[0]
                live = record(run_one(store, exp_id, live_cfg))
                sim = record(run_one(store, exp_id, sim_cfg))
                if live.status == sim.status == "completed":
                    errors = compare(live.summaries, sim.summaries)
                    _add_extra(store, sim.run_id, {"fidelity": {
                        "live_run": live.run_id, "rate": rate, "errors": errors,
                        "calibration": calibration}})
    finally:
        store.close()
    return reports


def _sim_point(p: FidelityPlan, rate: float, suite_name: str) -> dict:
    """The live comparison point with every engine replaced by its calibrated model."""
    point = _point(p.live_base, rate, "sim", suite_name)
    sims = []
    for b in point.get("backends", []):
        caps = b.get("capabilities", [])
        preset = p.embed_preset if caps == ["embedding"] else p.llm_preset
        sims.append({"name": b["name"], "kind": "sim", "preset": preset,
                     "device": b.get("device", "cpu"), "capabilities": caps,
                     "max_concurrency": b.get("max_concurrency", 1)})
    point["backends"] = sims
    return point


def calibrate_from_run(store, run_id: int, p: FidelityPlan) -> dict:
    """Fit and save both presets from a run's raw records; returns the fit report."""
    from engine.sim.calibrate import (
        calibrated,
        fit_embedding,
        fit_requests,
        records_from_requests,
    )
    from engine.sim.presets import get_preset, save_preset

    with store.connection() as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute(
            "SELECT request_class, status, backend, prompt_tokens, output_tokens, n_texts, "
            "t_sent, t_dispatched, t_first_token, t_done FROM request "
            "WHERE run_id=? AND status='completed'", (run_id,))]
    for r in rows:  # live records may lack the gateway's dispatch stamp: use the send time
        if r["t_dispatched"] is None:
            r["t_dispatched"] = r["t_sent"]
    chats = [r for r in rows if r["request_class"] == "chat" and r["output_tokens"] > 1]
    embeds = [r for r in rows if r["request_class"] == "embedding"]
    if len(chats) < 10 or len(embeds) < 5:
        raise RuntimeError(f"profile run {run_id}: too few completed requests to calibrate "
                           f"({len(chats)} chat, {len(embeds)} embedding)")
    llm_records = records_from_requests(chats)
    llm_cost, ttft_fit, tpot_fit = fit_requests(llm_records)
    emb_records = [{"tokens": r["prompt_tokens"], "seconds": r["t_done"] - r["t_dispatched"]}
                   for r in embeds]
    emb_cost, emb_fit = fit_embedding(emb_records)
    llm_base = get_preset("tiny-cpu")
    emb_base = get_preset("minilm-cpu")
    llm_path = save_preset(calibrated(llm_base, llm_cost, p.llm_preset,
                                      f"TTFT {ttft_fit}; TPOT {tpot_fit}; run {run_id}"))
    emb_path = save_preset(calibrated(emb_base, emb_cost, p.embed_preset,
                                      f"{emb_fit}; run {run_id}"))
    return {
        "profile_run": run_id,
        "llm": {"preset": p.llm_preset, "path": str(llm_path), "cost": dataclasses.asdict(llm_cost),
                "ttft_fit": {"n": ttft_fit.n, "r2": ttft_fit.r2, "mape_pct": ttft_fit.mape},
                "tpot_fit": {"n": tpot_fit.n, "r2": tpot_fit.r2, "mape_pct": tpot_fit.mape}},
        "embedding": {"preset": p.embed_preset, "path": str(emb_path),
                      "cost": {"a": emb_cost.a, "b": emb_cost.b},
                      "fit": {"n": emb_fit.n, "r2": emb_fit.r2, "mape_pct": emb_fit.mape}},
    }


def compare(live: dict, sim: dict) -> dict:
    """Relative error (sim − live) / live of each compared statistic and of throughput."""
    out: dict = {}
    for cls, metric, stat in COMPARED:
        lv = (live.get(cls) or {}).get("metrics", {}).get(metric, {}).get(stat)
        sv = (sim.get(cls) or {}).get("metrics", {}).get(metric, {}).get(stat)
        if lv and sv is not None:
            out[f"{cls}.{metric}.{stat}"] = {"live_ms": lv, "sim_ms": sv,
                                             "rel_error": (sv - lv) / lv}
    lt = (live.get("all") or {}).get("throughput_rps")
    st = (sim.get("all") or {}).get("throughput_rps")
    if lt:
        out["all.throughput_rps"] = {"live": lt, "sim": st, "rel_error": (st - lt) / lt}
    return out


def _add_extra(store, run_id: int, extra: dict) -> None:
    """Merge `extra` into the run's summaries (every class row) — stored, queryable."""
    import json

    with store.transaction() as conn:
        for sid, text in conn.execute("SELECT id, extra_json FROM summary WHERE run_id=?",
                                      (run_id,)).fetchall():
            merged = {**json.loads(text or "{}"), **extra}
            conn.execute("UPDATE summary SET extra_json=? WHERE id=?",
                         (json.dumps(merged, sort_keys=True, default=str), sid))
