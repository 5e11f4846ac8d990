"""One live run, start to store: engines, the control plane or the baseline's
client-side pools, load, per-second samples, faults, results."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from engine.launcher import LaunchedEngine, LaunchError
from loadgen.runner import run as run_load
from scheduler.gateway.config import GatewayConfig
from store import RunWriter

from ...config import RunConfig
from ..results import write_results
from . import engines as _engines
from .engines import EngineSession, served_model, tokenizer_dir, with_models
from .faults import FaultScheduler
from .gateway import GatewayThread, client_config, client_side_pools
from .pinning import pinned
from .sampler import StateSampler

RUNS_DIR_ENV = "SAGETUI_RUNS_DIR"


def run_live(cfg: RunConfig, writer: RunWriter) -> dict:
    """Run `cfg` on real engines and store it. Returns the per-class summaries."""
    run_dir = runs_dir() / f"run-{writer.run_id}-{time.strftime('%Y%m%dT%H%M%S')}"
    run_dir.mkdir(parents=True, exist_ok=True)
    own_session = _engines._session is None
    session = _engines._session or EngineSession()
    try:
        engines = session.engines_for(cfg.backends, run_dir, cfg.cluster)
    except LaunchError as exc:
        if own_session:
            session.close()
        raise RuntimeError(f"engines did not start: {exc}") from None
    try:
        with pinned(cfg.run.cpus):
            return _run_on(cfg, writer, engines, run_dir)
    finally:
        if own_session or any(f.action == "kill" for f in cfg.faults):
            session.close()  # a killed engine cannot serve the next run


def runs_dir() -> Path:
    return Path(os.environ.get(RUNS_DIR_ENV, "runs"))


def _run_on(cfg: RunConfig, writer: RunWriter, engines: list[LaunchedEngine],
            run_dir: Path) -> dict:
    by_name = {e.name: e for e in engines}
    # What each engine really serves (an empty `model` means "whatever it serves").
    specs = [b.model_copy(update={"url": by_name[b.name].url,
                                  "model": served_model(by_name[b.name]) or b.model})
             for b in cfg.backends]
    rows = [e.backend_row() for e in engines]
    for row, spec in zip(rows, specs, strict=True):
        row["model"] = spec.model
    writer.add_backends(rows)
    w = with_models(cfg, specs)
    gateway = None
    if cfg.control_plane.baseline == "sage":
        gateway = GatewayThread(GatewayConfig(cfg.control_plane, specs))
        gateway.start()
        targets = {c: [gateway.url] for c in ("chat", "completion", "embedding")}
    else:
        targets = client_side_pools(cfg.control_plane.baseline, cfg.backends, by_name)
    sampler = StateSampler(engines, gateway.view if gateway else None)
    faults = FaultScheduler(cfg, by_name)
    sampler.start()

    def on_progress(sample: dict) -> None:
        faults.clock_from_sample(sample["t_s"])
        snap = sampler.latest()
        sample["backends_json"] = json.dumps(snap["backends"], sort_keys=True)
        sample["queue_depth_json"] = json.dumps(snap["queue_depth"], sort_keys=True)
        writer.add_sample(sample)
        for ev in faults.drain():
            writer.add_event(**ev)
        writer.heartbeat(requests_done=sample.get("done"))

    try:
        result = run_load(w, client_config(cfg, targets),
                          tokenizer_dir=tokenizer_dir(cfg), on_progress=on_progress,
                          workers=cfg.run.load_workers)
    finally:
        faults.stop()
        sampler.stop()
        if gateway is not None:
            gateway.stop()
    for ev in [*faults.drain(), *sampler.events]:
        writer.add_event(**ev)
    extra = {"live": {"max_in_flight": result.max_in_flight, "workers": result.workers,
                      "run_dir": str(run_dir),
                      "client_cpus": sorted(os.sched_getaffinity(0)),
                      "pacer": result.pacer,
                      # this run's own prompt texts: no prefix-cache hits from earlier runs
                      "prompt_salt": result.prompt_salt}}
    if gateway is not None:
        extra["control_plane"] = gateway.decision_summary()
    return write_results(writer, result.records, warmup_s=w.warmup_s, duration_s=w.duration_s,
                         target_rate_rps=w.target_rate(), raw=cfg.run.raw, extra=extra,
                         samples_written=True)
