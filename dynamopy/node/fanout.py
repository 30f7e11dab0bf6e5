"""One quorum round's calls to its targets: start them, feed each result to the round, return
once the round is decided (the coordinator's ``_fan_out``).

Rules:

- With ``initial``, only the first ``initial`` targets are called at once; each failure (or
  fruitless answer) starts the next one, and after ``speculate_s`` without a decision all the
  rest start (a speculative retry, as Cassandra's).
- The round returns when ``outcome()`` is decided or ``budget_s`` has passed. Calls still
  running are left to finish in the background (their results keep feeding the round, which
  read repair looks at later); each is bounded by the request timeout, so every task ends.
- A target served locally (``local_sync``) is answered in the same step, without a task.
- ``call(target)`` returns a future (answered by callbacks: no task per call; the data
  path's peer calls and local writes) or a coroutine (run in a task).

Cost: this runs for every client request, so it creates no reference cycles that outlive the
round (closures calling each other through cells did: every request left dozens of objects
for the cyclic garbage collector, whose pauses then showed up as request tail latency), and
it waits with timer handles, not ``asyncio.wait_for`` + ``shield`` (a task and two futures).
Given ``deadlines`` (the coordinator's two ``dynamopy.deadlines.Deadlines``: speculations and
budgets), its timers join those queues instead of each being a loop timer of its own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Optional

from dynamopy.core.quorum import Outcome, Target
from dynamopy.deadlines import Deadlines
from dynamopy.peer import PeerError

log = logging.getLogger(__name__)

_QUIET = (PeerError, asyncio.TimeoutError, asyncio.CancelledError)


class FanOut:
    __slots__ = ("loop", "call", "on_ok", "on_fail", "outcome", "local_id", "local_sync",
                 "fruitless", "background", "queue", "tasks", "decided", "timer", "deadlines")

    def __init__(self, targets: list[Target], call: Callable[[Target], Awaitable], *,
                 on_ok, on_fail, outcome, local_id: str, background: set,
                 local_sync: Optional[Callable[[Target], object]] = None,
                 fruitless: Optional[Callable[[Target, object], bool]] = None,
                 loop: Optional[asyncio.AbstractEventLoop] = None,
                 deadlines: Optional[tuple[Deadlines, Deadlines]] = None) -> None:
        self.loop = loop if loop is not None else asyncio.get_running_loop()
        self.deadlines = deadlines
        self.call, self.on_ok, self.on_fail, self.outcome = call, on_ok, on_fail, outcome
        self.local_id, self.local_sync, self.fruitless = local_id, local_sync, fruitless
        self.background = background
        self.queue = list(reversed(targets))   # pop() from the end: the next target
        self.tasks: list[asyncio.Task] = []
        self.decided = self.loop.create_future()
        self.timer: Optional[asyncio.TimerHandle] = None

    async def run(self, initial: Optional[int], speculate_s: float,
                  budget_s: float) -> list[asyncio.Task]:
        for _ in range(len(self.queue) if initial is None else initial):
            self._launch_next()
        if self.outcome() is not Outcome.PENDING:
            return self.tasks
        # One timer at a time: the speculation's (when there are backups to start), which
        # then sets the budget's for the time left; else the budget's. (Two timers per read
        # were a measurable share of the loop's handles.) The budget's end is absolute: a
        # speculation that fires late (a busy loop) must not push it out.
        now = self.loop.time()
        if self.queue and speculate_s < budget_s:
            self.timer = self._at(0, now + speculate_s, self._speculate, now + budget_s)
        else:
            self.timer = self._at(1, now + budget_s, self._decide)
        try:
            await self.decided
        finally:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
        return self.tasks

    def _at(self, kind: int, when: float, callback, *args):
        """A timer at ``when``: on the coordinator's queue ``kind`` (0: speculations,
        1: budgets) when it has them, else a loop timer of its own."""
        if self.deadlines is None:
            return self.loop.call_at(when, callback, *args)
        return self.deadlines[kind].at(when, callback, *args)

    def _speculate(self, budget_end: float) -> None:
        self.timer = self._at(1, budget_end, self._decide)
        self._launch_rest()

    def _decide(self) -> None:
        self.timer = None
        if not self.decided.done():
            self.decided.set_result(None)

    def _launch_rest(self) -> None:
        if self.outcome() is Outcome.PENDING:
            while self.queue:
                self._launch_next()

    def _launch_next(self) -> None:
        if not self.queue:
            return
        t = self.queue.pop()
        if self.local_sync is not None and t.node == self.local_id:
            try:
                value, exc = self.local_sync(t), None
            except Exception as e:  # noqa: BLE001 - reported like a remote failure
                value, exc = None, e
            self._settle(t, exc, value)
            return
        try:
            task = self.call(t)
        except Exception as e:  # noqa: BLE001 - refused before it started (a closed
            self._settle(t, e, None)  # committer): a failed call, as a task would report
            return
        if not asyncio.isfuture(task):
            task = self.loop.create_task(task)
        task.add_done_callback(_TaskDone(self, t))  # also drops it from ``background``
        self.tasks.append(task)
        self.background.add(task)

    def _settle(self, t: Target, exc, value) -> None:
        if exc is None:
            result = self.on_ok(t, value)
            if (result is Outcome.PENDING and self.fruitless is not None
                    and self.fruitless(t, value)):
                self._launch_next()
        else:
            if not isinstance(exc, _QUIET):
                log.warning("replica call to %s failed: %r", t.node, exc)
            result = self.on_fail(t)
            if result is Outcome.PENDING:
                self._launch_next()
        if result is not Outcome.PENDING and not self.decided.done():
            self.decided.set_result(None)


class _TaskDone:
    """A task's done callback: hands its result to the round (asyncio drops the callback once
    it ran, so the round and its tasks do not keep each other alive)."""

    __slots__ = ("fan", "target")

    def __init__(self, fan: FanOut, target: Target) -> None:
        self.fan, self.target = fan, target

    def __call__(self, task: asyncio.Task) -> None:
        # One callback, not two: each costs an event-loop handle on every call.
        self.fan.background.discard(task)
        if task.cancelled():
            self.fan._settle(self.target, asyncio.CancelledError(), None)
            return
        exc = task.exception()
        self.fan._settle(self.target, exc, None if exc is not None else task.result())
