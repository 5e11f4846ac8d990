"""The pacer: never wakes a waiter before its deadline, loses none, on both loops."""

from __future__ import annotations

import asyncio
import sys
import time

import numpy as np
import pytest

from loadgen.client import ClientConfig, run_coro
from loadgen.pacer import Pacer
from loadgen.runner import run
from loadgen.spec import WorkloadSpec

LOOPS = {"uvloop": run_coro, "asyncio": asyncio.run}


async def _wake_times(pacer: Pacer, deadlines: list[float]) -> list[float]:
    """Every deadline waited for by its own coroutine, all at once."""
    async def one(d: float) -> float:
        await pacer.wait(d)
        return time.monotonic()

    async with pacer:
        return await asyncio.gather(*(one(d) for d in deadlines))


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("use_timerfd", [True, False])
def test_concurrent_waiters_never_early_none_lost(loop, use_timerfd):
    rng = np.random.default_rng(1)
    start = time.monotonic() + 0.02
    deadlines = list(start + rng.uniform(0, 0.25, 300))
    deadlines += [start + 0.1] * 3  # equal deadlines all wake
    pacer = Pacer(use_timerfd=use_timerfd)
    woke = LOOPS[loop](_wake_times(pacer, deadlines))
    late = np.array(woke) - np.array(deadlines)
    assert len(woke) == len(deadlines)
    assert late.min() >= 0
    assert np.median(late) < 0.002  # loose: the machine is shared


def test_timerfd_is_used_on_linux():
    kind = Pacer().kind
    assert kind == ("timerfd" if sys.platform.startswith("linux") else "loop-timer")
    assert Pacer(use_timerfd=False).kind == "loop-timer"
    assert "0.25 ms early" in Pacer(0.00025).describe()


def test_past_deadline_returns_at_once_and_cancelled_waiter_is_harmless():
    async def go() -> tuple[float, list[float]]:
        async with Pacer() as p:
            t = time.monotonic()
            await p.wait(t - 1.0)
            immediate = time.monotonic() - t
            now = time.monotonic()
            doomed = asyncio.create_task(p.wait(now + 0.01))  # the earliest: the timer is armed for it
            others = [asyncio.create_task(p.wait(now + d)) for d in (0.02, 0.03)]
            await asyncio.sleep(0.001)
            doomed.cancel()
            await asyncio.gather(*others)
            return immediate, [time.monotonic() - now]

    immediate, after = run_coro(go())
    assert immediate < 0.001
    assert after[0] >= 0.03


def test_bad_lead_is_refused_naming_it():
    with pytest.raises(ValueError, match="lead_s"):
        Pacer(-0.001)
    with pytest.raises(ValueError, match="lead_s"):
        run(WorkloadSpec(rate=10, duration_s=1), ClientConfig(targets="http://127.0.0.1:1"), lead_s=-1)


def test_runs_on_uvloop_where_installed():
    pytest.importorskip("uvloop")  # a dependency (pyproject); its ms timers are why the pacer exists

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert run_coro(loop_module()).startswith("uvloop")
