"""The simulator-fidelity suite: calibrate from real engines, then compare live vs sim.

Steps (one experiment in the store):
1. profile — short live closed-loop phases on this machine's real engines
   (tiny Llama on vLLM-on-CPU, MiniLM on serve-embed): chat with 1, 2, 4, …
   clients, so the decode batch size is known and varies, and embeddings from
   one client, so each request meets an idle engine; raw per-request records
   kept. Why phases, not one ramp: the fit needs requests that met an idle
   engine (their TTFT is α + β0 + β1·prompt exactly) and decode batches of
   known, varied size; a ramp mixes the two and the fit went wrong
   (docs/fidelity.md);
2. calibrate — fit the LLM cost model (β, α) from the chat records and the
   embedding cost model (a, b) from the embedding records
   (engine.sim.calibrate); save them as named presets; the fit errors go into
   the first profile run's summary (`extra.calibration`);
3. compare — at each load, the same workload (same seed) live and simulated
   with the calibrated presets (`sim_repeats` times, each with its own engine
   noise seed); the first sim run's summary carries `extra.fidelity`: the
   relative error of chat p50/p99 TTFT and E2E, embedding p50/p99 E2E and
   throughput, the sim runs pooled against the live runs pooled (their
   histograms merged, see `pooled_summaries`). `live_noise` holds the second live run's difference
   from the first (same workload, same seed): the noise of one run, the floor
   below which no simulator can be shown more accurate by a single run;
   `machine_speed` the drift probe (a profile phase run again just before the
   load) against the profile's: how much the machine itself changed speed
   (`suites.drift`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from store import fidelity as store_fidelity
from store import open_store

from ..config import ConfigError, RunConfig, _set_path, expand_raw
from ..orchestrate.runner import RunReport, run_one
from . import Suite
from .drift import machine_speed

# What the comparison reports: (summary class, metric, statistic).
COMPARED = (("chat", "ttft", "p50"), ("chat", "ttft", "p99"), ("chat", "e2e", "p50"),
            ("chat", "e2e", "p99"), ("embedding", "e2e", "p50"), ("embedding", "e2e", "p99"))


@dataclass
class FidelityPlan:
    profiles: list[RunConfig]  # the profiling phases, in order
    loads: list[float]
    live_base: dict
    llm_preset: str
    embed_preset: str
    live_repeats: int = 1  # live runs per load; a second one measures the live noise floor
    # simulated runs per load: the same workload, new engine noise each (run.engine_seed)
    sim_repeats: int = 1
    # profile phases (run names) measured but not fitted: the drift probe's
    unfitted: frozenset[str] = frozenset()
    # the drift probe: its profile phase's raw config, run again before each load
    # (`probe_config`); None when the suite (or its quick subset) has none
    probe_raw: dict | None = None

    @property
    def profile_s(self) -> float:
        """Workload seconds of all profiling phases together."""
        return sum(c.workload.end_s for c in self.profiles)

    @property
    def probe_name(self) -> str | None:
        """The drift probe's profile run name, or None."""
        return self.probe_raw["run"]["name"] if self.probe_raw is not None else None

    @property
    def probe_s(self) -> float:
        """Workload seconds of one drift probe (run again before each load); 0 if none."""
        return sum(c.workload.end_s for c in self.profiles if c.run.name == self.probe_name)


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
    common = copy.deepcopy(base)
    for dotted, value in fid.get("profile", {}).items():
        _set_path(common, dotted, copy.deepcopy(value), suite.path, what="fidelity.profile")
    chosen = _chosen(suite, fid, q)
    raws = _phases(suite, chosen, q, common)
    profiles = [expand_raw(raw, source=suite.path, spec_text="", overrides=overrides).runs[0]
                for raw in raws]
    loads = q.get("loads", fid.get("loads"))
    if not loads or any(not isinstance(x, int | float) or x <= 0 for x in loads):
        raise ConfigError(f"{suite.path}: fidelity.loads: a non-empty list of rates > 0")
    live_base = base
    for rate in loads:  # every comparison point must validate now
        point = _point(live_base, rate, "live", suite.name)
        expand_raw(point, source=suite.path, spec_text="", overrides=overrides)
    repeats = {key: q.get(key, fid.get(key, 1)) for key in ("live_repeats", "sim_repeats")}
    for key, n in repeats.items():
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
            raise ConfigError(f"{suite.path}: fidelity.{key}: an integer 1..10, got {n!r}")
    unfitted = frozenset(c.run.name for c, ph in zip(profiles, chosen, strict=True)
                         if not ph.get("fit", True))
    probe = fid.get("probe")
    if probe is not None and probe not in {ph["name"] for ph in fid.get("phases", [])}:
        raise ConfigError(f"{suite.path}: fidelity.probe: {probe!r} is not one of "
                          "fidelity.phases")
    by_name = {ph["name"]: raw for ph, raw in zip(chosen, raws, strict=True)}
    fp = FidelityPlan(profiles=profiles, loads=list(loads), live_base=live_base,
                      llm_preset=fid.get("llm_preset", "tiny-cpu-fit"),
                      embed_preset=fid.get("embed_preset", "minilm-cpu-fit"),
                      unfitted=unfitted, probe_raw=by_name.get(probe), **repeats)
    if fp.probe_raw is not None:  # the probe runs must validate now too
        for rate in loads:
            probe_config(fp, rate, suite, overrides)
    return fp


