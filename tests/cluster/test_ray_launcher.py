"""The Ray launcher on a real local Ray instance (tests/cluster/conftest.py).

Serve-sim engines keep these quick; the live run starts the tiny Llama on
vLLM-on-CPU and MiniLM on serve-embed through Ray and is marked `live`.
Every test ends by checking the cluster and this machine are as before: no
placement group, no EngineHost actor, no engine process group left.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from click.testing import CliRunner

from engine.cluster.connect import ClusterError
from engine.cluster.launcher import RayLauncher
from engine.cluster.spec import ClusterSpec
from engine.launcher import LaunchError
from engine.spec import BackendSpec
from sagetui.cli import main
from store import open_store, queries

from .conftest import (
    engine_hosts,
    group_alive,
    guard_processes,
    open_groups,
    wait_for_free_cpus,
    wait_until,
)

pytestmark = pytest.mark.slow


def _sim(name: str, preset: str = "tiny-cpu", caps=("chat",), **kw) -> BackendSpec:
    return BackendSpec(name=name, kind="sim", capabilities=list(caps), device="cpu",
                       preset=preset, **kw)


def _cluster(address: str, **engines) -> ClusterSpec:
    return ClusterSpec(launcher="ray", address=address, reserve_timeout_s=20,
                       engines={n: p for n, p in engines.items()})


def _nothing_left() -> None:
    wait_until(lambda: not open_groups() and not engine_hosts() and not guard_processes(),
               timeout_s=20)


def test_bad_requests_are_refused_before_anything_starts(ray_address, tmp_path):
    from ray.util import placement_group_table

    before = len(placement_group_table())
    cases = [
        ([_sim("a")], {"a": {"cpus": 3}},
         "'a' needs 3 CPUs and 0 GPUs on one node; the largest suitable node has 2 CPUs"),
        ([BackendSpec(name="g", kind="vllm", capabilities=["chat"], model="m")], {},
         "the engines need 1 GPU in all; the cluster has 0 GPUs free (short of 1 GPU)"),
        ([_sim("a"), _sim("b")], {"a": {"cpus": 1.5}, "b": {"cpus": 1}},
         "the engines need 2.5 CPUs in all; the cluster has 2 CPUs free (short of 0.5 CPUs)"),
        ([_sim("a")], {"a": {"labels": {"zone": "elsewhere"}}},
         "no alive node has the labels {'zone': 'elsewhere'}"),
        ([_sim("a")], {"a": {"node": "10.9.9.9"}},
         "node '10.9.9.9' is not an alive node of the cluster (alive: 127.0.0.1)"),
    ]
    for specs, engines, message in cases:
        with pytest.raises(ClusterError, match="cannot hold this run's engines") as info:
            RayLauncher(specs, tmp_path, _cluster(ray_address, **engines)).start()
        assert message in str(info.value)
    assert len(placement_group_table()) == before  # not one group was even asked for
    with socket.socket() as other:  # something listens there, but not this session's Ray
        other.bind(("127.0.0.1", 0))
        other.listen()
        elsewhere = f"127.0.0.1:{other.getsockname()[1]}"
        with pytest.raises(ClusterError, match="already connected to the Ray cluster at "):
            RayLauncher([_sim("a")], tmp_path, _cluster(elsewhere)).start()
    _nothing_left()


def test_engine_that_fails_on_its_node_names_node_and_log_and_leaves_nothing(
        ray_address, tmp_path):
    bad = _sim("bad", extra_args=["--no-such-flag"])
    t0 = time.monotonic()
    with pytest.raises(LaunchError) as info:
        with RayLauncher([_sim("good"), bad], tmp_path,
                         _cluster(ray_address, good={"cpus": 0.5}, bad={"cpus": 0.5})):
            pass
    msg = str(info.value)
    assert "backend 'bad' exited with code 2 on node 127.0.0.1 before becoming healthy" in msg
    assert "unrecognized arguments: --no-such-flag" in msg  # the log tail, read on its node
    _nothing_left()
    assert "--no-such-flag" in (tmp_path / "engines" / "bad.log").read_text()  # copied here
    assert time.monotonic() - t0 < 60


# -- a live run through the gateway, engines on Ray -----------------------------------------

RUN = """
[run]
name = "on-ray"
mode = "live"
raw = true

