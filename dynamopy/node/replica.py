"""The replica side of the data path: what a node does when a coordinator calls it.

Rules:

* A ``put`` is acked only after the record (or the hint) is synced to disk: the group
  committer resolves the call after its batch's ``write_batch(sync=True)``.
* A replica keeps the record with the largest version. Every reply to a ``put`` is the
  version now stored: the write's own version is an ack; a larger one says this replica holds
  something newer, which the coordinator does not count — its clock absorbs the version and
  it re-stamps the write above it (issue 16: a later write never hides behind an earlier
  write stamped by a clock that runs ahead).
* A ``put`` carrying ``hint_for`` is stored as a hint for that member, apart from the data.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional

from dynamopy.core import placement
from dynamopy.core.buggify import BUGGIFY_OFF, Buggify
from dynamopy.core.membership import ClusterState
from dynamopy.core.records import Record, newest
from dynamopy.node.errors import (NOT_CAUGHT_UP, STALE_EPOCH,  # noqa: F401  (re-exported)
                                  StaleEpochError)
from dynamopy.peer import RemoteError

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.node.catchup import CatchUp
    from dynamopy.node.clock import Clock
    from dynamopy.node.hints import HintManager
    from dynamopy.node.metrics import Metrics
    from dynamopy.storage import GroupCommitter, Storage

REPLICA_WAIT_S = 0.5                 # how long an async call waits for this node to catch up


class Replica:
    """This node's replica, built from what it uses: its id, the current membership state
    (a getter), the store and its group committer, the clock, metrics, the catch-up tracker
    (and a poke for the metadata log), the node's version clock (``observe_version``), the
    epoch reports of peers (``note_epoch``), the hint store for writes as a fallback, and
    whether this node is a replacement that lost its data (``replacing``)."""

    def __init__(self, *, me: str, state: Callable[[], ClusterState], store: "Storage",
                 committer: "GroupCommitter", clock: "Clock", metrics: "Metrics",
                 catchup: "CatchUp", poke_metalog: Callable[[], None],
                 note_epoch: Callable[[int, str], None],
                 observe_version: Callable[[int], None], hints: "HintManager",
                 replacing: Callable[[], bool] = lambda: False, buggify: Buggify = BUGGIFY_OFF):
        self.me, self.state, self.store, self.committer = me, state, store, committer
        self.clock, self.metrics, self.catchup = clock, metrics, catchup
        self.poke_metalog, self.note_epoch = poke_metalog, note_epoch
        self.observe_version, self.hints = observe_version, hints
        self.replacing = replacing  # came back with an empty disk (node/replacement.py)
        self.buggify = buggify
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    async def put(self, token: int, key: bytes, record: Record,
                  hint_for: Optional[str] = None) -> int:
        """Store durably; return the version now stored for the key (>= record.version)."""
        if hint_for is not None and hint_for != self.me:
            self.observe_version(record.version)
            # The hint store refuses (HintRefused) and counts a hint this member may not keep:
            # it is leaving, the target is down too long, the hint would expire, or at the cap.
            await self.hints.store(hint_for, token, key, record)
            # Like a home replica, a fallback answers with the newest version it holds for
            # the key (a hint for the same member, or a record of its own): a newer one makes
            # the coordinator re-stamp above it, or hint delivery would later hide this write
            # behind the older-but-larger one.
            held = self.store.hint_lookup(hint_for, token, key)
            own = self.store.get(token, key)
            return max(record.version, held.version if held else 0, own.version if own else 0)
        return await self.put_nowait(token, key, record)

    def put_nowait(self, token: int, key: bytes, record: Record) -> "asyncio.Future[int]":
        """``put`` of a home record (no hint) without a coroutine or task: a future of the
        version now stored, resolved only after the synced batch holding the record (the
        local write of the node's own coordinator, and a peer's ``put``, chain callbacks
        on it). The committer delivers the batch's outcome straight to ``_Stored``, which
        resolves this future (no future of its own). Cancelling it does not cancel the
        write."""
        self.observe_version(record.version)
        loop = self._loop
        if loop is None or loop.is_closed():
            # Once: asyncio.get_running_loop() costs a getpid() system call on Python 3.11.
            loop = self._loop = asyncio.get_running_loop()
        stored = loop.create_future()
        self.committer.write_into(token, key, record,
                                  _Stored(self, stored, token, key, record, self.clock.monotonic()))
        if self.buggify.on:
            return self._late(stored)
        return stored

    def _late(self, stored: "asyncio.Future[int]") -> "asyncio.Future[int]":
        """buggify: the answer is decided (and durable) when ``stored`` resolves; it arrives
        late, as if the reply were slow, so the coordinator may time out first. (Deciding it
        after the wait would open a window production does not have: a range dropped
        meanwhile.)"""
        delay = self.buggify.delay_s("replica_ack_delay", 1.5)
        if not delay:
            return stored
        loop = stored.get_loop()
        late = loop.create_future()

        def forward(done: "asyncio.Future[int]") -> None:
            if late.done():
                return
            if done.cancelled():
                late.cancel()
            elif done.exception() is not None:
                late.set_exception(done.exception())
            else:
                late.set_result(done.result())

        stored.add_done_callback(lambda done: loop.call_later(delay, forward, done))
        return late

    def get(self, token: int, key: bytes, hint_for: Optional[str] = None) -> Optional[Record]:
        """The local record; for a fallback standing in for ``hint_for``, also the hints it
        holds for that member (a sloppy read), newest first; an expired hint is not read (a
        read repair would spread what a purged tombstone shadows), nor any while the clock
        fence does not vouch for this node's clock, which tells an expired one."""
        rec = self.store.get(token, key)
        if hint_for is not None and hint_for != self.me:
            hinted = self.store.hint_lookup(hint_for, token, key)
            if hinted is not None and self.hints.readable(hinted):
                rec = newest((rec, hinted))
        return rec

    async def apply_repairs(self, epoch: int, items: list) -> int:
        """Store repaired records ``(token, key, record)`` (anti-entropy, on either side of
        an exchange); return how many were newer than what is stored.

        The repair path keeps the replica rules: planned at this node's current epoch (checked
        in the same step as the enqueue, so a range dropped by a later ring change drops
        these too), only tokens this node replicates, newest version wins, synced before
        it returns."""
        state = self.state()
        self.require_caught_up()
        if epoch != state.epoch or not all(placement.replicates(state, self.me, token)
                                           for token, _key, _rec in items):
            raise StaleEpochError(state.epoch)
        for _t, _k, rec in items:
            self.observe_version(rec.version)
        applied = await self.committer.submit(writes=items)
        return sum(applied)

    # ---- peer RPC handlers -----------------------------------------------------------
    def require_caught_up(self) -> None:
        """Serve data only once this node has learned the metadata log up to what its peers
        report, the coordinator's epoch included (``node/catchup.py``)."""
        catchup = self.catchup
        if self.replacing():  # its data is gone: not a replica until it rejoins
            raise RemoteError(NOT_CAUGHT_UP, f"{self.me} lost its data and is coming back "
                                             "as a replacement")
        if not catchup.caught_up:
            self.poke_metalog()
            raise RemoteError(NOT_CAUGHT_UP, f"{self.me} is catching up with the "
                                             f"metadata log ({catchup.lag()})")

    async def wait_caught_up(self) -> None:
        """``require_caught_up`` for async calls: a replica a commit or two behind the
        coordinator (it is still applying them) catches up instead of refusing."""
        if not self.catchup.caught_up:
            await self.catchup.wait(REPLICA_WAIT_S)
        self.require_caught_up()

    def check_epoch(self, epoch: int, token: int) -> None:
        """Refuse a request routed by an older ring when that matters
        (``core.placement.check_epoch``: the token is moving in a change the coordinator does
        not know about, or this node no longer replicates it) with ``StaleEpochError``; the
        coordinator catches up with the metadata log and retries. And serve nothing before
        this node has caught up (for a local call ``epoch`` is this node's own plan, so only
        the epochs its peers report can show it is behind)."""
        self.require_caught_up()
        try:
            placement.check_epoch(self.state(), self.me, epoch, token)
        except placement.StaleEpoch as e:
            raise StaleEpochError(e.epoch) from None

    def rpc_put_nowait(self, payload: list, peer_id: str) -> Awaitable[int]:
        """A peer's ``put``: the future of ``put_nowait`` when this node is caught up and the
        record is not a hint (the common case: no task on the peer server); else a coroutine
        that first waits to catch up (the peer server runs it in a task). Raises at once when
        the coordinator's ring is stale for the token."""
        epoch, token, key, wire, hint_for = payload
        self.note_epoch(epoch, peer_id)
        if hint_for is not None or not self.catchup.caught_up or self.replacing():
            return self._put_when_caught_up(epoch, token, key, wire, hint_for)
        self.check_epoch(epoch, token)
        return self.put_nowait(token, key, Record.from_wire(wire))

    async def _put_when_caught_up(self, epoch: int, token: int, key: bytes, wire: list,
                                  hint_for: Optional[str]) -> int:
        await self.wait_caught_up()
        if hint_for is None:
            self.check_epoch(epoch, token)
        return await self.put(token, key, Record.from_wire(wire), hint_for)

    def rpc_get(self, payload: list, peer_id: str) -> Any:
        """``get`` answered inline by the peer server (a local LevelDB read, no task)."""
        epoch, token, key, *rest = payload
        self.note_epoch(epoch, peer_id)
        self.require_caught_up()
        if not rest:
            self.check_epoch(epoch, token)
        rec = self.get(token, key, rest[0] if rest else None)
        return None if rec is None else rec.to_wire()