def probe_config(p: FidelityPlan, rate: float, suite: Suite, overrides: list[str] = ()
                 ) -> RunConfig:
    """The drift probe run before the comparison at `rate`: its profile phase again,
    the same workload and seed, stored as its own run."""
    raw = copy.deepcopy(p.probe_raw)
    raw["run"].update(part="probe", name=f"{suite.name}/probe[rate={rate:g}]")
    return expand_raw(raw, source=suite.path, spec_text="", overrides=overrides).runs[0]


def _chosen(suite: Suite, fid: dict, q: dict) -> list[dict]:
    """The profiling phases to run (`[[fidelity.phases]]`, or the quick subset), checked."""
    phases = fid.get("phases") or []
    if not phases or any(not isinstance(ph, dict) or not ph.get("name") for ph in phases):
        raise ConfigError(f"{suite.path}: fidelity.phases: a non-empty list of tables, "
                          "each with a name and its settings in `set`")
    for ph in phases:
        if not isinstance(ph.get("fit", True), bool):
            raise ConfigError(f"{suite.path}: fidelity.phases[{ph['name']}].fit: true or false, "
                              f"got {ph['fit']!r}")
    names = [ph["name"] for ph in phases]
    chosen = q.get("phases", names)
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise ConfigError(f"{suite.path}: quick.phases: {unknown} not among fidelity.phases "
                          f"({', '.join(names)})")
    if all(not ph.get("fit", True) for ph in phases if ph["name"] in chosen):
        raise ConfigError(f"{suite.path}: fidelity.phases: every chosen phase has fit = false; "
                          "nothing is left to calibrate from")
    return [ph for ph in phases if ph["name"] in chosen]


def _phases(suite: Suite, chosen: list[dict], q: dict, common: dict) -> list[dict]:
    """One raw run config per chosen profiling phase (`_chosen`)."""
    out = []
    for ph in chosen:
        raw = copy.deepcopy(common)
        for dotted, value in ph.get("set", {}).items():
            _set_path(raw, dotted, copy.deepcopy(value), suite.path,
                      what=f"fidelity.phases[{ph['name']}].set")
        for dotted, value in q.get("profile", {}).items():  # --quick shortens every phase
            _set_path(raw, dotted, copy.deepcopy(value), suite.path, what="quick.profile")
        raw.setdefault("run", {}).update(part="profile", raw=True, mode="live",
                                         name=f"{suite.name}/profile[{ph['name']}]")
        out.append(raw)
    return out


def _point(base: dict, rate: float, mode: str, suite_name: str) -> dict:
    point = copy.deepcopy(base)
    point.setdefault("workload", {})["rate"] = rate
    point.setdefault("run", {}).update(part=f"compare-{mode}", mode=mode, raw=True,
                                       name=f"{suite_name}/{mode}[rate={rate:g}]")
    return point


