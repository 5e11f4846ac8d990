"""Live-engine fixtures: ONE vLLM-on-CPU start per session (about a minute on 2 cores).

Why session scope: a start costs about a minute of both cores; every test that
needs a real LLM engine reuses this one.
"""

from __future__ import annotations

import os

import psutil
import pytest

from engine.launcher import Launcher
from engine.spec import BackendSpec

# The session-wide `vllm_cpu` fixture lives in tests/conftest.py, so every test
# directory shares ONE vLLM-on-CPU start.


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes in process group `pgid`."""
    out = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (psutil.Error, OSError):
            continue
    return out


def sim_spec(name: str, preset: str = "tiny-cpu", caps=("chat", "completion"), **kw) -> BackendSpec:
    return BackendSpec(name=name, kind="sim", capabilities=list(caps), device="cpu",
                       preset=preset, **kw)


PRIORITY_VLLM_ARGS = ["--max-model-len", "1024", "--enforce-eager",
                      "--scheduling-policy", "priority", "--max-num-seqs", "2"]


@pytest.fixture(scope="module")
def vllm_cpu_priority(tmp_path_factory):
    """The tiny Llama on vLLM-CPU with priority scheduling and 2 sequences at a time, so
    requests queue inside vLLM, where their priority orders them. Module scope: only
    the module that needs it pays for the start (about a minute)."""
    spec = BackendSpec(name="vllm-cpu-prio", kind="vllm-cpu",
                       capabilities=["chat", "completion"], device="cpu",
                       device_kind="x86-64", model="tiny-llama", extra_args=PRIORITY_VLLM_ARGS)
    with Launcher([spec], tmp_path_factory.mktemp("vllm-prio-run"),
                  health_timeout_s=400) as engines:
        yield engines[0]
