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

from typing import TYPE_CHECKING, Any, Callable, Optional

from dynamopy.core import placement
from dynamopy.core.membership import ClusterState
from dynamopy.core.records import Record, newest
from dynamopy.node.errors import (NOT_CAUGHT_UP, STALE_EPOCH,  # noqa: F401  (re-exported)
                                  StaleEpochError)
from dynamopy.node.hints import HintRefused
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
                 replacing: Callable[[], bool] = lambda: False):
        self.me, self.state, self.store, self.committer = me, state, store, committer
        self.clock, self.metrics, self.catchup = clock, metrics, catchup
        self.poke_metalog, self.note_epoch = poke_metalog, note_epoch
        self.observe_version, self.hints = observe_version, hints
        self.replacing = replacing  # came back with an empty disk (node/replacement.py)

    async def put(self, token: int, key: bytes, record: Record,
                  hint_for: Optional[str] = None) -> int:
        """Store durably; return the version now stored for the key (>= record.version)."""
        self.observe_version(record.version)
        if hint_for is not None and hint_for != self.me:
            me = self.state().member(self.me)
            if me is not None and me.state == "leaving":
                # It hands off the hints it holds before it leaves; one stored after that
                # would leave with it.
                raise HintRefused(f"{self.me} is leaving the cluster; it keeps no new hints")
            await self.hints.store(hint_for, token, key, record)
            # Like a home replica, a fallback answers with the newest version it holds for
            # the key (a hint for the same member, or a record of its own): a newer one makes
            # the coordinator re-stamp above it, or hint delivery would later hide this write
            # behind the older-but-larger one.
            held = self.store.hint_lookup(hint_for, token, key)
            own = self.store.get(token, key)
            return max(record.version, held.version if held else 0, own.version if own else 0)
        started = self.clock.monotonic()
        applied = await self.committer.write(token, key, record)
        # The replica's share of a write's visibility delay (the W in the WARS model).
        self.metrics.replica_put_seconds.observe(self.clock.monotonic() - started)
        if applied:
            return record.version
        # Not applied: something at least as new is stored (and synced by this batch).
        current = self.store.get(token, key)
        return max(record.version, current.version if current else 0)

    def get(self, token: int, key: bytes, hint_for: Optional[str] = None) -> Optional[Record]:
        """The local record; for a fallback standing in for ``hint_for``, also the hints it
        holds for that member (a sloppy read), newest first; an expired hint is not read (a
        read repair would spread what a purged tombstone shadows)."""
        rec = self.store.get(token, key)
        if hint_for is not None and hint_for != self.me:
            hinted = self.store.hint_lookup(hint_for, token, key)
            if hinted is not None and not self.hints.expired(hinted):
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

    async def rpc_put(self, payload: list, peer_id: str) -> Any:
        epoch, token, key, wire, hint_for = payload
        self.note_epoch(epoch, peer_id)
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
