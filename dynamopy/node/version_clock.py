"""The node's version source: the pure hybrid clock plus its durable mark.

Rules (the invariant and the arithmetic are in :mod:`dynamopy.core.versions`):

* Every version this node ever issued has ``physical_ms <= mark``, where ``mark`` is the
  value synced to disk under ``hlc/last_ms``. ``next()`` returns a version only once the
  durable mark covers it; the background loop keeps the mark ``LEAD_MS`` ahead of the wall
  clock, so the write path waits for a sync only when versions jump (a newer version
  observed from another node) or the loop stalled.
* ``load()`` (at start, before the node serves anything) reads the mark, waits until the
  wall clock has passed it (at most ``LEAD_MS``, and only after a crash: a clean ``close()``
  stores the exact last physical time), and remembers the floor the clock starts above.
* Restarts never add up: a new mark is ``max(old mark, versions needed, wall + LEAD_MS)``.
* The background loop never leads with a clock the fence distrusts: not while the node is
  fenced (``may_lead`` false), and not for ``STEP_HOLD_S`` after it saw the wall clock jump
  ahead of the monotonic clock (the fence judges once per ping round). Otherwise a clock
  stepped ahead would carry the mark with it, and after a crash the node would continue
  from that mark, stamping versions as far ahead as the step (found in review). Only
  versions actually issued then move the mark (``next``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Callable, Optional

from dynamopy.core.versions import (HybridClock, extended_mark, physical_ms, resume_floor,
                                    resume_wait_ms)
from dynamopy.node.errors import NotReady

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.core.membership import ClusterState
    from dynamopy.node.clock import Clock
    from dynamopy.storage import GroupCommitter, Storage

log = logging.getLogger(__name__)

MARK_KEY = "hlc/last_ms"
LEAD_MS = 1_000        # how far the durable mark runs ahead of the wall clock
REFRESH_S = 0.25       # < LEAD_MS / 2: the write path normally finds the mark ahead
STEP_HOLD_S = 2.0      # no lead for this long after a forward step (the fence judges by then)


class VersionClock:
    """Built from what it uses: this node's id, the current membership state (a getter),
    the store and group committer (the durable mark), the clock, and whether the clock may
    lead the mark (false while the node is fenced for clock skew)."""

    def __init__(self, *, me: str, state: Callable[[], "ClusterState"], store: "Storage",
                 committer: "GroupCommitter", clock: "Clock",
                 may_lead: Callable[[], bool] = lambda: True):
        self.me, self.state, self.store, self.committer, self.clock = (
            me, state, store, committer, clock)
        self.may_lead = may_lead
        self._last_tick: Optional[tuple[float, int]] = None  # (monotonic s, wall ms)
        self._hold_until = 0.0    # monotonic time before which the loop does not lead
        self.hlc: Optional[HybridClock] = None
        self.mark_ms = 0          # the durable mark (what is synced on disk)
        self._floor_ms = 0        # the mark found at start: the clock starts above it
        self._lock = asyncio.Lock()
        self._closed = False

    async def load(self) -> None:
        """Read the durable mark; wait until the wall clock passed it (bounded)."""
        raw = self.store.meta_get(MARK_KEY)
        if raw is None:
            return
        self.mark_ms = self._floor_ms = int(raw)
        wall = self.clock.wall_ms()
        wait_ms = resume_wait_ms(self.mark_ms, wall, LEAD_MS)
        if wait_ms:
            log.info("waiting %d ms for the wall clock to pass the version mark", wait_ms)
            await self.clock.sleep(wait_ms / 1000)
        elif self.mark_ms > wall:
            log.warning("the version mark is %.1f s ahead of the wall clock (did the clock step "
                        "back?): versions continue from the mark", (self.mark_ms - wall) / 1000)

    def start(self, member_number: int, floor_ms: int = 0) -> HybridClock:
        """Create the clock for this member, above everything issued before a restart and
        above ``floor_ms`` (a reused member number's floor, see core.membership)."""
        previous = self.hlc.last_ms if self.hlc is not None else 0
        self.hlc = HybridClock(member_number)
        for ms in (self._floor_ms, floor_ms, previous):
            if ms:
                self.hlc.observe(resume_floor(ms))
        return self.hlc

    async def next(self, after: int = 0, wall_ms: Optional[int] = None) -> int:
        """A new version, above ``after`` and above everything issued or observed, covered
        by the durable mark before it is returned. ``wall_ms``: the wall clock the caller
        checked (``FailureDetector.check_clock``), stamped from instead of a new reading,
        and the mark's lead taken from it too: a step after the check moves neither."""
        hlc = self.hlc
        me = self.state().member(self.me)
        if me is None or me.number != hlc.member_number:
            # Removed (its number may go to another member): never stamp with it again.
            raise NotReady("this node is no longer a member of the cluster")
        if after > 0:
            hlc.observe(after)
        if wall_ms is None:
            wall_ms = self.clock.wall_ms()
        version = hlc.next(wall_ms)
        if physical_ms(version) > self.mark_ms:
            await self._extend(physical_ms(version), wall_ms)
        return version

    async def _extend(self, needed_ms: int, wall_ms: Optional[int] = None) -> None:
        async with self._lock:
            if self._closed:
                raise NotReady("this node is stopping")
            if needed_ms <= self.mark_ms:
                return  # another caller's extension covered it
            new = extended_mark(self.mark_ms, needed_ms,
                                self.clock.wall_ms() if wall_ms is None else wall_ms, LEAD_MS)
            await self.committer.put_meta(MARK_KEY, str(new).encode())
            self.mark_ms = new

    async def run(self) -> None:
        """Keep the durable mark ahead of the wall clock."""
        while True:
            await self.clock.sleep(REFRESH_S)
            if self.hlc is not None and not self._closed and self._may_lead_now():
                await self._extend(self.clock.wall_ms() + LEAD_MS // 2)

    def _may_lead_now(self) -> bool:
        """Whether the background loop may move the mark ahead of the wall clock now."""
        mono, wall = self.clock.monotonic(), self.clock.wall_ms()
        last, self._last_tick = self._last_tick, (mono, wall)
        if last is not None and wall - last[1] - (mono - last[0]) * 1000 > LEAD_MS // 2:
            self._hold_until = mono + STEP_HOLD_S   # the wall clock jumped ahead
        return mono >= self._hold_until and self.may_lead()

    async def close(self) -> None:
        """At a clean stop: store the exact last physical time (nothing issues after this),
        so the next start needs no wait."""
        async with self._lock:
            self._closed = True
            if self.hlc is not None and self.hlc.last_ms:
                exact = max(self.hlc.last_ms, self._floor_ms)
                await self.committer.put_meta(MARK_KEY, str(exact).encode())
                self.mark_ms = exact
