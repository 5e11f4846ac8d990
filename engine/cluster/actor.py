"""The actor that runs one engine on its Ray node and answers for it.

Why an actor per engine: the actor holds the engine's placement-group bundle
(its CPUs and GPUs; Ray sets CUDA_VISIBLE_DEVICES for it), builds the same
argv the local launcher would, on the node, with the node's own Python, ports
and files, and is the one place that can signal, read the log of and stop a
process on a machine the driver cannot reach otherwise. This module never
imports Ray: the launcher wraps `EngineHost` with `ray.remote` when it is used.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.launcher import (
    LaunchError,
    _safe,
    check_cpus,
    engine_argv,
    free_port,
    log_tail,
)
from engine.spec import BackendSpec

LOG_ROOT = "sagetui-engines"  # under the node's temp folder


class EngineHost:
    """One engine on this node: start it under the guard, report, signal, stop."""

    def __init__(self, spec_json: str, run_tag: str, host: str = ""):
        self.spec = BackendSpec.model_validate_json(spec_json)
        self.run_tag = run_tag
        self.host = host
        self.pgid = 0  # the guard's pid: the engine's process group
        self.guard = None  # psutil.Process of the guard
        self.rpc_dir: Path | None = None
        self.log_path = Path(tempfile.gettempdir()) / LOG_ROOT / _safe(run_tag) / \
            f"{_safe(self.spec.name)}.log"

    def start(self) -> dict:
        """Start (or restart, on a new port) the engine; returns where it listens and runs."""
        import ray

        check_cpus(self.spec)  # this node's cores, not the driver's
        host = self.host or ray.util.get_node_ip_address()
        port = free_port(host)
        argv, env = engine_argv(self.spec, port, host, sys.executable)
        env.update(self._gpu_env())
        env.update(self._rpc_env())
        pgid = self._spawn(argv, env)
        return {"url": f"http://{host}:{port}", "port": port, "argv": argv, "env": env,
                "pgid": pgid, "log_path": str(self.log_path), **self.where()}

    def where(self) -> dict:
        """The node this actor runs on, as the store records it."""
        import ray

        ctx = ray.get_runtime_context()
        return {"node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
                "hostname": socket.gethostname(), "ray_version": ray.__version__}

    def _gpu_env(self) -> dict[str, str]:
        """The GPUs Ray gave this actor (it set CUDA_VISIBLE_DEVICES): recorded, inherited."""
        devices = os.environ.get("CUDA_VISIBLE_DEVICES")
        return {"CUDA_VISIBLE_DEVICES": devices} if devices and self._wants_gpu() else {}

    def _wants_gpu(self) -> bool:
        from engine.cluster.demand import engine_gpus

        return engine_gpus(self.spec) > 0

    def _rpc_env(self) -> dict[str, str]:
        """vLLM's ZeroMQ sockets in a folder of their own, removed at stop (as locally)."""
        if not self.spec.kind.startswith("vllm") or "VLLM_RPC_BASE_PATH" in os.environ:
            return {}
        self.rpc_dir = self.rpc_dir or Path(tempfile.mkdtemp(prefix="sagetui-vllm-"))
        return {"VLLM_RPC_BASE_PATH": str(self.rpc_dir)}

    def _spawn(self, argv: list[str], env: dict[str, str]) -> int:
        """Start the guard (which starts the engine); returns the guard's pid, the group id."""
        guard = [sys.executable, "-m", "engine.cluster.guard", "--parent", str(os.getpid()),
                 "--log", str(self.log_path), "--cpus", ",".join(map(str, self.spec.cpus)),
                 "--", *argv]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._exit_file.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(argv)}\n".encode())
            log.flush()
            starter = subprocess.Popen(guard, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=log, env={**os.environ, **env},
                                       start_new_session=True)
            line = starter.stdout.readline() if starter.stdout else b""
            starter.wait()
        if not line.strip().isdigit():
            raise LaunchError(f"backend {self.spec.name!r}: the engine's guard did not start "
                              f"(code {starter.returncode}); log {self.log_path}:\n"
                              f"{log_tail(self.log_path)}")
        self.pgid = int(line)
        self.guard = _process(self.pgid)
        return self.pgid

    @property
    def _exit_file(self) -> Path:
        return Path(f"{self.log_path}.exit")

    def _exit_code(self) -> int | None:
        try:
            return int(self._exit_file.read_text())
        except (OSError, ValueError):
            return None

    def status(self) -> dict:
        """Whether the engine still runs (its guard does); its exit code once it exited."""
        alive = self.guard is not None and _running(self.guard)
        return {"alive": alive, "exit_code": None if alive else self._exit_code(),
                "pgid": self.pgid}

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def log_text(self, max_bytes: int = 4 << 20) -> str:
        """The log's last `max_bytes`, for the driver's copy in the run folder."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - max_bytes))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def discard_log(self) -> None:
        """Once the driver holds its copy: the node keeps no log of a finished run."""
        for path in (self.log_path, self._exit_file):
            path.unlink(missing_ok=True)
        try:
            self.log_path.parent.rmdir()  # the run's folder, once its last engine is gone
        except OSError:
            pass

    def signal(self, sig: int) -> int:
        """Send `sig` to the engine's processes (faults: kill, pause, resume). The guard
        is spared, so it goes on watching and records how a killed engine ended."""
        members = [p for p in _members(self.pgid) if p.pid != self.pgid]
        if not members:
            raise ProcessLookupError(f"engine {self.spec.name!r} is not running "
                                     f"(exit code {self._exit_code()})")
        for p in members:
            _quiet_kill(p.pid, sig)
        return self.pgid

    def stop(self, grace_s: float = 10.0) -> dict:
        """SIGTERM the group, SIGKILL it after `grace_s`, wait until no member is left."""
        if self.pgid:
            _killpg(self.pgid, signal.SIGTERM)
            _killpg(self.pgid, signal.SIGCONT)
            _wait_group(self.pgid, time.monotonic() + grace_s)
            _killpg(self.pgid, signal.SIGKILL)
            _wait_group(self.pgid, time.monotonic() + 5.0)
        if self.rpc_dir is not None:
            shutil.rmtree(self.rpc_dir, ignore_errors=True)
        return self.status()

    def restart(self) -> dict:
        """A new port after losing the race for the old one: kill what is left, start again."""
        if self.pgid:
            _killpg(self.pgid, signal.SIGKILL)
            _wait_group(self.pgid, time.monotonic() + 5.0)
        return self.start()


def _process(pid: int):
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _running(proc) -> bool:
    """Alive, not a zombie, and the same process (psutil compares start times)."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _members(pgid: int) -> list:
    """Live processes of process group `pgid`."""
    import psutil

    out = []
    for p in psutil.process_iter(["status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (ProcessLookupError, psutil.Error, OSError):
            continue
    return out


def _quiet_kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_group(pgid: int, deadline: float) -> None:
    """Until the group has no live member (the guard, the engine, vLLM's workers)."""
    while time.monotonic() < deadline and _members(pgid):
        time.sleep(0.1)
