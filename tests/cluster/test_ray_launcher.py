"""The Ray launcher on a real local Ray instance (tests/cluster/conftest.py).

Serve-sim engines keep these quick; the live run starts the tiny Llama on
vLLM-on-CPU and MiniLM on serve-embed through Ray and is marked `live`.
Every test ends by checking the cluster and this machine are as before: no
placement group, no EngineHost actor, no engine process group left.
"""

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

import pytest
from click.testing import CliRunner

from engine.cluster.connect import ClusterError
from engine.cluster.launcher import RayLauncher
from engine.cluster.spec import ClusterSpec
from engine.launcher import LaunchError
from engine.spec import BackendSpec
from sagetui.cli import main
from store import open_store, queries

from .conftest import engine_hosts, group_alive, guard_processes, open_groups, wait_until

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