def run_fidelity(suite: Suite, db: str, *, quick: bool = False, overrides: list[str] = (),
                 backends_file: str | None = None,
                 on_run: Callable[[RunReport], None] | None = None,
                 on_block: Callable[[dict], None] | None = None) -> list[RunReport]:
    """Profile, calibrate, compare; everything stored under one suite experiment.
    `on_block` gets each load's comparison block as it is stored."""
    from ..orchestrate.live import engine_session

    p = plan(suite, quick=quick, overrides=overrides, backends_file=backends_file)
    from ..config import Experiment
    from ..orchestrate.live import preflight

    preflight(Experiment(name=suite.name, source=str(suite.path), spec_text="",
                         runs=list(p.profiles), sweep={}))  # before anything starts or is stored
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
            profile_ids = []
            for cfg in p.profiles:
                prof = record(run_one(store, exp_id, cfg))
                if prof.status != "completed":
                    raise RuntimeError(f"profile run {prof.run_id} {prof.status}: {prof.error}")
                profile_ids.append(prof.run_id)
            calibration = calibrate_from_runs(store, profile_ids, p)
            store_fidelity.merge_summary_extra(store, profile_ids[0], {"calibration": calibration})
            probe_rows = profile_probe_rows(store, p, profile_ids)
            for rate in p.loads:
                probe, probe_cfg = None, None
                if p.probe_raw is not None:
                    probe_cfg = probe_config(p, rate, suite, overrides)
                    probe = record(run_one(store, exp_id, probe_cfg))
                live_cfg = expand_raw(_point(p.live_base, rate, "live", suite.name),
                                      source=suite.path, spec_text="",
                                      overrides=overrides).runs[0]
                lives = [record(run_one(store, exp_id, live_cfg))
                         for _ in range(p.live_repeats)]
                sims = [record(run_one(store, exp_id, cfg))
                        for cfg in sim_configs(p, rate, suite, overrides)]
                done = [r.run_id for r in lives if r.status == "completed"]
                sim_done = [r.run_id for r in sims if r.status == "completed"]
                if done and sim_done:
                    speed = None
                    if probe is not None and probe.status == "completed":
                        speed = machine_speed(probe_rows, [request_rows(
                            store, probe.run_id, probe_cfg.workload)], calibration)
                    block = fidelity_block(store, rate, done, sim_done, calibration, speed)
                    store_fidelity.merge_summary_extra(store, sim_done[0], {"fidelity": block})
                    if on_block:
                        on_block(block)
    finally:
        store.close()
    return reports


def sim_configs(p: FidelityPlan, rate: float, suite: Suite, overrides: list[str] = ()
                ) -> list[RunConfig]:
    """The simulated runs of one load: the live workload on the calibrated models,
    `sim_repeats` times with engine seeds 1, 2, … (new noise draws, same requests)."""
    return [expand_raw(_sim_point(p, rate, suite.name, seed), source=suite.path, spec_text="",
                       overrides=overrides).runs[0]
            for seed in range(1, p.sim_repeats + 1)]


def fidelity_block(store, rate: float, live_ids: list[int], sim_ids: list[int],
                   calibration: dict, speed: dict | None = None) -> dict:
    """What the first sim run of a load carries as `extra.fidelity`: the pooled sim
    runs against the pooled live runs, the second live run against the first, and
    how fast the machine ran in the live runs against the profile (`suites.drift`)."""
    block = {"live_run": live_ids[0], "live_runs": live_ids, "sim_runs": sim_ids, "rate": rate,
             "errors": compare(pooled_summaries(store, live_ids),
                               pooled_summaries(store, sim_ids)),
             "calibration": calibration}
    if speed is not None:
        block["machine_speed"] = speed
    if len(live_ids) > 1:  # the same workload and seed live again: pure noise
        block["live_repeat_run"] = live_ids[1]
        block["live_noise"] = compare(*(pooled_summaries(store, [i]) for i in live_ids[:2]))
    return block


def _sim_point(p: FidelityPlan, rate: float, suite_name: str, engine_seed: int = 1) -> dict:
    """The live comparison point with every engine replaced by its calibrated model."""
    point = _point(p.live_base, rate, "sim", suite_name)
    point["run"]["engine_seed"] = engine_seed
    sims = []
    for b in point.get("backends", []):
        caps = b.get("capabilities", [])
        preset = p.embed_preset if caps == ["embedding"] else p.llm_preset
        # one machine: the live engines share it, so the simulated ones do (engine.sim.host)
        sims.append({"name": b["name"], "kind": "sim", "preset": preset,
                     "device": b.get("device", "cpu"), "capabilities": caps,
                     "max_concurrency": b.get("max_concurrency", 1), "host": "local"})
    point["backends"] = sims
    return point


