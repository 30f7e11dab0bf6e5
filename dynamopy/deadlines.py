"""``Deadlines``: many callbacks at deadlines that come in order, on one event-loop timer.

The coordinator's rounds each need a timer (a read's speculation, a round's budget), and a
peer connection one per call, mostly all of the same length, so their deadlines arrive in
the order they were set. A timer handle per
round made and cancelled costs ~2-3 µs on uvloop; appending to a queue costs a fraction of
that. Rules:

- ``at(when, callback, *args)`` runs ``callback(*args)`` at loop time ``when`` unless the
  returned handle's ``cancel()`` ran first. A deadline not before the last one queued joins
  the queue; an earlier one (a different length) gets a loop timer of its own, so no
  callback ever runs later than its deadline because of the queue.
- The queue's one timer is always armed at or before the first deadline still queued, and
  re-armed for the next one when it fires: each callback runs when its deadline passes (as
  a loop timer would; no sweep period is added).
- ``cancel()`` drops the callback and its arguments at once (nothing it refers to is kept
  alive until its deadline) and the cancelled entries at the head of the queue. A cancelled
  entry behind one still pending stays (empty) until it reaches the head: the queue holds at
  most the entries queued within the longest pending deadline (a call's timeout: seconds).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Callable, Optional

log = logging.getLogger(__name__)


class Deadline:
    """One queued callback; ``cancel()`` it like a timer handle."""

    __slots__ = ("queue", "when", "callback", "args")

    def __init__(self, queue: "Deadlines", when: float, callback: Callable[..., Any],
                 args: tuple) -> None:
        self.queue, self.when, self.callback, self.args = queue, when, callback, args

    def cancel(self) -> None:
        if self.callback is None:
            return
        self.callback = self.args = None  # type: ignore[assignment]
        queue = self.queue._queue  # drop the cancelled head (``Deadlines._trim``, inline)
        while queue and queue[0].callback is None:
            queue.popleft()


class Deadlines:
    """Callbacks at in-order deadlines on one timer (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._queue: collections.deque[Deadline] = collections.deque()
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_at = 0.0

    def at(self, when: float, callback: Callable[..., Any], *args: Any):
        """``callback(*args)`` at loop time ``when``; returns a handle with ``cancel()``."""
        queue = self._queue
        if queue and when < queue[-1].when:
            return self.loop.call_at(when, callback, *args)  # out of order: its own timer
        entry = Deadline(self, when, callback, args)
        queue.append(entry)
        if self._timer is None or when < self._timer_at:
            self._arm(when)  # no timer, or (the queue had emptied) one for a later time
        return entry

    def __len__(self) -> int:
        return len(self._queue)

    def clear(self) -> None:
        """Drop every queued callback (none of them runs) and stop the timer."""
        for entry in self._queue:
            entry.callback = entry.args = None  # type: ignore[assignment]
        self._queue.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        queue = self._queue
        now = self.loop.time()
        while queue:
            entry = queue[0]
            callback = entry.callback
            if callback is not None:
                if entry.when > now:
                    self._arm(entry.when)
                    return
                args = entry.args
                entry.callback = entry.args = None  # type: ignore[assignment]
                queue.popleft()
                try:
                    callback(*args)
                except Exception:  # one callback's bug must not stop the others
                    log.exception("deadline callback %r failed", callback)
                continue
            queue.popleft()
