"""Process-level latency sources, exported as metrics: garbage-collector pauses and event-loop
lag. Both stop every request of the node at once, so they show up as request tail latency.

- ``GcPauses``: a ``gc.callbacks`` hook timing each collection (per generation) and counting
  what it freed. The hook is process-wide: install it once per process (``dynamopy serve``
  runs one node per process) and remove it on stop.
- ``LoopLag``: a timer every ``interval_s``; how late it fires is the time the loop spent on
  other work (a long callback, a GC pause, the GIL held by another thread) before it could
  run a ready callback.

They measure the real process, so they use ``time.perf_counter``, not the node's Clock seam (in the simulator there is no process to measure).
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Optional


class GcPauses:
    def __init__(self, pause_seconds, collected) -> None:
        self._pause = [pause_seconds.labels(str(g)) for g in range(3)]
        self._collected = [collected.labels(str(g)) for g in range(3)]
        self._started = 0.0

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        g = info.get("generation", 2)
        self._pause[g].observe(time.perf_counter() - self._started)
        if info.get("collected"):
            self._collected[g].inc(info["collected"])

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)


class LoopLag:
    def __init__(self, lag_seconds, interval_s: float = 0.1) -> None:
        self._lag = lag_seconds
        self.interval_s = interval_s
        self._handle: Optional[asyncio.TimerHandle] = None
        self._due = 0.0
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._schedule()

    def _schedule(self) -> None:
        # perf_counter, not loop.time(): uvloop's loop time has millisecond resolution.
        self._due = time.perf_counter() + self.interval_s
        self._handle = self._loop.call_later(self.interval_s, self._tick)

    def _tick(self) -> None:
        self._lag.observe(max(0.0, time.perf_counter() - self._due))
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
