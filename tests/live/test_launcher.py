"""The launcher: argv per kind, health waits that explain failures, and no orphans."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from engine import faults, launcher
from engine.launcher import (
    Launcher,
    LaunchError,
    cpu_dtype_args,
    cpu_flags,
    engine_argv,
    usable_cpus,
)
from engine.spec import BackendSpec

from .conftest import group_members, sim_spec

ROOT = Path(__file__).resolve().parents[2]


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not any(group_members(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def test_vllm_cpu_runs_fp32_where_the_cpu_has_no_native_bf16(tmp_path):
    ice_lake, sapphire = {"avx512f", "avx512_vnni"}, {"avx512f", "avx512_bf16", "amx_bf16"}
    assert cpu_dtype_args([], ice_lake) == ["--dtype", "float32"]
    assert cpu_dtype_args([], sapphire) == []
    assert cpu_dtype_args(["--dtype", "bfloat16"], ice_lake) == []  # the user's choice stands
    assert cpu_dtype_args(["--dtype=half"], ice_lake) == []
    assert cpu_dtype_args([], set()) == []  # flags unknown: vLLM's own default
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags\t\t: fpu avx512f amx_bf16\n")
    assert cpu_flags(str(info)) == {"fpu", "avx512f", "amx_bf16"}
    assert cpu_flags(str(tmp_path / "absent")) == set()
    emb = BackendSpec(name="e", kind="vllm-cpu", capabilities=["chat"], device="cpu", model="/m")
    argv, _ = engine_argv(emb, 1)
    assert ("--dtype" in argv) == (cpu_dtype_args([]) != [])  # this machine's answer, in argv


def test_argv_per_kind_and_gpu_assignment(tmp_path):
    gpu = BackendSpec(name="big", kind="vllm", capabilities=["chat"], model="meta/llama",
                      gpus=2, tensor_parallel=2, extra_args=["--max-model-len", "4096"])
    argv, env = engine_argv(gpu, 9000)
    assert argv[:3] == ["vllm", "serve", "meta/llama"] and env == {}
    assert argv[argv.index("--tensor-parallel-size") + 1] == "2"
    assert argv[-2:] == ["--max-model-len", "4096"]
    emb = BackendSpec(name="e", kind="vllm-cpu", capabilities=["embedding"], device="cpu",
                      model="/m")
    argv, env = engine_argv(emb, 9001)
    assert "--runner" in argv and argv[argv.index("--runner") + 1] == "pooling"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    small = gpu.model_copy(update={"name": "small", "gpus": 1, "tensor_parallel": 1})
    assert Launcher([gpu, small], tmp_path, gpu_ids=[4, 5, 6])._assign_gpus() == \
        {"big": "4,5", "small": "6"}
    st = BackendSpec(name="st", kind="sentence-transformers", capabilities=["embedding"],
                     device="gpu")
    st_cpu = st.model_copy(update={"name": "st-cpu", "device": "cpu"})
    assert Launcher([gpu, st, st_cpu], tmp_path, gpu_ids=[0, 1, 2])._assign_gpus() == \
        {"big": "0,1", "st": "2"}  # the GPU embedding server gets its own device
    with pytest.raises(LaunchError, match="'small'.*gpus"):
        Launcher([gpu, small], tmp_path, gpu_ids=[0, 1])._assign_gpus()
    with pytest.raises(LaunchError, match="model: required"):
        engine_argv(emb.model_copy(update={"model": ""}), 1)
    with pytest.raises(LaunchError, match="url: required"):
        engine_argv(BackendSpec(name="o", kind="openai", capabilities=["chat"]), 1)
    with pytest.raises(LaunchError, match="duplicate"):
        Launcher([small, small], tmp_path)


def test_teardown_leaves_no_process_and_keeps_logs(tmp_path):
    specs = [sim_spec("a"), sim_spec("b", "minilm-cpu", caps=("embedding",))]
    with Launcher(specs, tmp_path) as engines:
        pids = [e.pid for e in engines]
        assert all(group_members(p) for p in pids)
        assert all(e.version.startswith("sagetui-sim") for e in engines)
        rows = [e.backend_row() for e in engines]
        assert [r["role"] for r in rows] == ["llm", "embedding"]
        params = json.loads(rows[0]["params_json"])
        assert params["name"] == "tiny-cpu" and params["cost"]["beta0"] > 0
        assert (rows[1]["model"], rows[1]["device_kind"]) == ("all-MiniLM-L6-v2", "x86-64")
    assert _gone(pids, timeout=1.0)
    assert (tmp_path / "engines" / "a.log").read_text().startswith("$ ")


def test_error_inside_context_tears_down(tmp_path):
    pids = []
    with pytest.raises(RuntimeError, match="boom"), Launcher([sim_spec("a")], tmp_path) as engines:
        pids = [e.pid for e in engines]
        raise RuntimeError("boom")
    assert pids and _gone(pids, timeout=1.0)


def test_exit_before_healthy_shows_log_tail(tmp_path):
    specs = [sim_spec("ok"), sim_spec("bad", extra_args=["--no-such-flag"])]
    launch = Launcher(specs, tmp_path)
    with pytest.raises(LaunchError) as err, launch:
        pass
    msg = str(err.value)
    assert "'bad' exited with code 2" in msg and "unrecognized arguments: --no-such-flag" in msg
    assert str(tmp_path / "engines" / "bad.log") in msg
    assert _gone([e.pid for e in launch.engines], timeout=1.0)  # the healthy one too


def test_health_timeout_shows_log_tail(tmp_path):
    with pytest.raises(LaunchError, match=r"(?s)not healthy after 0\.05 s.*engine\.servers\.sim"):
        with Launcher([sim_spec("slow")], tmp_path, health_timeout_s=0.05):
            pass


def test_lost_port_race_is_retried(tmp_path, monkeypatch):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    ports = iter([busy.getsockname()[1]])
    real = launcher.free_port
    monkeypatch.setattr(launcher, "free_port", lambda host: next(ports, None) or real(host))
    try:
        with Launcher([sim_spec("a")], tmp_path) as engines:
            assert engines[0].port != busy.getsockname()[1]
    finally:
        busy.close()
    assert "address already in use" in (tmp_path / "engines" / "a.log").read_text().lower()


def test_url_engines_are_only_health_checked(tmp_path):
    with Launcher([sim_spec("remote")], tmp_path / "1") as (remote,):
        spec = sim_spec("by-url", url=remote.url)
        with Launcher([spec], tmp_path / "2") as (eng,):
            assert eng.pid is None and eng.url == remote.url
            assert eng.version.startswith("sagetui-sim")
            with pytest.raises(faults.FaultError, match="given by URL"):
                faults.kill(eng)
        assert remote.alive()  # the URL engine's launcher did not touch it
    dead = sim_spec("nowhere", url="http://127.0.0.1:9")
    with pytest.raises(LaunchError, match="'nowhere'.*not healthy.*given by URL"):
        with Launcher([dead], tmp_path / "3", health_timeout_s=0.3):
            pass


_SCRIPT = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {root!r})
    from engine.launcher import Launcher
    from engine.spec import BackendSpec
    specs = [BackendSpec(name=n, kind="sim", capabilities=["chat"], device="cpu",
                         preset="tiny-cpu") for n in ("a", "b")]
    with Launcher(specs, {run!r}) as engines:
        print(json.dumps([e.pid for e in engines]), flush=True)
        time.sleep(120)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_signal_to_launcher_process_leaves_no_child(tmp_path, sig):
    """Ctrl-C, SIGTERM, or even SIGKILL of the launching process: engines die too."""
    script = _SCRIPT.format(root=str(ROOT), run=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(proc.stdout.readline())
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
        proc.send_signal(sig)
        proc.wait(timeout=30)
        assert _gone(pids), [p.cmdline() for pid in pids for p in group_members(pid)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_faults_kill_and_pause(tmp_path):
    import asyncio

    from engine.http import HTTPEngine

    launch = Launcher([sim_spec("victim"), sim_spec("paused")], tmp_path)
    with launch as (victim, paused):
        ev = faults.kill(victim)
        assert (ev.kind, ev.subject, ev.data["signal"]) == ("fault_kill", "victim", "SIGKILL")
        victim.proc.wait(timeout=5)
        assert [e.name for e in launch.dead()] == ["victim"]
        down = victim.down_info()  # what the run's engine_down event records
        assert down["node"] and down["exit_code"] == -signal.SIGKILL
        assert down["log_tail"].startswith("$ ")
        with pytest.raises(faults.FaultError, match="already exited"):
            faults.kill(victim)

        async def scenario():
            clock_t0 = time.monotonic()
            clock = lambda: time.monotonic() - clock_t0  # noqa: E731
            noted = []
            task = asyncio.create_task(faults.inject_at(
                paused, "pause", 0.1, clock=clock, duration_s=0.6,
                on_event=lambda e, t: noted.append((e.kind, round(t, 1)))))
            await asyncio.sleep(0.2)
            async with HTTPEngine(paused.url) as eng:
                assert not await eng.health(timeout_s=0.2)  # stopped: no answer
                t = time.monotonic()
                await task
                assert await eng.health()
                assert time.monotonic() - t > 0.2
            return noted

        noted = asyncio.run(scenario())
        assert [k for k, _ in noted] == ["fault_pause", "fault_resume"]
        assert noted[0][1] == pytest.approx(0.1, abs=0.1)
        assert noted[1][1] - noted[0][1] == pytest.approx(0.6, abs=0.15)
    assert [e.name for e in launch.dead()] == ["victim", "paused"]  # after teardown


async def test_engine_killed_mid_stream_is_a_named_error(tmp_path):
    from engine.http import EngineHTTPError, HTTPEngine

    with Launcher([sim_spec("dies", "7b-a100")], tmp_path) as (eng,):
        async with HTTPEngine(eng.url) as client:
            got = 0
            with pytest.raises(EngineHTTPError, match="stream broken") as err:
                async for chunk in client.stream_chat(
                        {"messages": [{"role": "user", "content": "x"}], "max_tokens": 2000}):
                    got += bool(chunk.text)
                    if got == 3:
                        faults.kill(eng)
            assert "stream broken" in str(err.value) and eng.url in str(err.value)
            assert not await client.health(timeout_s=0.5)


def test_missing_engine_command_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `vllm` here: as on a machine without it
    spec = BackendSpec(name="gpu0", kind="vllm", capabilities=["chat"], model="m")
    with pytest.raises(LaunchError, match="backend 'gpu0': cannot start 'vllm'"):
        with Launcher([spec], tmp_path, gpu_ids=[0]):
            pass


FAKE_VLLM = """#!{python}
# stands in for `vllm serve`: one ZeroMQ-like socket where vLLM puts its, then /health
import http.server, os, socket, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
sock = socket.socket(socket.AF_UNIX)
sock.bind(os.path.join(os.environ["VLLM_RPC_BASE_PATH"], "engine-core.sock"))
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"{{}}")
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