def calibrate_from_runs(store, run_ids: list[int], p: FidelityPlan) -> dict:
    """Fit and save both presets from the profile runs' raw records (`request_rows`,
    in intended token counts); returns the fit report."""
    from engine.sim.calibrate import (
        busy_spans,
        calibrated,
        embedding_records_from_requests,
        fit_embedding,
        fit_requests,
        records_from_requests,
    )
    from engine.sim.presets import get_preset, save_preset

    llm_records, emb_records = [], []
    for run_id, cfg in zip(run_ids, p.profiles, strict=True):
        if cfg.run.name in p.unfitted:  # a reference for the drift check only
            continue
        # records are built per run: one run's clients never meet another's
        rows = request_rows(store, run_id, cfg.workload)
        chat = [r for r in rows if r["request_class"] == "chat" and r["output_tokens"] > 1]
        emb = [r for r in rows if r["request_class"] == "embedding"]
        # the engines share this machine: vLLM's steps cost more while MiniLM works
        llm_records += [{**rec, "group": run_id}
                        for rec in records_from_requests(chat, cohost=busy_spans(emb))]
        # and MiniLM's passes take longer while chat streams (the cores it shares)
        emb_records += embedding_records_from_requests(emb, chat=chat)
    if len(llm_records) < 10 or len(emb_records) < 5:
        raise RuntimeError(f"profile runs {run_ids}: too few completed requests to calibrate "
                           f"({len(llm_records)} chat, {len(emb_records)} embedding)")
    llm_cost, ttft_fit, tpot_fit = fit_requests(llm_records)
    emb_cost, emb_fit = fit_embedding(emb_records)
    # The front end's lone requests never have streams beside them, so its own stretch
    # per streaming sequence cannot be fitted; MiniLM's, on the same cores, is the same
    # cause (the streaming path's work), measured (engine.sim.frontend, docs/fidelity.md).
    llm_cost = dataclasses.replace(llm_cost, frontend_per_seq=emb_cost.cohost_per_seq)
    llm_base = get_preset("tiny-cpu")
    emb_base = get_preset("minilm-cpu")
    runs = ",".join(map(str, run_ids))
    llm_path = save_preset(calibrated(llm_base, llm_cost, p.llm_preset,
                                      f"TTFT {ttft_fit}; TPOT {tpot_fit}; runs {runs}"))
    emb_path = save_preset(calibrated(emb_base, emb_cost, p.embed_preset,
                                      f"{emb_fit}; runs {runs}"))
    return {
        "profile_runs": run_ids,
        "unfitted_runs": [i for i, c in zip(run_ids, p.profiles, strict=True)
                          if c.run.name in p.unfitted],
        "llm": {"preset": p.llm_preset, "path": str(llm_path), "cost": dataclasses.asdict(llm_cost),
                "ttft_fit": {"n": ttft_fit.n, "r2": ttft_fit.r2, "mape_pct": ttft_fit.mape},
                "tpot_fit": {"n": tpot_fit.n, "r2": tpot_fit.r2, "mape_pct": tpot_fit.mape}},
        "embedding": {"preset": p.embed_preset, "path": str(emb_path),
                      "cost": {"a": emb_cost.a, "b": emb_cost.b,
                               "cohost_per_seq": emb_cost.cohost_per_seq},
                      "fit": {"n": emb_fit.n, "r2": emb_fit.r2, "mape_pct": emb_fit.mape}},
    }


def profile_probe_rows(store, p: FidelityPlan, profile_ids: list[int]) -> list[list[dict]]:
    """The profile's drift-probe run as `request_rows` (a list of one run; none if the
    suite has no probe or these profile runs lack it)."""
    return [request_rows(store, i, c.workload)
            for i, c in zip(profile_ids, p.profiles, strict=True) if c.run.name == p.probe_name]


def request_rows(store, run_id: int, workload) -> list[dict]:
    """A run's completed requests, their token counts the workload's intended sizes.

    Token counts are the workload's intended sizes, not the servers' `usage`:
    the simulator is fed intended sizes, so the costs must be per intended
    token. (MiniLM's tokenizer makes ~2 tokens of each synthetic token the
    tiny Llama's tokenizer counted, and vLLM adds the chat template's tokens.)
    """
    from loadgen.schedule import intended_requests

    rows = store_fidelity.completed_requests(store, run_id)
    intended = intended_requests(workload, [r["request_id"] for r in rows])
    for r in rows:
        if r["t_dispatched"] is None:  # no gateway dispatch stamp: use the send time
            r["t_dispatched"] = r["t_sent"]
        if r["request_id"] in intended:
            r["prompt_tokens"] = intended[r["request_id"]].prompt_tokens
    return rows


def pooled_summaries(store, run_ids: list[int]) -> dict:
    """The compared statistics over several live runs of one load taken together.

    Why pooled: a p99 of one 60 s run rests on a handful of requests, and two
    runs of the same workload and seed differ by up to ~20 % there
    (docs/fidelity.md). Merging the runs' whole-run histograms is one
    estimate from all their requests, the same estimator (HdrHistogram
    quantiles) the single-run summaries use, so one run pooled alone is that run.
    Throughput is the runs' mean. Returns a summaries-shaped dict for `compare`.
    """
    from store import histograms as hg
    from store import queries

    out: dict = {}
    for cls, metric, stat in COMPARED:
        h = queries.merged_histogram(store, run_ids, metric, cls)
        if h.get_total_count():
            metrics = out.setdefault(cls, {}).setdefault("metrics", {})
            metrics.setdefault(metric, {})[stat] = hg.percentile_ms(h, float(stat[1:]))
    rates = [(s.get("all") or {}).get("throughput_rps")
             for s in queries.summaries_for(store, run_ids).values()]
    rates = [r for r in rates if r is not None]
    if rates:
        out.setdefault("all", {})["throughput_rps"] = sum(rates) / len(rates)
    return out


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

