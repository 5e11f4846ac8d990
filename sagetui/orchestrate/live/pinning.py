"""The run's CPUs (`run.cpus`) for every thread of this process."""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def pinned(cpus: list[int]):
    """Every thread of this process (and what it starts meanwhile) on `cpus`, then back.

    Why: on a small machine the load generator and the in-process gateway take CPU
    time from whichever engine shares their core; `run.cpus` says which one pays.
    """
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    tids = [int(t) for t in os.listdir("/proc/self/task")]
    for tid in tids:
        _set_affinity(tid, cpus)
    try:
        yield
    finally:
        for tid in [int(t) for t in os.listdir("/proc/self/task")]:
            _set_affinity(tid, before)


def _set_affinity(tid: int, cpus) -> None:
    try:
        os.sched_setaffinity(tid, cpus)
    except ProcessLookupError:  # the thread ended meanwhile
        pass
