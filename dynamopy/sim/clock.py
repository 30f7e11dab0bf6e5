"""A virtual clock: time in integer milliseconds that moves only when events run.

The clock is the simulator's event loop. ``call_at``/``call_later`` schedule a callback;
``run_until`` pops events in (time, insertion order) order, so a run is a pure function
of its seed: no wall clock, no thread, no asyncio.
"""

from __future__ import annotations

import heapq
from typing import Any, Callable


class VirtualClock:
    def __init__(self) -> None:
        self.now_ms = 0
        self._heap: list[tuple[int, int, Callable[..., Any], tuple]] = []
        self._seq = 0  # tie-break: same-time events run in scheduling order (deterministic)

    def call_at(self, t_ms: int, fn: Callable[..., Any], *args: Any) -> None:
        if t_ms < self.now_ms:
            t_ms = self.now_ms
        self._seq += 1
        heapq.heappush(self._heap, (t_ms, self._seq, fn, args))

    def call_later(self, delay_ms: int, fn: Callable[..., Any], *args: Any) -> None:
        self.call_at(self.now_ms + delay_ms, fn, *args)

    def run_until(self, t_ms: int) -> None:
        """Run every event due at or before ``t_ms``, then set the time to ``t_ms``."""
        heap = self._heap
        while heap and heap[0][0] <= t_ms:
            t, _, fn, args = heapq.heappop(heap)
            self.now_ms = t
            fn(*args)
        self.now_ms = max(self.now_ms, t_ms)

    @property
    def pending(self) -> int:
        return len(self._heap)


# ---- virtual time for the asyncio node runtime ------------------------------------------
#
# ``VirtualClock`` above drives pure state machines (the metadata-log simulator) by callbacks.
# The node runtime is asyncio code (tasks, futures, ``wait_for`` timeouts), so for it the
# event loop itself keeps virtual time: ``VirtualTimeLoop`` is a normal selector loop whose
# ``time()`` is a number that jumps to the next timer whenever nothing is ready to run, so
# an idle wait of an hour takes no wall time and a run is a pure function of its inputs
# (no threads: the in-memory disk commits on the loop). ``NodeClock`` is the node's Clock
# seam over that loop, with a per-node wall-clock offset for skew experiments.

import asyncio as _asyncio
import math
import selectors as _selectors

WALL_START_MS = 1_780_000_000_000  # the virtual wall clock starts here (2026)


class _JumpingSelector(_selectors.BaseSelector):
    """The real selector for the loop's own pipe, but a wait with a timeout returns at once
    after moving the loop's virtual time forward by that timeout."""

    def __init__(self) -> None:
        self._real = _selectors.DefaultSelector()
        self.loop: "VirtualTimeLoop | None" = None

    def register(self, fileobj, events, data=None):
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj):
        return self._real.unregister(fileobj)

    def modify(self, fileobj, events, data=None):
        return self._real.modify(fileobj, events, data)

    def get_map(self):
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout=None):
        ready = self._real.select(0)
        if ready:
            return ready
        if timeout is None:  # nothing scheduled at all: only another thread can wake it
            return self._real.select(None)
        assert self.loop is not None
        if not self.loop._ready:  # idle: time jumps to the next timer
            self.loop.advance(timeout)
        return []


class VirtualTimeLoop(_asyncio.SelectorEventLoop):
    """An asyncio loop on virtual time (seconds from 0). Timers fire in (time, scheduling)
    order; real sockets still work but do not move time, so use the in-memory transport."""

    def __init__(self) -> None:
        selector = _JumpingSelector()
        self._virtual_now = 0.0
        super().__init__(selector)
        selector.loop = self
        # Timers run when their time has come, not "within the clock's resolution" early:
        # the time only moves when the loop is idle, so early would be early for ever.
        self._clock_resolution = 0.0

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, and at least onto the next timer: a timer
        whose time differs from now by less than a float step would otherwise never be
        reached (asyncio runs it early, within the clock resolution, and a loop that
        waits for ``clock >= deadline`` then spins at the same instant forever)."""
        target = self._virtual_now + seconds
        if self._scheduled:
            target = max(target, self._scheduled[0].when())
        # Strictly past it: with a clock resolution of 0, a timer runs once time > when.
        self._virtual_now = math.nextafter(max(target, self._virtual_now), math.inf)


def run_virtual(main, *, debug: bool = False):
    """``asyncio.run`` on a fresh ``VirtualTimeLoop``."""
    with _asyncio.Runner(loop_factory=VirtualTimeLoop, debug=debug) as runner:
        return runner.run(main)


class NodeClock:
    """The Clock seam (``dynamopy.node.clock``) on the running loop's time: ``monotonic`` is
    the loop's time, ``wall_ms`` starts at ``WALL_START_MS`` plus ``offset_ms`` (a node whose
    clock is off), ``sleep`` an asyncio sleep. On a ``VirtualTimeLoop`` all three are
    virtual; on a normal loop they are real."""

    def __init__(self, offset_ms: int = 0) -> None:
        self.offset_ms = offset_ms

    def monotonic(self) -> float:
        return _asyncio.get_running_loop().time()

    def wall_ms(self) -> int:
        return WALL_START_MS + int(self.monotonic() * 1000) + self.offset_ms

    async def sleep(self, seconds: float) -> None:
        await _asyncio.sleep(seconds)
