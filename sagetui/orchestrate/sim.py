"""One run in virtual time: workload → control plane + simulated engines → store.

The workload is the same generator live runs replay (loadgen.schedule), the
control plane is the same core the gateway drives (scheduler.core, through
scheduler.simrt), and the metrics are the same definitions (loadgen.metrics).
"""

from __future__ import annotations

from loadgen.schedule import Source, build_schedule
from loadgen.spec import WorkloadSpec
from scheduler.simrt import Fault, SimResult, simulate
from store import RunWriter
from vocab import Request

from ..config import RunConfig
from .pipeline_sim import PipelineDriver
from .results import write_results

# Requests still in the system this long after the last intended send are
# failed with reason `run_ended` (accounted for, never silently dropped).
DRAIN_S = 120.0


def sim_faults(cfg: RunConfig) -> list[Fault]:
    """Config faults as simulator faults: kill = down for good, pause = down then up."""
    out = []
    for f in cfg.faults:
        out.append(Fault(t=f.at_s, backend=f.backend, up=False))
        if f.action == "pause":
            out.append(Fault(t=f.at_s + f.duration_s, backend=f.backend, up=True))
    return out


def simulate_workload(cfg: RunConfig, w: WorkloadSpec, *, horizon_s: float,
                      faults: list[Fault] | None = None
                      ) -> tuple[SimResult, list[Request], PipelineDriver | None]:
    """The workload `w` on `cfg`'s control plane and simulated engines: the result and
    every record (the core's outcomes, then the pipeline jobs' own and their local
    stages'). Shared by runs and the capacity probe, so both run pipelines alike."""
    pipes = PipelineDriver(w) if w.mix.get("pipeline", 0) > 0 else None
    closed = Source(w) if w.clients is not None else None
    scheduled = closed.initial() if closed else build_schedule(w)

    def admit(reqs) -> list:
        """A pipeline arrival becomes the stages it starts with; the rest go as they are."""
        out = []
        for s in reqs:
            out.extend(pipes.start(s) if pipes is not None and s.cls == "pipeline" else [s])
        return out

    def on_done(outcome, t):
        if pipes is not None and pipes.owns(outcome):
            new, ended = pipes.on_stage_done(outcome, t)
            if ended is not None and closed is not None:  # its client goes on
                new = new + admit(closed.on_done(ended, max(t, ended.t_done or t)))
            return new
        if closed is None:
            return []
        return admit(closed.on_done(outcome, t))

    requests = admit(scheduled)
    seed = cfg.run.engine_seed if cfg.run.engine_seed is not None else w.seed
    result = simulate(cfg.control_plane, cfg.backends, requests, on_done=on_done,
                      faults=faults or [], horizon_s=horizon_s, seed=seed)
    records = list(result.outcomes)
    if pipes is not None:
        pipes.close(result.sim_end_s)
        records.extend(pipes.records)
    return result, records, pipes


def run_sim(cfg: RunConfig, writer: RunWriter) -> dict:
    """Simulate `cfg` and store its results. Returns the per-class summaries."""
    w = cfg.workload
    writer.heartbeat(requests_done=0)
    result, records, pipes = simulate_workload(cfg, w, horizon_s=w.end_s + DRAIN_S,
                                               faults=sim_faults(cfg))
    for ev in result.events:
        writer.add_event(ev.get("t_s", ev.get("t", 0.0)), ev.get("kind", "info"),
                         subject=ev.get("backend", ev.get("subject", "")),
                         message=ev.get("message", ""), data=ev)
    decision = result.counters.get("decision", {})
    extra = {
        "control_plane": {
            "decision_us": decision,
            "overhead_us_per_request": _overhead_per_request(records),
            "requeued": result.counters.get("requeued", 0),
            "sim_wall_s": result.wall_s,
            "sim_end_s": result.sim_end_s,
        },
        # what the simulated engines did: recomputations, and prefix-cache hits over
        # the prompt tokens they were asked to prefill (shared prefixes, recomputations)
        "engines": {"preemptions": result.counters.get("preemptions", 0),
                    "prefix_cache": result.counters.get("prefix_cache", {})},
    }
    if pipes is not None:
        extra["pipeline"] = {"search_s_measured": pipes.search_s,
                             "kinds": {k: v.model_dump(mode="json", exclude_defaults=True)
                                       for k, v in pipes.kinds.items()}}
    summaries = write_results(
        writer, records, warmup_s=w.warmup_s, duration_s=w.duration_s,
        target_rate_rps=w.target_rate(), raw=cfg.run.raw, state_samples=result.samples,
        extra=extra)
    writer.heartbeat(requests_done=len(records))
    return summaries


def _overhead_per_request(records) -> float | None:
    vals = [r.overhead_us for r in records if r.overhead_us is not None]
    return sum(vals) / len(vals) if vals else None


def backend_rows(cfg: RunConfig) -> list[dict]:
    """Backend table rows for a sim run: what the preset models (model, device,
    price) unless the config says otherwise, and the engine-model parameters."""
    from engine.sim.presets import get_preset

    rows = []
    for b in cfg.backends:
        preset = get_preset(b.preset) if b.kind == "sim" and b.preset else None
        params = preset.to_dict() if preset is not None else {}
        rows.append({
            "name": b.name,
            "role": "embedding" if b.capabilities == ["embedding"] else (
                "both" if "embedding" in b.capabilities else "llm"),
            "engine_kind": b.kind, "device": b.device,
            "device_kind": b.device_kind or getattr(preset, "device_kind", ""),
            "model": b.model or getattr(preset, "model", ""), "url": b.url,
            "price_per_hour": b.price_per_hour or getattr(preset, "price_per_hour", 0.0),
            "max_concurrency": b.max_concurrency, "params_json": params,
        })
    return rows
