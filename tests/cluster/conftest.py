"""One local Ray instance for the whole session: `ray.init(num_cpus=2)` on loopback.

Why session scope: Ray has no local mode, and starting its head (GCS, raylet)
takes ~20 s on the 2-core machine; every test here shares the one instance.
Why loopback: engines listen on the node's IP as Ray reports it, and tests
send traffic only to this machine's loopback addresses.
"""

from __future__ import annotations

import logging
import os
import time

import psutil
import pytest

GUARD = "engine.cluster.guard"


@pytest.fixture(scope="session")
def ray_address():
    """The GCS address (HOST:PORT) of a local Ray head with 2 CPUs, label zone=test."""
    before = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    # Ray's single-machine switch: node IP 127.0.0.1 for this process and the head's
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # read when Ray is imported, which may be earlier
    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                   namespace="sagetui", object_store_memory=100 << 20,
                   labels={"zone": "test"}, logging_level=logging.WARNING)
    try:
        yield ctx.address_info["gcs_address"]
    finally:
        ray.shutdown()
        if before is None:
            os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        else:
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = before


def open_groups() -> list[str]:
    """Placement groups of the cluster not yet removed."""
    from ray.util import placement_group_table

    return [pg for pg, info in placement_group_table().items() if info["state"] != "REMOVED"]


def engine_hosts() -> list[dict]:
    """EngineHost actors still alive in the cluster."""
    import ray

    # ray.util.state needs the dashboard, which the test head does not start
    return [a for a in ray._private.state.actors().values()
            if a.get("ActorClassName", "").endswith("EngineHost") and a.get("State") != "DEAD"]


def guard_processes() -> list[psutil.Process]:
    """Live engine guards on this machine (each leads one engine's process group)."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmd = p.info["cmdline"] or []
        if GUARD in cmd and p.info["status"] != psutil.STATUS_ZOMBIE:
            out.append(p)
    return out


def group_alive(pgid: int) -> bool:
    for p in psutil.process_iter(["status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (psutil.Error, OSError):
            continue
    return False


def wait_until(predicate, timeout_s: float, step_s: float = 0.2, what=None) -> float:
    """Seconds until `predicate()` held; raises AssertionError (with `what()`) on timeout."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout_s:
            detail = what() if what else predicate.__doc__ or predicate
            raise AssertionError(f"not true after {timeout_s} s: {detail}")
        time.sleep(step_s)
    return time.monotonic() - t0


def wait_for_free_cpus(n: float, timeout_s: float = 60.0) -> None:
    """Wait until the cluster has `n` CPUs free: an earlier test's placement group or
    actor is released by Ray asynchronously, after that test has returned."""
    import time

    import ray

    t_end = time.monotonic() + timeout_s
    while ray.available_resources().get("CPU", 0.0) < n - 1e-9:
        if time.monotonic() > t_end:
            pytest.fail(f"the test cluster still has only "
                        f"{ray.available_resources().get('CPU', 0.0)} CPUs free after "
                        f"{timeout_s:g} s (an earlier test left a reservation)")
        time.sleep(0.5)
