"""Start a run's engines in a Ray cluster, behind the local launcher's interface.

Why: past one machine, engines run on the nodes of a Ray cluster while the
gateway and the load generator stay in this process. The launcher reserves one
placement-group bundle per engine (its CPUs, GPUs and, when the config names
one, its node or node labels), starts each engine in an actor on that bundle
with the argv the local launcher uses (engine/cluster/actor.py), waits for
/health from here, and records where each engine ran. Teardown kills each
engine's process group, then its actor, then removes the placement group; if
this process dies without tearing down, Ray kills the actors and removes the
group of a dead driver, and each engine's guard kills its process group.

    with RayLauncher(specs, run_dir, cluster) as engines:   # list[LaunchedEngine]
        ...
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.cluster.connect import ClusterError, connect
from engine.cluster.demand import Bundle, bundles_for, resolve_node, shortfalls
from engine.cluster.spec import ClusterSpec
from engine.launcher import (
    _ADDR_IN_USE,
    _PORT_RETRIES,
    LaunchedEngine,
    LaunchError,
    _register,
    _safe,
    _unregister,
    check_health,
    fetch_version,
)
from engine.spec import BackendSpec

CALL_TIMEOUT_S = 15.0  # one short actor call (status, log tail, signal)


@dataclass(eq=False)
class RayEngine(LaunchedEngine):
    """An engine started by an actor on a Ray node; asks the actor what it cannot see."""

    actor: Any = None
    placement: dict = field(default_factory=dict)  # launcher, node, IP, Ray version, bundle
    remote_log: str = ""  # the log on the engine's node (copied to log_path at stop)
    remote_pgid: int = 0

    def apply(self, info: dict) -> None:
        """Take in what the actor's start() reported."""
        self.url, self.port, self.argv, self.env = info["url"], info["port"], info["argv"], info["env"]
        self.remote_log, self.remote_pgid = info["log_path"], info["pgid"]
        self.placement.update({k: info[k] for k in ("node_id", "node_ip", "hostname",
                                                     "ray_version")})

    def _call(self, method: str, *args, timeout_s: float = CALL_TIMEOUT_S):
        import ray

        return ray.get(getattr(self.actor, method).remote(*args), timeout=timeout_s)

    def status(self) -> dict:
        """The actor's answer, or not alive when the actor (or its node) is gone."""
        if self.actor is None:
            return {"alive": False, "exit_code": None}
        try:
            return self._call("status")
        except Exception as exc:  # noqa: BLE001 - a dead actor or node is a state here
            return {"alive": False, "exit_code": None, "error": type(exc).__name__}

    def alive(self) -> bool:
        return bool(self.status()["alive"])

    def log_tail(self, lines: int = 40) -> str:
        if self.actor is not None:
            try:
                return self._call("log_tail", lines)
            except Exception:  # noqa: BLE001 - fall back to the copy, if any
                pass
        return super().log_tail(lines)

    def signal_remote(self, sig: int) -> int:
        """Signal the engine's process group on its node; returns the group id."""
        return self._call("signal", sig)

    def down_info(self) -> dict:
        """As the local engine's, plus the node; waits up to a second for the exit code,
        which the guard records a moment after the engine ends (a paused one has none)."""
        st, deadline = self.status(), time.monotonic() + 1.0
        while st["alive"] and time.monotonic() < deadline:
            time.sleep(0.1)
            st = self.status()
        return {"node": self.placement.get("hostname", ""),
                "node_ip": self.placement.get("node_ip", ""),
                "node_id": self.placement.get("node_id", ""),
                "exit_code": st.get("exit_code"), "log_tail": self.log_tail(20)}

    def backend_row(self) -> dict:
        row = super().backend_row()
        args = json.loads(row["launch_args_json"])
        row["launch_args_json"] = json.dumps({**args, "placement": self.placement})
        return row


