"""The Clock seam: the only place the runtime reads time or sleeps."""

from __future__ import annotations

import asyncio
import time
from typing import Optional, Protocol


class Clock(Protocol):
    def wall_ms(self) -> int: ...
    def monotonic(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The production clock."""

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Wakeup:
    """A flag a background loop sleeps on: ``set()`` wakes it at once, else it wakes when its
    timeout passes (``wait_set``). Like an ``asyncio.Event`` waited on under
    ``asyncio.timeout``, but a wait that times out costs one timer and one future: no
    cancellation of the waiting task and no exception (the metadata log's pump times out 20
    times a second on every node, idle or not). One loop waits on it at a time."""

    __slots__ = ("_flag", "_waiter")

    def __init__(self) -> None:
        self._flag = False
        self._waiter: Optional[asyncio.Future] = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def clear(self) -> None:
        self._flag = False


async def wait_set(event: Wakeup, timeout_s: float) -> bool:
    """Wait until ``event`` is set, at most ``timeout_s`` of loop time; True if it was set.

    A cancellation of the waiting task always propagates, also one landing in the same step
    as the event firing (not ``asyncio.wait_for``: on Python 3.11 that swallows it, and a
    background loop then outlives ``Node.stop``; found by the in-process tests, where
    zero-delay delivery makes such coincidences common)."""
    if event._flag:
        return True
    loop = asyncio.get_running_loop()
    waiter = event._waiter = loop.create_future()
    # (the same schedule as ``asyncio.timeout``: a deadline already reached fires next step)
    when = loop.time() + timeout_s
    timer = (loop.call_soon(_expire, waiter) if when <= loop.time()
             else loop.call_at(when, _expire, waiter))
    try:
        return await waiter
    finally:
        timer.cancel()
        if event._waiter is waiter:
            event._waiter = None


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(False)
