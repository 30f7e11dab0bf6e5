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