class RayLauncher:
    """Starts `specs` in the Ray cluster `cluster` names (URL backends: health only)."""

    def __init__(self, specs: list[BackendSpec], run_dir: str | Path, cluster: ClusterSpec, *,
                 health_timeout_s: float = 300.0, stop_grace_s: float = 10.0,
                 start_timeout_s: float = 180.0):
        names = [s.name for s in specs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise LaunchError(f"backends: duplicate name(s) {', '.join(sorted(dup))}")
        self.specs, self.cluster = list(specs), cluster
        self.log_dir = Path(run_dir) / "engines"
        self.run_tag = Path(run_dir).name or "run"
        self.health_timeout_s, self.stop_grace_s = health_timeout_s, stop_grace_s
        self.start_timeout_s = start_timeout_s
        self.engines: list[LaunchedEngine] = []
        self.pg: Any = None  # Ray's PlacementGroup once reserved
        self._asked: list[dict[str, float]] = []  # each bundle as reserved
        self._lock = threading.Lock()

    def __enter__(self) -> list[LaunchedEngine]:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- start ----------------------------------------------------------------------------------

    def start(self) -> list[LaunchedEngine]:
        """Check the cluster, reserve the bundles, start the actors, wait for /health."""
        ray = connect(self.cluster.address, self.cluster.namespace)
        bundles = bundles_for(self.specs, self.cluster)
        check_capacity(ray, bundles, self.cluster.address)
        _register(self)
        if bundles:
            self.pg = self._reserve(ray, bundles)
        self._start_actors(ray, bundles)
        self._wait_healthy()
        for eng in self.engines:
            eng.version = fetch_version(eng.url)
        return list(self.engines)

    def _reserve(self, ray, bundles: list[Bundle]):
        """One placement group, one bundle per engine; refused if Ray cannot place it."""
        from ray.util.placement_group import placement_group, remove_placement_group

        nodes = ray.nodes()
        pins = [resolve_node(b.node, nodes) if b.node else None for b in bundles]
        resources = [b.resources(p["NodeManagerAddress"] if p else "")
                     for b, p in zip(bundles, pins, strict=True)]
        selectors = [dict(b.labels) for b in bundles]
        pg = placement_group(resources, strategy=self.cluster.strategy,
                             name=f"sagetui:{self.run_tag}",
                             bundle_label_selector=selectors if any(selectors) else None)
        self._asked = resources
        try:
            ray.get(pg.ready(), timeout=self.cluster.reserve_timeout_s)
        except Exception as exc:  # noqa: BLE001 - timeout or infeasible: both refuse the run
            remove_placement_group(pg)
            raise ClusterError(
                f"the Ray cluster did not reserve the engines' bundles within "
                f"{self.cluster.reserve_timeout_s:g} s ({type(exc).__name__}); asked "
                f"{resources} ({self.cluster.strategy}); free now: "
                f"{_cpu_gpu(ray.available_resources())}") from None
        return pg

    def _start_actors(self, ray, bundles: list[Bundle]) -> None:
        """One actor per bundle (in config order), all started before any is waited on."""
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        host_cls = _actor_class(ray)
        launched = iter(enumerate(bundles))  # bundles_for skips URL backends, in order
        for spec in self.specs:
            if spec.url:
                self.engines.append(LaunchedEngine(spec, spec.url.rstrip("/")))
                continue
            i, bundle = next(launched)
            strategy = PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=i)
            actor = host_cls.options(num_cpus=bundle.cpus, num_gpus=bundle.gpus,
                                     scheduling_strategy=strategy, max_restarts=0,
                                     name=None).remote(spec.model_dump_json(), self.run_tag)
            self.engines.append(RayEngine(
                spec, "", actor=actor, log_path=self.log_dir / f"{_safe(spec.name)}.log",
                placement={"launcher": "ray", "address": self.cluster.address,
                           "placement_group": self.pg.id.hex(), "bundle_index": i,
                           "resources": self._asked[i], "labels": bundle.labels,
                           "node_requested": bundle.node}))
        started = [(e, e.actor.start.remote()) for e in self._ray_engines()]
        for eng, ref in started:
            try:
                eng.apply(ray.get(ref, timeout=self.start_timeout_s))
            except Exception as exc:  # noqa: BLE001 - names the backend, whatever failed
                raise LaunchError(f"backend {eng.name!r}: its actor could not start the "
                                  f"engine: {_cause(exc)}") from None

    def _wait_healthy(self) -> None:
        """Poll /health from here (the gateway's view); an engine that exits first fails."""
        deadline = time.monotonic() + self.health_timeout_s
        retries = {e.name: 0 for e in self.engines}
        waiting = list(self.engines)
        while waiting:
            for eng in list(waiting):
                if isinstance(eng, RayEngine) and self._exited(eng, retries):
                    continue
                if check_health(eng.url, timeout_s=1.0):
                    waiting.remove(eng)
            if not waiting:
                return
            if time.monotonic() > deadline:
                eng = waiting[0]
                raise LaunchError(f"backend {eng.name!r} at {eng.url} not healthy after "
                                  f"{self.health_timeout_s:g} s; {_where_log(eng)}")
            time.sleep(0.5)

    def _exited(self, eng: RayEngine, retries: dict[str, int]) -> bool:
        """True if it exited and was restarted on another port; raises if it just exited."""
        st = eng.status()
        if st["alive"]:
            return False
        tail = eng.log_tail()
        if any(m in tail for m in _ADDR_IN_USE) and retries[eng.name] < _PORT_RETRIES:
            retries[eng.name] += 1  # lost the port race on its node: take another port
            eng.apply(eng._call("restart", timeout_s=self.start_timeout_s))
            return True
        raise LaunchError(f"backend {eng.name!r} exited with code {st.get('exit_code')} on node "
                          f"{eng.placement.get('node_ip')} before becoming healthy; "
                          f"{_where_log(eng)}")

    # -- state and stop -------------------------------------------------------------------------

    def _ray_engines(self) -> list[RayEngine]:
        with self._lock:
            return [e for e in self.engines if isinstance(e, RayEngine) and e.actor is not None]

    def dead(self) -> list[LaunchedEngine]:
        """Launched engines whose process has exited, or whose actor or node is gone."""
        return [e for e in self.engines if isinstance(e, RayEngine) and not e.alive()]

    def stop(self) -> None:
        """Each engine's process group, then its actor, then the placement group."""
        try:
            import ray
        except ImportError:
            return
        engines, pg = self._ray_engines(), self.pg
        if ray.is_initialized():  # else Ray already ended our job and cleaned up after it
            self._stop_engines(ray, engines)
            for eng in engines:
                _quietly(ray.kill, eng.actor, no_restart=True)
            if pg is not None:
                from ray.util.placement_group import remove_placement_group

                _quietly(remove_placement_group, pg)
        for eng in engines:
            eng.actor = None
        self.pg = None
        _unregister(self)

    def _stop_engines(self, ray, engines: list[RayEngine]) -> None:
        """Stop every engine at once, then keep each one's log in the run folder."""
        refs = [(e, e.actor.stop.remote(self.stop_grace_s)) for e in engines]
        for _eng, ref in refs:
            _quietly(ray.get, ref, timeout=self.stop_grace_s + CALL_TIMEOUT_S)
        for eng in engines:
            text = _quietly(eng._call, "log_text")
            if text and eng.log_path is not None:
                eng.log_path.parent.mkdir(parents=True, exist_ok=True)
                eng.log_path.write_text(text)
                _quietly(eng._call, "discard_log")


