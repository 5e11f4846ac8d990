"""Start engine servers as child processes, wait for health, and never leave orphans.

Why: a live run needs its engines up before the first request and gone after
the last one, whatever happens in between (normal exit, Ctrl-C, SIGTERM, an
exception, an engine crashing while starting). Each engine runs in its own
process group (argv list, never a shell) so teardown can `killpg` it together
with vLLM's worker processes. Engines given by URL run elsewhere (another node
of a GPU cluster) and are only health-checked.

    with Launcher(specs, run_dir) as engines:   # list[LaunchedEngine], all healthy
        ...                                     # engines[i].url, .backend_row()
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from engine.spec import BackendSpec

TINY_ALIAS = "tiny-llama"  # model name that means "the packaged tiny Llama" (engine.tiny_model)
SMOLLM2_ALIAS = "smollm2"  # the packaged SmolLM2-135M-Instruct (engine.smollm2)
_ADDR_IN_USE = ("Address already in use", "EADDRINUSE", "address already in use")
_PORT_RETRIES = 3


class LaunchError(RuntimeError):
    """An engine could not be started or did not become healthy; names it and its log."""


@dataclass
class LaunchedEngine:
    """One engine: where to reach it and what to record about it in the store."""

    spec: BackendSpec
    url: str
    argv: list[str] = field(default_factory=list)  # empty: given by URL, not launched
    env: dict[str, str] = field(default_factory=dict)  # variables set on top of ours
    log_path: Path | None = None
    version: str = ""
    proc: subprocess.Popen | None = None
    port: int = 0
    # vLLM's ZeroMQ sockets (VLLM_RPC_BASE_PATH): a folder of its own, removed at stop;
    # in the shared temp folder, every killed engine left its sockets there for good
    rpc_dir: Path | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        """Launched and still running (a URL engine counts as alive; ask /health for more)."""
        return self.proc is None or self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines) if self.log_path else ""

    def down_info(self) -> dict:
        """What an `engine_down` event records: where it ran, how it ended, its last words."""
        if self.proc is None:
            return {"url": self.url}
        return {"node": socket.gethostname(), "exit_code": self.proc.poll(),
                "log_tail": self.log_tail(20)}

    def backend_row(self) -> dict:
        """Columns of store.schema.Backend (run_id is filled in by the writer)."""
        spec = self.spec
        caps = set(spec.capabilities)
        role = "embedding" if caps == {"embedding"} else ("both" if "embedding" in caps else "llm")
        device_kind, model, params = spec.device_kind, spec.model, {}
        if spec.kind == "sim":  # the simulated engine is its preset: store every parameter
            from engine.sim.presets import get_preset

            preset = get_preset(spec.preset)
            params = preset.to_dict()
            device_kind, model = device_kind or preset.device_kind, model or preset.model
        return {
            "name": spec.name, "role": role, "engine_kind": spec.kind,
            "device": spec.device, "device_kind": device_kind, "model": model, "url": self.url,
            "launch_args_json": json.dumps({"argv": self.argv, "env": self.env}),
            "engine_version": self.version, "price_per_hour": spec.price_per_hour,
            "max_concurrency": spec.max_concurrency, "params_json": json.dumps(params),
        }


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except OSError:
        return ""


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (the caller retries if a child loses the race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def engine_argv(spec: BackendSpec, port: int, host: str = "127.0.0.1",
                python: str = sys.executable) -> tuple[list[str], dict[str, str]]:
    """The argv and extra environment that start `spec` on `port` (pure: no side effects)."""
    embed_only = spec.capabilities == ["embedding"]
    model = spec.model
    served: list[str] = []
    if spec.kind in ("vllm", "vllm-cpu"):
        if not model:
            raise LaunchError(f"backend {spec.name!r}: model: required for kind {spec.kind}")
        if model == TINY_ALIAS:
            from engine.tiny_model import ensure_tiny_model

            model, served = str(ensure_tiny_model()), ["--served-model-name", TINY_ALIAS]
        elif model == SMOLLM2_ALIAS:
            from engine.smollm2 import SmolLM2Error, ensure_smollm2

            try:
                model = str(ensure_smollm2())
            except SmolLM2Error as exc:
                raise LaunchError(f"backend {spec.name!r}: model {SMOLLM2_ALIAS!r}: {exc}") from None
            served = ["--served-model-name", SMOLLM2_ALIAS]
    pooling = ["--runner", "pooling"] if embed_only else []
    net = ["--host", host, "--port", str(port)]
    if spec.kind == "vllm":
        argv = ["vllm", "serve", model, *net, "--tensor-parallel-size",
                str(spec.tensor_parallel), *served, *pooling, *spec.extra_args]
        return argv, {}
    if spec.kind == "vllm-cpu":
        argv = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", model, *net,
                *served, *pooling, *cpu_dtype_args(spec.extra_args), *spec.extra_args]
        env = {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
        if spec.cpus:  # vLLM binds its OpenMP threads itself; keep them inside the pinned set
            env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(str(c) for c in spec.cpus)
        return argv, env
    if spec.kind == "sentence-transformers":
        argv = [python, "-m", "engine.servers.embed_server", *net,
                "--device", "cuda" if spec.device == "gpu" else "cpu"]
        if model:
            argv += ["--model", model]
        if spec.cpus and "--threads" not in spec.extra_args:  # one torch thread per pinned core
            argv += ["--threads", str(len(spec.cpus))]
        return argv + list(spec.extra_args), {"HF_HUB_OFFLINE": "1"}
    if spec.kind == "sim":
        argv = [python, "-m", "engine.servers.sim_server", *net, "--preset", spec.preset]
        if model:
            argv += ["--served-name", model]
        return argv + list(spec.extra_args), {}
    raise LaunchError(f"backend {spec.name!r}: url: required for kind {spec.kind!r} "
                      "(sagetui cannot launch it)")


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # native bfloat16 math on x86


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags the kernel reports (empty where it does not say)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def cpu_dtype_args(extra_args: list[str], flags: set[str] | None = None) -> list[str]:
    """`--dtype float32` for vLLM-on-CPU on a CPU without native bfloat16, unless the
    backend's own `extra_args` name a dtype.

    Why: vLLM-CPU runs a bf16 checkpoint (the packaged tiny Llama, SmolLM2) in bf16; a CPU
    with neither AVX512-BF16 nor AMX emulates it, and on such a 2-core Xeon the tiny Llama
    then decodes 2-3x slower than in fp32 (docs/setup.md, "vLLM on CPU: dtype").
    """
    if any(a == "--dtype" or a.startswith("--dtype=") for a in extra_args):
        return []
    flags = cpu_flags() if flags is None else flags
    if not flags or any(f in flags for f in BF16_CPU_FLAGS):
        return []
    return ["--dtype", "float32"]


# Engines are reached directly, never through $HTTP_PROXY (aiohttp ignores it too).
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def check_health(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with _opener.open(url.rstrip("/") + "/health", timeout=timeout_s) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def fetch_version(url: str, timeout_s: float = 5.0) -> str:
    """`/version` of an engine; servers without one are recorded as such, not guessed."""
    try:
        with _opener.open(url.rstrip("/") + "/version", timeout=timeout_s) as r:
            return str(json.loads(r.read()).get("version", "unknown (no version field)"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"unknown ({type(exc).__name__})"


class Launcher:
    """Starts `specs` (or health-checks those with a URL) and tears them all down."""

    def __init__(self, specs: list[BackendSpec], run_dir: str | Path, *,
                 health_timeout_s: float = 300.0, host: str = "127.0.0.1",
                 gpu_ids: list[int] | None = None, python: str = sys.executable,
                 stop_grace_s: float = 10.0):
        names = [s.name for s in specs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise LaunchError(f"backends: duplicate name(s) {', '.join(sorted(dup))}")
        self.specs = list(specs)
        self.log_dir = Path(run_dir) / "engines"
        self.health_timeout_s = health_timeout_s
        self.host, self.python, self.stop_grace_s = host, python, stop_grace_s
        self.gpu_ids = gpu_ids
        self.engines: list[LaunchedEngine] = []
        self._lock = threading.Lock()

    # -- context manager ------------------------------------------------------------------------

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
        """Launch every engine, then wait until all answer `/health`; raise LaunchError if not."""
        for spec in self.specs:  # every engine's cores checked before any starts
            if not spec.url:
                check_cpus(spec)
        _register(self)
        gpus = self._assign_gpus()
        pending: list[LaunchedEngine] = []
        for spec in self.specs:
            if spec.url:
                eng = LaunchedEngine(spec, spec.url.rstrip("/"))
                self.engines.append(eng)
                pending.append(eng)
                continue
            eng = self._spawn(spec, gpus.get(spec.name))
            pending.append(eng)
        self._wait_healthy(pending)
        for eng in self.engines:
            eng.version = fetch_version(eng.url)
        return list(self.engines)

    def _assign_gpus(self) -> dict[str, str]:
        # every launched engine that runs on a GPU gets its own devices, the embedding
        # server too (without this it would share GPU 0 with whatever vLLM got)
        wanted = [s for s in self.specs if not s.url and (
            s.kind == "vllm" or (s.kind == "sentence-transformers" and s.device == "gpu"))]
        if not wanted:
            return {}
        ids = self.gpu_ids if self.gpu_ids is not None else _visible_gpus()
        out, i = {}, 0
        for s in wanted:
            n = max(s.gpus, s.tensor_parallel)
            if i + n > len(ids):
                raise LaunchError(f"backend {s.name!r}: gpus: needs {n} GPU(s) but only "
                                  f"{len(ids) - i} of {len(ids)} are left")
            out[s.name] = ",".join(str(g) for g in ids[i:i + n])
            i += n
        return out

    def _spawn(self, spec: BackendSpec, cuda_devices: str | None,
               engine: LaunchedEngine | None = None) -> LaunchedEngine:
        check_cpus(spec)
        port = free_port(self.host)
        argv, env_extra = engine_argv(spec, port, self.host, self.python)
        if cuda_devices is not None:
            env_extra["CUDA_VISIBLE_DEVICES"] = cuda_devices
        rpc_dir = engine.rpc_dir if engine is not None else None
        if spec.kind.startswith("vllm") and "VLLM_RPC_BASE_PATH" not in os.environ:
            # short on purpose: a socket path may not exceed ~107 bytes
            rpc_dir = rpc_dir or Path(tempfile.mkdtemp(prefix="sagetui-vllm-"))
            env_extra["VLLM_RPC_BASE_PATH"] = str(rpc_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{_safe(spec.name)}.log"
        with open(log_path, "ab") as log:
            log.write(f"$ {' '.join(argv)}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env={**os.environ, **env_extra}, start_new_session=True,
                    preexec_fn=_child_setup(spec.cpus, _in_main_thread()))
            except OSError as exc:
                raise LaunchError(f"backend {spec.name!r}: cannot start {argv[0]!r}: {exc}") from exc
        if engine is None:
            engine = LaunchedEngine(spec, f"http://{self.host}:{port}")
            with self._lock:
                self.engines.append(engine)
        engine.url, engine.port, engine.argv, engine.env = f"http://{self.host}:{port}", port, argv, env_extra
        engine.log_path, engine.proc, engine.rpc_dir = log_path, proc, rpc_dir
        return engine

    def _wait_healthy(self, pending: list[LaunchedEngine]) -> None:
        deadline = time.monotonic() + self.health_timeout_s
        retries = {e.name: 0 for e in pending}
        waiting = list(pending)
        while waiting:
            for eng in list(waiting):
                if eng.proc is not None and eng.proc.poll() is not None:
                    tail = eng.log_tail()
                    if any(m in tail for m in _ADDR_IN_USE) and retries[eng.name] < _PORT_RETRIES:
                        retries[eng.name] += 1  # lost the port race: take another port
                        _signal_group(eng.proc.pid, signal.SIGKILL)  # any child it had left
                        self._spawn(eng.spec, eng.env.get("CUDA_VISIBLE_DEVICES"), eng)
                        continue
                    raise LaunchError(
                        f"backend {eng.name!r} exited with code {eng.proc.returncode} before "
                        f"becoming healthy; log {eng.log_path}, last lines:\n{tail}")
                if check_health(eng.url, timeout_s=1.0):
                    waiting.remove(eng)
            if not waiting:
                return
            if time.monotonic() > deadline:
                eng = waiting[0]
                where = f"log {eng.log_path}, last lines:\n{eng.log_tail()}" if eng.log_path \
                    else "(given by URL; no log here)"
                raise LaunchError(f"backend {eng.name!r} at {eng.url} not healthy after "
                                  f"{self.health_timeout_s:g} s; {where}")
            time.sleep(0.25)

    # -- state and stop -------------------------------------------------------------------------

    def dead(self) -> list[LaunchedEngine]:
        """Launched engines whose process has exited (crashed or killed)."""
        return [e for e in self.engines if not e.alive()]

    def stop(self) -> None:
        """Terminate every launched engine's process group: SIGTERM, then SIGKILL after grace."""
        with self._lock:
            procs = [e.proc for e in self.engines if e.proc is not None]
            rpc_dirs = [e.rpc_dir for e in self.engines if e.rpc_dir is not None]
        for p in procs:
            _signal_group(p.pid, signal.SIGTERM)
            _signal_group(p.pid, signal.SIGCONT)  # a paused engine must run to handle SIGTERM
        deadline = time.monotonic() + self.stop_grace_s
        for p in procs:
            while time.monotonic() < deadline and _group_alive(p):
                time.sleep(0.05)
        for p in procs:
            _signal_group(p.pid, signal.SIGKILL)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            end = time.monotonic() + 5
            while _group_alive(p) and time.monotonic() < end:
                time.sleep(0.05)
        for d in rpc_dirs:  # the engines are gone: nothing listens on these sockets
            shutil.rmtree(d, ignore_errors=True)
        _unregister(self)


