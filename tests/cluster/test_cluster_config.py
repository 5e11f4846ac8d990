"""`[cluster]` without a cluster: validation, what each engine reserves, the shortfall
messages, and the refusals that come before Ray is ever asked (no extra, no cluster)."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time

import pytest
from click.testing import CliRunner

from engine.cluster.connect import ClusterError, probe
from engine.cluster.demand import Bundle, bundles_for, shortfalls
from engine.cluster.spec import ClusterSpec
from engine.spec import BackendSpec
from sagetui.cli import main
from sagetui.config import ConfigError, expand_raw

SIM = {"name": "sim", "kind": "sim", "preset": "tiny-cpu", "device": "cpu",
       "capabilities": ["chat"]}


def _load(cluster: dict, backends=(SIM,)):
    raw = {"run": {"mode": "live"}, "workload": {"mix": {"chat": 1.0}},
           "backends": [dict(b) for b in backends], "cluster": cluster}
    return expand_raw(raw, source="t.toml", spec_text="").runs[0]


@pytest.mark.parametrize("cluster, message", [
    ({"launcher": "slurm"}, "cluster.launcher: launcher: 'slurm' is not one of local, ray"),
    ({"launcher": "ray", "address": "head"}, "cluster.address: address: 'head' is not 'auto'"),
    ({"launcher": "ray", "address": "ray://h:99999"}, "cluster.address"),
    ({"launcher": "ray", "strategy": "ANY"}, "strategy: 'ANY' is not one of PACK"),
    ({"launcher": "ray", "engines": {"nope": {"cpus": 1}}}, "cluster.engines.nope: no backend"),
    ({"launcher": "ray", "engines": {"sim": {"cpus": 0}}}, "cluster.engines.sim.cpus"),
    ({"launcher": "ray", "engines": {"sim": {"gpu": 1}}}, "cluster.engines.sim.gpu"),
])
def test_bad_cluster_sections_name_the_field(cluster, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        _load(cluster)


def test_url_backends_take_no_placement_and_local_keeps_old_hashes():
    url = {**SIM, "name": "far", "url": "http://127.0.0.1:1"}
    with pytest.raises(ConfigError, match="given by url"):
        _load({"launcher": "ray", "engines": {"far": {"cpus": 1}}}, backends=(SIM, url))
    assert "cluster" not in _load({}).resolved()  # a local run's config (and hash) unchanged
    ray_cfg = _load({"launcher": "ray", "address": "ray://10.0.0.1:10001"})
    assert ray_cfg.resolved()["cluster"]["address"] == "ray://10.0.0.1:10001"


def test_bundles_follow_the_local_launchers_gpu_rules_and_the_placements():
    specs = [BackendSpec(name="big", kind="vllm", capabilities=["chat"], model="m",
                         gpus=1, tensor_parallel=2),
             BackendSpec(name="st", kind="sentence-transformers", capabilities=["embedding"],
                         device="gpu", cpus=[0, 1]),
             BackendSpec(name="sim", kind="sim", capabilities=["chat"], device="cpu",
                         preset="tiny-cpu"),
             BackendSpec(name="far", kind="openai", capabilities=["chat"], url="http://x:1")]
    cluster = ClusterSpec(launcher="ray", engines={
        "sim": {"cpus": 0.5, "node": "10.0.0.2", "labels": {"zone": "b"}}})
    got = bundles_for(specs, cluster)
    assert [(b.backend, b.cpus, b.gpus) for b in got] == [
        ("big", 1.0, 2), ("st", 2.0, 1), ("sim", 0.5, 0)]  # the URL backend takes none
    assert got[2].resources("10.0.0.2") == {"CPU": 0.5, "node:10.0.0.2": 0.001}
    assert got[2].labels == {"zone": "b"}


NODES = [{"Alive": True, "NodeID": "a" * 56, "NodeManagerAddress": "10.0.0.1",
          "Resources": {"CPU": 8.0, "GPU": 2.0}, "Labels": {"zone": "a"}},
         {"Alive": True, "NodeID": "b" * 56, "NodeManagerAddress": "10.0.0.2",
          "Resources": {"CPU": 4.0}, "Labels": {"zone": "b"}},
         {"Alive": False, "NodeID": "c" * 56, "NodeManagerAddress": "10.0.0.3",
          "Resources": {"CPU": 64.0, "GPU": 8.0}, "Labels": {}}]
FREE = {"CPU": 12.0, "GPU": 2.0}


def test_shortfalls_name_what_is_missing():
    assert shortfalls([Bundle("a", 8, 2), Bundle("b", 4, 0, node="10.0.0.2")], NODES, FREE) == []
    assert shortfalls([Bundle("a", 1, 0, node="b" * 56)], NODES, FREE) == []  # by node id
    msg, total = shortfalls([Bundle("big", 1, 4)], NODES, FREE)
    assert "short of 2 GPUs" in total
    assert "'big' needs 1 CPU and 4 GPUs on one node; the largest suitable node has 8 CPUs " \
           "and 2 GPUs" in msg
    msgs = shortfalls([Bundle("x", 8, 1), Bundle("y", 4, 1), Bundle("z", 1, 1)], NODES, FREE)
    assert msgs == ["the engines need 13 CPUs in all; the cluster has 12 CPUs free "
                    "(short of 1 CPU)",
                    "the engines need 3 GPUs in all; the cluster has 2 GPUs free "
                    "(short of 1 GPU)"]
    (msg,) = shortfalls([Bundle("p", 1, 0, node="10.0.0.3")], NODES, FREE)  # dead node
    assert "node '10.0.0.3' is not an alive node of the cluster (alive: 10.0.0.1, 10.0.0.2)" in msg
    (msg,) = shortfalls([Bundle("l", 1, 1, labels={"zone": "b"})], NODES, FREE)
    assert "'l' needs 1 CPU and 1 GPU on one node; the largest suitable node has 4 CPUs " \
           "and 0 GPUs" in msg
    (msg,) = shortfalls([Bundle("l", 1, 0, labels={"zone": "q"})], NODES, FREE)
    assert "no alive node has the labels {'zone': 'q'}" in msg


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again once the socket is


def test_unreachable_address_is_refused_at_once():
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:\d+ "
                                           r"\(Connection refused\)"):
        probe(f"127.0.0.1:{_closed_port()}")
    assert time.monotonic() - t0 < 2.0  # ray.init itself would retry for minutes


def _config(tmp_path, cluster: str) -> str:
    path = tmp_path / "ray.toml"
    path.write_text(textwrap.dedent("""
        [run]
        mode = "live"
        [workload]
        rate = 5
        duration_s = 1
        mix = { chat = 1.0 }
        [[backends]]
        name = "sim"
        kind = "sim"
        preset = "tiny-cpu"
        device = "cpu"
        capabilities = ["chat"]
    """) + cluster)
    return str(path)


def test_cli_refuses_an_unreachable_cluster_with_exit_2(tmp_path):
    cfg = _config(tmp_path, f'[cluster]\nlauncher = "ray"\naddress = "127.0.0.1:{_closed_port()}"\n')
    res = CliRunner().invoke(main, ["--db", str(tmp_path / "s.db"), "run", cfg])
    assert res.exit_code == 2, res.output
    assert "cannot reach the Ray cluster at 127.0.0.1:" in res.output
    assert not (tmp_path / "s.db").exists() or "run " not in res.output  # no run was made


def test_cli_without_the_extra_names_it_and_exits_2(tmp_path):
    """A Python where `import ray` fails (sys.modules entry None), in a child process
    so this session's own Ray stays untouched."""
    cfg = _config(tmp_path, '[cluster]\nlauncher = "ray"\n')
    code = ("import sys; sys.modules['ray'] = None; from sagetui.cli import main; "
            f"main(['--db', {str(tmp_path / 's.db')!r}, 'run', {cfg!r}])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2, res.stderr
    assert "needs Ray, which is not installed here: pip install 'sagetui[cluster]'" in res.stderr


def test_local_runs_never_import_ray():
    code = ("import sys, sagetui.cli, sagetui.config, sagetui.orchestrate.live, "
            "engine.cluster, engine.cluster.spec; assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
