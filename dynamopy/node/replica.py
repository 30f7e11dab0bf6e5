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

from typing import TYPE_CHECKING, Any, Optional

from dynamopy.core.records import Record, newest
from dynamopy.peer import RemoteError

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.node.runtime import Node


STALE_EPOCH = "stale_epoch"


class Replica:
    def __init__(self, node: "Node"):
        self.node = node

    async def put(self, token: int, key: bytes, record: Record,
                  hint_for: Optional[str] = None) -> int:
        """Store durably; return the version now stored for the key (>= record.version)."""
        node = self.node
        if node.hlc is not None:
            node.hlc.observe(record.version)
        if hint_for is not None and hint_for != node.id:
            await node.hints.store(hint_for, token, key, record)
            return record.version
        if await node.committer.write(token, key, record):
            return record.version
        # Not applied: something at least as new is stored (and synced by this batch).
        current = node.store.get(token, key)
        return max(record.version, current.version if current else 0)

    def get(self, token: int, key: bytes, hint_for: Optional[str] = None) -> Optional[Record]:
        """The local record; for a fallback standing in for ``hint_for``, also the hints it
        holds for that member (a sloppy read), newest first."""
        rec = self.node.store.get(token, key)
        if hint_for is not None and hint_for != self.node.id:
            rec = newest((rec, self.node.store.hint_lookup(hint_for, token, key)))
        return rec

    # ---- peer RPC handlers -----------------------------------------------------------
    def check_epoch(self, epoch: int, token: int) -> None:
        """Refuse a request routed by an older ring when that matters: the token is moving in
        a change the coordinator does not know about, or this node no longer replicates it
        (a write must not land on a node that already dropped the range). The coordinator
        catches up with the metadata log and retries."""
        state = self.node.state
        if epoch >= state.epoch or state.ring is None:
            return
        me, n = self.node.id, state.settings.n
        current = state.ring.preference_list_for_token(token, n)
        if state.pending_ring is not None and epoch < state.change_epoch and \
                set(state.pending_ring.preference_list_for_token(token, n)) != set(current):
            # The coordinator does not know the change in progress, so it would not send
            # this moving key to its new owner: make it catch up first.
            raise RemoteError(STALE_EPOCH, str(state.epoch))
        for ring in (state.ring, state.pending_ring):
            if ring is not None and me in ring.members and \
                    me in ring.preference_list_for_token(token, n):
                return
        raise RemoteError(STALE_EPOCH, str(state.epoch))

    async def rpc_put(self, payload: list, peer_id: str) -> Any:
        epoch, token, key, wire, hint_for = payload
        self.node.note_epoch(epoch, peer_id)
        if hint_for is None:
            self.check_epoch(epoch, token)
        return await self.put(token, key, Record.from_wire(wire), hint_for)

    def rpc_get(self, payload: list, peer_id: str) -> Any:
        """``get`` answered inline by the peer server (a local LevelDB read, no task)."""
        epoch, token, key, *rest = payload
        self.node.note_epoch(epoch, peer_id)
        if not rest:
            self.check_epoch(epoch, token)
        rec = self.get(token, key, rest[0] if rest else None)
        return None if rec is None else rec.to_wire()