[workload]
rate = 6
duration_s = 5
warmup_s = 0
mix = {{ chat = 0.7, embedding = 0.3 }}
sizes.chat = {{ prompt_tokens = 16, output_tokens = 8 }}

[[backends]]
name = "vllm"
kind = "vllm-cpu"
model = "tiny-llama"
device = "cpu"
capabilities = ["chat"]
max_concurrency = 8
extra_args = ["--max-model-len", "1024", "--enforce-eager"]

[[backends]]
name = "sim"
kind = "sim"
preset = "tiny-cpu"
model = "tiny-llama"
device = "cpu"
capabilities = ["chat"]
max_concurrency = 8

[[backends]]
name = "minilm"
kind = "sentence-transformers"
device = "cpu"
capabilities = ["embedding"]
max_concurrency = 4

[[faults]]
at_s = 3
backend = "sim"
action = "kill"

[cluster]
launcher = "ray"
address = "{address}"
[cluster.engines.vllm]
cpus = 0.5
[cluster.engines.sim]
cpus = 0.5
node = "{node_id}"
[cluster.engines.minilm]
cpus = 0.5
labels = {{ zone = "test" }}
"""


@pytest.mark.live
def test_live_run_through_the_gateway_on_ray_records_where_each_engine_ran(
        ray_address, tmp_path, monkeypatch):
    """vLLM-on-CPU (tiny Llama), serve-embed (MiniLM) and serve-sim, each in its own
    bundle; the sim engine is killed through its actor at t = 3 s."""
    import ray

    monkeypatch.setenv("SAGETUI_RUNS_DIR", str(tmp_path / "runs"))
    wait_for_free_cpus(1.5)  # its three engines' bundles
    node_id = ray.get_runtime_context().get_node_id()
    cfg = tmp_path / "ray.toml"
    cfg.write_text(textwrap.dedent(RUN.format(address=ray_address, node_id=node_id)))
    db = tmp_path / "s.db"
    t0 = time.monotonic()
    res = CliRunner().invoke(main, ["--db", str(db), "run", str(cfg)], catch_exceptions=False)
    wall = time.monotonic() - t0
    assert res.exit_code == 0, res.output
    _nothing_left()  # the run's own teardown: groups, actors, processes
    with open_store(db) as store:
        (run,) = queries.list_runs(store)
        run = queries.get_run(store, run["id"])
    assert run["status"] == "completed"
    by_class = {c: s for c, s in run["summary"].items()}
    assert by_class["chat"]["completed"] > 0 and by_class["embedding"]["completed"] > 0
    rows = {b["name"]: b for b in run["backends"]}
    assert set(rows) == {"vllm", "sim", "minilm"}
    for b in rows.values():
        placed = b["launch_args"]["placement"]
        assert placed["launcher"] == "ray" and placed["node_ip"] == "127.0.0.1"
        assert placed["node_id"] == node_id and placed["ray_version"] == ray.__version__
        assert placed["resources"]["CPU"] == 0.5 and b["url"].startswith("http://127.0.0.1:")
    assert rows["sim"]["launch_args"]["placement"]["resources"]["node:127.0.0.1"] > 0
    assert rows["minilm"]["launch_args"]["placement"]["labels"] == {"zone": "test"}
    assert rows["vllm"]["engine_version"][0].isdigit()  # vLLM's /version
    (down,) = [e for e in run["events"] if e["kind"] == "engine_down"]
    assert down["subject"] == "sim"
    assert down["data"]["node"] and down["data"]["node_ip"] == "127.0.0.1"
    assert down["data"]["exit_code"] == -signal.SIGKILL
    assert "sim_server" in down["data"]["log_tail"]  # the argv line heading its node-side log
    (fault,) = [e for e in run["events"] if e["kind"] == "fault"]
    assert fault["subject"] == "sim"
    logs = list((tmp_path / "runs").glob("run-*/engines/vllm.log"))
    assert logs and "vllm" in logs[0].read_text()  # copied back from the node at teardown
    print(f"live run on Ray: {wall:.1f} s wall")


# -- no orphans: the launching process dies --------------------------------------------------

DRIVER = """
import json, sys, time
from engine.cluster.launcher import RayLauncher
from engine.cluster.spec import ClusterSpec
from engine.spec import BackendSpec

