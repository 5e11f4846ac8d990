"""Live-engine fixtures: ONE vLLM-on-CPU start per session (about a minute on 2 cores).

Why session scope: eight engineers share two cores; every test that needs a
real LLM engine reuses this one.
"""

from __future__ import annotations

import os

import psutil

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