def test_vllm_sockets_live_in_a_folder_of_their_own_removed_at_stop(tmp_path, monkeypatch):
    """vLLM puts its ZeroMQ sockets in VLLM_RPC_BASE_PATH (the temp folder by default),
    and a killed engine never removes them: each launched vLLM gets its own folder,
    and stop removes it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "vllm"
    fake.write_text(FAKE_VLLM.format(python=sys.executable))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("VLLM_RPC_BASE_PATH", raising=False)
    spec = BackendSpec(name="gpu0", kind="vllm", capabilities=["chat"], model="m")
    with Launcher([spec], tmp_path, gpu_ids=[0]) as (eng,):
        rpc = eng.rpc_dir
        assert rpc is not None and eng.env["VLLM_RPC_BASE_PATH"] == str(rpc)
        assert (rpc / "engine-core.sock").is_socket()
    assert not rpc.exists()
    # a path the user chose is theirs: used as given, and left alone
    mine = tmp_path / "rpc"
    mine.mkdir()
    monkeypatch.setenv("VLLM_RPC_BASE_PATH", str(mine))
    with Launcher([spec], tmp_path, gpu_ids=[0]) as (eng,):
        assert eng.rpc_dir is None and (mine / "engine-core.sock").is_socket()
    assert mine.is_dir()


def test_pinned_engine_runs_only_on_its_cores(tmp_path):
    """`cpus` pins the launched process tree (checked from /proc), and a core this
    process may not use is refused before any engine starts."""
    core = min(os.sched_getaffinity(0))
    spec = sim_spec("pinned").model_copy(update={"cpus": [core]})
    with Launcher([spec], tmp_path) as engines:
        assert os.sched_getaffinity(engines[0].pid) == {core}
    emb = BackendSpec(name="e", kind="vllm-cpu", capabilities=["chat"], device="cpu",
                      model="/m", cpus=[core])
    assert engine_argv(emb, 1)[1]["VLLM_CPU_OMP_THREADS_BIND"] == str(core)
    st = BackendSpec(name="s", kind="sentence-transformers", capabilities=["embedding"],
                     device="cpu", cpus=[core])
    argv = engine_argv(st, 1)[0]
    assert argv[argv.index("--threads") + 1] == "1"
    too_far = max(usable_cpus()) + 1
    ok, bad = sim_spec("ok"), sim_spec("bad").model_copy(update={"cpus": [too_far]})
    with pytest.raises(LaunchError, match=rf"'bad'.*cpus: \[{too_far}\] not available"):
        Launcher([ok, bad], tmp_path).start()
    assert not (tmp_path / "engines" / "ok.log").exists()  # nothing was started
    with pytest.raises(ValueError, match="cpus: core ids must be unique"):
        BackendSpec(name="d", kind="sim", capabilities=["chat"], preset="tiny-cpu", cpus=[0, 0])
