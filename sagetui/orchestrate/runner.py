"""Run an experiment: every sweep point × repetition, each one stored as a run.

Why a separate module: the CLI, the dashboard's child process and the suites
all start runs the same way. A run's lifecycle in the store is
created → running → completed | failed | cancelled; SIGTERM (the dashboard's
cancel) and Ctrl-C mark it cancelled and keep what it measured.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from store import Store, open_store

from ..config import Experiment, RunConfig


class RunCancelled(Exception):
    """Raised inside a run when the user or the dashboard cancels it."""


@dataclass
class RunReport:
    run_id: int
    name: str
    status: str
    wall_s: float
    summaries: dict = field(default_factory=dict)
    error: str = ""


_cancel_reason: str | None = None


def _on_sigterm(signum, frame):  # pragma: no cover - exercised through a subprocess
    """SIGTERM (the dashboard's cancel) becomes an interrupt.

    Raising here is not enough: inside a live run uvloop calls Python signal
    handlers from its own callback and swallows what they raise. SIGINT is
    turned into KeyboardInterrupt in the main task by asyncio/uvloop and by
    plain Python alike, so the run unwinds the same way as Ctrl-C.
    """
    global _cancel_reason
    _cancel_reason = "cancelled (SIGTERM)"
    os.kill(os.getpid(), signal.SIGINT)


def run_experiment(exp: Experiment, db_path: str, *, kind: str = "sweep",
                   suite: str | None = None, on_run: Callable[[RunReport], None] | None = None,
                   on_start: Callable[[int, int, RunConfig], None] | None = None,
                   failed: dict[int, str] | None = None,
                   rerun_of: int | None = None) -> list[RunReport]:
    """Execute every run of `exp` and store it. Returns one report per run.

    `failed`: runs (by index) that cannot be made, stored as failed with the reason
    and not run. `rerun_of`: the stored run these runs re-execute (`sagetui runs
    rerun`), linked from each new run. Runs with a relative load whose capacity was not probed yet are
    probed first (sagetui/suites/relative.py); a failed probe fails its runs.
    """
    failed = dict(failed or {})
    if any(c.run.load_fraction is not None and c.run.capacity_rps is None for c in exp.runs):
        from ..suites.relative import resolve

        exp, probe_failed = resolve(exp)
        failed.update(probe_failed)
    store = open_store(db_path)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    # Started in the background (`cmd &` from a script), SIGINT arrives ignored, and
    # SIGTERM's cancel (which raises SIGINT) would do nothing: take SIGINT back.
    int_ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if int_ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    reports: list[RunReport] = []
    stack = contextlib.ExitStack()
    if any(cfg.run.mode == "live" for cfg in exp.runs):
        from .live import engine_session

        stack.enter_context(engine_session())  # engines shared by consecutive runs
    try:
        exp_id = store.create_experiment(exp.name, kind=kind, suite=suite, spec=exp.spec_text)
        for index, cfg in enumerate(exp.runs):
            if on_start:
                on_start(index, len(exp.runs), cfg)
            report = (record_failed(store, exp_id, cfg, failed[index], rerun_of=rerun_of)
                      if index in failed else run_one(store, exp_id, cfg, rerun_of=rerun_of))
            reports.append(report)
            if on_run:
                on_run(report)
    finally:
        stack.close()
        signal.signal(signal.SIGTERM, previous)
        if int_ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        store.close()
    return reports


def run_one(store: Store, experiment_id: int | None, cfg: RunConfig, *,
            rerun_of: int | None = None) -> RunReport:
    """One run, from `created` to a terminal status, whatever happens inside."""
    w = cfg.workload
    planned = int(round((w.target_rate() or w.rate) * w.end_s))
    writer = store.create_run(
        experiment_id=experiment_id, name=cfg.run.name, mode=cfg.run.mode,
        config=cfg.resolved(), seed=w.seed, repetition=cfg.repetition, tags=cfg.run.tags,
        duration_s=w.duration_s, warmup_s=w.warmup_s, requests_planned=planned,
        rerun_of=rerun_of)
    t0 = time.perf_counter()
    writer.start()
    try:
        if cfg.run.mode == "sim":
            from .sim import backend_rows, run_sim

            writer.add_backends(backend_rows(cfg))
            summaries = run_sim(cfg, writer)
        else:
            from .live import run_live

            summaries = run_live(cfg, writer)
    except (KeyboardInterrupt, RunCancelled) as exc:
        writer.finish("cancelled", _cancel_reason or str(exc) or "interrupted by user (Ctrl-C)")
        raise
    except Exception as exc:  # the run fails, the experiment goes on
        writer.finish("failed", f"{type(exc).__name__}: {exc}")
        return RunReport(writer.run_id, cfg.run.name, "failed", time.perf_counter() - t0,
                         error=f"{type(exc).__name__}: {exc}")
    writer.finish("completed")
    return RunReport(writer.run_id, cfg.run.name, "completed", time.perf_counter() - t0,
                     summaries=summaries)


def record_failed(store: Store, experiment_id: int | None, cfg: RunConfig, reason: str, *,
                  rerun_of: int | None = None) -> RunReport:
    """A run that could not be made, kept in the store as failed with why (no results):
    the experiment shows every planned run and the reason one is missing."""
    w = cfg.workload
    writer = store.create_run(
        experiment_id=experiment_id, name=cfg.run.name, mode=cfg.run.mode,
        config=cfg.resolved(), seed=w.seed, repetition=cfg.repetition, tags=cfg.run.tags,
        duration_s=w.duration_s, warmup_s=w.warmup_s, requests_planned=0, rerun_of=rerun_of)
    writer.finish("failed", reason)
    return RunReport(writer.run_id, cfg.run.name, "failed", 0.0, error=reason)
