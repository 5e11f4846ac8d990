"""Waits for a deadline on time.monotonic() with sub-millisecond accuracy.

Why its own module: the open loop's lateness (sent − intended) is mostly how
late the event loop wakes. uvloop rounds every timer to a whole millisecond
and a sleeping process (a VM's idle vCPU) takes a while to run again, so a
plain `asyncio.sleep` to the deadline woke 1.4–3.7 ms late at p99 at
1000 req/s on this 2-core machine (docs/loadgen.md, "Runner"). Here a
Linux timerfd, armed on CLOCK_MONOTONIC (the clock of time.monotonic()) to
the nanosecond, wakes the loop `lead_s` before the deadline; the waiter then
yields to the loop (`asyncio.sleep(0)`, so responses are still read) until
the deadline passes. Where timerfd is missing the timer is the loop's own,
woken `lead_s + TIMER_SLOP_S` early; `Pacer.kind` says which one ran.
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import itertools
import os
import sys
import time

LEAD_S = 0.00025  # wake this long before a deadline, then yield until it passes
TIMER_SLOP_S = 0.0015  # the loop's own timers: uvloop rounds to 1 ms, asyncio waits in whole ms
_CLOCK_MONOTONIC = 1
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc_timerfd():
    """(create, settime_abs) through libc, or None where there is no timerfd."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    create.argtypes = [ctypes.c_int, ctypes.c_int]
    settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
    spec = _Itimerspec()

    def settime_abs(fd: int, t: float) -> None:
        # rounded up, so the timer never fires before t as time.monotonic() reads it
        spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(int(t * 1e9) + 1, 1_000_000_000)
        if settime(fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def create_fd() -> int:
        fd = create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        return fd

    return create_fd, settime_abs


_TIMERFD = _libc_timerfd()


class Pacer:
    """`async with Pacer() as p: await p.wait(deadline)` — returns at the first
    moment time.monotonic() >= deadline, never before.

    Any number of coroutines may wait at once (closed-loop clients): one
    timerfd is armed for the earliest deadline. lead_s > 0 trades CPU (the
    waiter yields in a loop for up to lead_s per deadline) for accuracy.
    """

    def __init__(self, lead_s: float = LEAD_S, *, use_timerfd: bool = True):
        if lead_s < 0:
            raise ValueError("lead_s must be >= 0")
        self.lead_s = lead_s
        self._timerfd = _TIMERFD if use_timerfd else None
        self.kind = "timerfd" if self._timerfd else "loop-timer"
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop  # set on entry; used only inside `async with`
        self._heap: list[tuple[float, int, asyncio.Future]] = []
        self._armed = float("inf")
        self._seq = itertools.count()

    def describe(self) -> str:
        return f"{self.kind}, wake {self.lead_s * 1000:g} ms early, then yield to the deadline"

    async def __aenter__(self) -> Pacer:
        self._loop = asyncio.get_running_loop()
        if self._timerfd is not None:
            self._fd = self._timerfd[0]()
            self._loop.add_reader(self._fd, self._fire)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        for _, _, fut in self._heap:
            fut.cancel()
        self._heap.clear()

    async def wait(self, deadline: float) -> None:
        wake = deadline - self.lead_s
        if self._fd is None:
            delay = wake - TIMER_SLOP_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        elif wake > time.monotonic():
            fut = self._loop.create_future()
            heapq.heappush(self._heap, (wake, next(self._seq), fut))
            if wake < self._armed:
                self._arm(wake)
            await fut
        while time.monotonic() < deadline:
            await asyncio.sleep(0)

    def _arm(self, t: float) -> None:
        assert self._timerfd is not None and self._fd is not None  # only timerfd pacers arm
        self._armed = t
        self._timerfd[1](self._fd, t)

    def _fire(self) -> None:
        assert self._fd is not None  # the reader is removed before the fd closes
        try:
            os.read(self._fd, 8)
        except BlockingIOError:  # re-armed since it fired
            return
        now = time.monotonic()
        heap = self._heap
        while heap and heap[0][0] <= now:
            fut = heapq.heappop(heap)[2]
            if not fut.done():
                fut.set_result(None)
        self._armed = float("inf")
        if heap:
            self._arm(heap[0][0])
