"""Live-engine fixtures: ONE vLLM-on-CPU start per session (about a minute on 2 cores).

Why session scope: eight engineers share two cores; every test that needs a
real LLM engine reuses this one.
"""

from __future__ import annotations

import os

import psutil
import pytest

from engine.launcher import Launcher
from engine.spec import BackendSpec


@pytest.fixture(scope="session")
def vllm_cpu(tmp_path_factory):
    """A launched vLLM-on-CPU engine serving the tiny Llama as model 'tiny-llama'."""
    spec = BackendSpec(name="vllm-cpu-0", kind="vllm-cpu", capabilities=["chat", "completion"],
                       device="cpu", device_kind="x86-64", model="tiny-llama",
                       # eager: skips ~30 s of torch.compile warm-up; tests time nothing here
                       extra_args=["--max-model-len", "1024", "--enforce-eager"])
    with Launcher([spec], tmp_path_factory.mktemp("vllm-run"), health_timeout_s=400) as engines:
        yield engines[0]


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