specs = [BackendSpec(name="chat", kind="sim", capabilities=["chat"], device="cpu",
                     preset="tiny-cpu"),
         BackendSpec(name="emb", kind="sim", capabilities=["embedding"], device="cpu",
                     preset="minilm-cpu")]
cluster = ClusterSpec(launcher="ray", address=sys.argv[1],
                      engines={"chat": {"cpus": 0.5}, "emb": {"cpus": 0.5}})
launcher = RayLauncher(specs, sys.argv[2], cluster)
engines = launcher.start()
print(json.dumps({"pgids": [e.remote_pgid for e in engines], "pg": launcher.pg.id.hex()}),
      flush=True)
time.sleep(600)
"""


def _drive(address: str, run_dir) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DRIVER, address, str(run_dir)],
                            stdout=subprocess.PIPE, text=True)


def test_no_engine_process_or_placement_group_outlives_its_launcher(ray_address, tmp_path):
    """SIGKILL (no teardown at all: Ray ends the driver's job, each guard its group)
    and SIGTERM (the launcher's own teardown) of the process that launched them."""
    from ray.util import placement_group_table

    killed, termed = _drive(ray_address, tmp_path / "k"), _drive(ray_address, tmp_path / "t")
    started = {}
    for name, proc in (("kill", killed), ("term", termed)):
        line = proc.stdout.readline()
        assert line, f"the {name} driver did not start its engines"
        started[name] = json.loads(line)
    pgids = [g for s in started.values() for g in s["pgids"]]
    assert all(group_alive(g) for g in pgids), f"engine process groups {pgids}"
    assert len(open_groups()) == 2, f"placement groups {open_groups()}"

    killed.send_signal(signal.SIGKILL)
    termed.send_signal(signal.SIGTERM)
    assert killed.wait(30) == -signal.SIGKILL and termed.wait(60) == -signal.SIGTERM

    left: dict = {}

    def all_gone() -> bool:
        left.update(groups=[g for g in pgids if group_alive(g)], pgs=open_groups(),
                    actors=len(engine_hosts()), guards=[p.pid for p in guard_processes()])
        return not any(left.values())

    took = wait_until(all_gone, timeout_s=30, what=lambda: f"left: {left}")
    states = placement_group_table()
    assert {states[s["pg"]]["state"] for s in started.values()} == {"REMOVED"}
    assert (tmp_path / "t" / "engines" / "chat.log").exists()  # SIGTERM: our teardown ran
    assert not (tmp_path / "k" / "engines").exists()  # SIGKILL: nothing of ours ran
    print(f"orphans gone {took:.1f} s after the drivers died")


def test_faults_reach_a_ray_engine_through_its_actor(ray_address, tmp_path):
    """Pause, resume and kill as `[[faults]]` sends them; the guard outlives the kill
    and records the exit code."""
    from engine import faults
    from engine.launcher import check_health

    launch = RayLauncher([_sim("victim")], tmp_path, _cluster(ray_address, victim={"cpus": 0.5}))
    with launch as (victim,):
        assert faults.pause(victim).data["signal"] == "SIGSTOP"
        assert not check_health(victim.url, timeout_s=0.5)
        faults.resume(victim)
        assert check_health(victim.url, timeout_s=5)
        assert faults.kill(victim).data["pid"] == victim.remote_pgid
        wait_until(lambda: not victim.alive(), timeout_s=10)
        assert [e.name for e in launch.dead()] == ["victim"]
        down = victim.down_info()
        assert (down["node_ip"], down["exit_code"]) == ("127.0.0.1", -signal.SIGKILL)
        with pytest.raises(faults.FaultError, match="'victim': engine 'victim' is not running"):
            faults.kill(victim)
    _nothing_left()