class Stoppable(Protocol):
    """What the safety net below tears down: any launcher with a `stop()`."""

    def stop(self) -> None: ...


# -- process-wide safety net ------------------------------------------------------------------

_active: set[Stoppable] = set()  # local and Ray launchers alike
_active_lock = threading.Lock()
_installed = False


def _register(launcher: Stoppable) -> None:
    global _installed
    with _active_lock:
        _active.add(launcher)
        if _installed:
            return
        _installed = True
    atexit.register(_stop_all)
    if _in_main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)


def _unregister(launcher: Stoppable) -> None:
    with _active_lock:
        _active.discard(launcher)


def _stop_all() -> None:
    with _active_lock:
        launchers = list(_active)
    for launcher in launchers:
        launcher.stop()


def _on_signal(signum: int, frame: object) -> None:
    """Tear engines down, then die of the same signal as if we had no handler."""
    _stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(proc: subprocess.Popen) -> bool:
    proc.poll()  # reap the leader so a zombie does not keep the group "alive"
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _group_has_live_member(proc.pid)


def _group_has_live_member(pgid: int) -> bool:
    """killpg(.., 0) also succeeds for zombies of other parents; check real states."""
    import psutil

    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error, OSError):
            continue
    return False


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def usable_cpus() -> list[int]:
    """Cores a process started here may be pinned to: the cgroup's cpuset when there is
    one, else every online core (not this process's own affinity, which a run may have
    narrowed to keep the client off the engines' cores)."""
    for path in ("/sys/fs/cgroup/cpuset.cpus.effective", "/sys/devices/system/cpu/online"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text:
            out: list[int] = []
            for part in text.split(","):
                lo, _, hi = part.partition("-")
                out += range(int(lo), int(hi or lo) + 1)
            return out
    return list(range(os.cpu_count() or 1))


def check_cpus(spec: BackendSpec) -> None:
    """A pinned engine's cores must exist here (checked before anything starts)."""
    if not spec.cpus:
        return
    allowed = usable_cpus()
    missing = [c for c in spec.cpus if c not in allowed]
    if missing:
        raise LaunchError(f"backend {spec.name!r}: cpus: {missing} not available here; "
                          f"usable cores are {allowed}")


def _child_setup(cpus: list[int], die_with_parent: bool):
    """The launched child's first act: pin its tree to `cpus`, tie its life to ours."""
    if not cpus and not die_with_parent:
        return None

    def setup() -> None:
        if cpus:  # inherited by every process and thread the engine starts
            os.sched_setaffinity(0, cpus)
        if die_with_parent:
            _die_with_parent()
    return setup


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the launching process dies, even by SIGKILL (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _visible_gpus() -> list[int]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [int(x) for x in env.split(",") if x.strip().isdigit()]
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return list(range(pynvml.nvmlDeviceGetCount()))
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver / no GPU: the caller reports which backend lacks GPUs
        return []


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