def check_capacity(ray, bundles: list[Bundle], address: str) -> None:
    """Refuse, naming what is short, bundles the cluster cannot hold now."""
    if not bundles:
        return
    problems = shortfalls(bundles, ray.nodes(), ray.available_resources())
    if problems:
        raise ClusterError(f"the Ray cluster at {address} cannot hold this run's engines: "
                           + "; ".join(problems))


def check_cluster(specs: list[BackendSpec], cluster: ClusterSpec) -> None:
    """Before any run starts: Ray installed, the cluster reachable and big enough."""
    ray = connect(cluster.address, cluster.namespace)
    check_capacity(ray, bundles_for(specs, cluster), cluster.address)


_host_cls = None


def _actor_class(ray):
    """`EngineHost` as a Ray actor class (made once; Ray is imported only by now)."""
    global _host_cls
    if _host_cls is None:
        from engine.cluster.actor import EngineHost

        _host_cls = ray.remote(EngineHost)
    return _host_cls


def _where_log(eng: LaunchedEngine) -> str:
    if isinstance(eng, RayEngine):
        return (f"log {eng.remote_log} on node {eng.placement.get('node_ip')}, last lines:\n"
                f"{eng.log_tail()}")
    return "(given by URL; no log here)"


def _cause(exc: BaseException) -> str:
    """The remote exception's own message, without Ray's traceback wrapping."""
    cause = getattr(exc, "cause", None)
    return str(cause) if cause is not None else f"{type(exc).__name__}: {exc}"


def _cpu_gpu(resources: dict) -> str:
    return f"{resources.get('CPU', 0):g} CPU, {resources.get('GPU', 0):g} GPU"


def _quietly(fn, *args, **kwargs):
    """Teardown goes on whatever one step raises (a dead node, a gone actor)."""
    try:
        return fn(*args, **kwargs)
    except Exception:  # noqa: BLE001
        return None