class _Stored:
    """Where the committer delivers a ``put_nowait``'s outcome (it has the future methods the
    committer calls): the version now stored for the key (the write's own when applied; else
    the newer one already there, synced by this batch) into the put's future, and the
    replica's share of a write's visibility delay (the W in the WARS model)."""

    __slots__ = ("replica", "stored", "token", "key", "record", "started")

    def __init__(self, replica: Replica, stored: asyncio.Future, token: int, key: bytes,
                 record: Record, started: float) -> None:
        self.replica, self.stored, self.token, self.key = replica, stored, token, key
        self.record, self.started = record, started

    def done(self) -> bool:
        return self.stored.done()  # the caller gave up (cancelled): nothing to deliver

    def exception(self) -> Optional[BaseException]:
        stored = self.stored
        return stored.exception() if stored.done() and not stored.cancelled() else None

    def set_exception(self, exc: BaseException) -> None:
        if not self.stored.done():
            self.stored.set_exception(exc)

    def set_result(self, applied: list) -> None:
        """The synced batch's ``[applied]`` for this write."""
        replica, stored = self.replica, self.stored
        replica.metrics.replica_put_seconds.observe(replica.clock.monotonic() - self.started)
        version = self.record.version
        if not applied[0]:
            # Not applied: something at least as new is stored (and synced by this batch).
            try:
                current = replica.store.get(self.token, self.key)
            except Exception as e:  # noqa: BLE001 - fails this caller, like an await would
                self.set_exception(e)
                return
            version = max(version, current.version if current else 0)
        if not stored.done():
            stored.set_result(version)
