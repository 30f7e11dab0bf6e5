"""Moving data with ring changes: gainers pull the ranges they take over, then the change
finishes, then old owners drop what they no longer replicate.

Rules (each protects an acknowledged write):

* While a change is in progress, writes also go to the members the change adds to a key's
  replica set (``core.placement.Replicas.gaining``), so nothing written during the transfer
  is missed; their acks count, and each one raises the acks the write needs by one
  (``core.quorum.pending_required``), so W acked copies sit on the replica set after the
  change whichever way it ends.
* A gainer pulls each gained range from *every* reachable old replica and merges newest-wins:
  a write acknowledged by W of N old replicas may be missing from any single one of them.
  In a merged removal of several dead members it also pulls from every member that
  replicated the range at an earlier stage of the change (``core.placement.pull_sources``).
* Pulls are batched, throttled, and resumable: the cursor of each (range, source) is stored
  durably after each applied batch, so a restarted gainer continues where it stopped. A
  source reads each batch off the event loop (``node/offload.py``): a batch of 5000 records
  held the loop 50-100 ms (``dynamopy.benchlib.loop_stalls``, 1 KiB values).
* The change's driver (the joining or leaving member; for a removal, of one or several
  members, the lowest-numbered live normal member) proposes the ``finish_*`` entry only
  after every gainer reports done.
* Old owners drop a range only after the ``finish_*`` entry switched reads away from them,
  and only after handing every record of it that a current replica lacks to that replica
  (``AntiEntropy.hand_off``): a source skipped while it was down, or a node that crashed
  before its drop, may hold the only copy of a write. Ranges left over by a drop that never
  ran (a crash after a snapshot covered the ``finish_*``) are found at
  start-up (``AntiEntropy.orphans``) and go the same way.
* The ranges a node keeps follow the ring however it learned it (entries, a snapshot from a
  peer, or its own log replayed at start-up): whenever the state moves on, the ranges it
  replicated (in the ring or the pending ring) and no longer does are dropped.
* A ``finish_*`` entry names the change it finishes (its ``change_epoch``); the transfer
  state of a change (cursors and the durable "done" marker) lives under that epoch and is
  cleared when the change ends, finished or abandoned, so it can never vouch for another.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional

import msgpack

from dynamopy.core.buggify import BUGGIFY_OFF, Buggify
from dynamopy.core.membership import ClusterState
from dynamopy.core.metadata_group import leaver_seat_problem
from dynamopy.core.placement import (held_ranges, lost_ranges, merge_spans, pull_sources,
                                     subtract_sorted)
from dynamopy.core.records import Record, record_wire_bytes
from dynamopy.node.errors import MembershipError, StaleEpochError
from dynamopy.node.offload import off_loop
from dynamopy.peer import PeerError

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.node.anti_entropy import AntiEntropy
    from dynamopy.node.clock import Clock
    from dynamopy.node.detector import FailureDetector
    from dynamopy.node.hints import HintManager
    from dynamopy.storage import GroupCommitter, Storage

log = logging.getLogger(__name__)

BATCH_KEYS = 500
BATCH_BYTES = 8 * 1024 * 1024  # a batch never exceeds this, unless it is one record
RETRY_S = 0.5
DEAD_SOURCE_GRACE_S = 5.0
XFER_PREFIX = "xfer/"
MAX_BATCH_KEYS = 5000          # the most records a source puts in one batch, whatever asked


def read_batch(store, ranges: list, idx: int, cur_token: int, cur_key: Optional[bytes],
               limit: int) -> list:
    """One pull batch: ``[items, next cursor]``, the records of ``ranges`` from the cursor
    ``[idx, cur_token, cur_key]`` on (tombstones too), at most ``limit`` of them and
    ``BATCH_BYTES``; the next cursor is ``None`` once every range is exhausted. Blocking:
    run it off the event loop."""
    items: list = []
    size = 0
    last: Optional[list] = None
    while idx < len(ranges):
        start, end = ranges[idx]
        for token, key, rec in store.scan(max(start, cur_token), end, after_key=cur_key):
            # Bounded by count and by bytes: a reply must fit in one peer frame. A record
            # that would take the batch over the budget waits for the next batch (a batch
            # of one record always fits: config.MAX_VALUE_BYTES_LIMIT).
            rec_size = record_wire_bytes(key, rec)
            if items and size + rec_size > BATCH_BYTES:
                return [items, last]
            items.append([token, key, rec.to_wire()])
            size += rec_size
            last = [idx, token, key]
            if len(items) >= limit:
                return [items, last]
        idx += 1
        if idx < len(ranges):
            cur_token, cur_key = ranges[idx][0], None
    # (a batch that reaches its limit returns from inside the scan, with its cursor)
    return [items, None]


@dataclass
class TransferProgress:
    change_epoch: int = 0
    ranges_total: int = 0
    ranges_done: int = 0
    keys_moved: int = 0
    bytes_moved: int = 0
    done: bool = False
    skipped_sources: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"change_epoch": self.change_epoch, "ranges_total": self.ranges_total,
                "ranges_done": self.ranges_done, "keys_moved": self.keys_moved,
                "bytes_moved": self.bytes_moved, "done": self.done,
                "skipped_sources": list(self.skipped_sources)}


class TransferManager:
    """Built from what it uses: this node's id, the current membership state (a getter),
    the store and group committer, the clock, the failure detector, a peer caller, where
    peers' epochs go (``note_epoch``), ``observe_version``, ``propose``, the hint manager
    (a leaver hands off its hints), a spawn function, the transfer rate limit, whether
    the node is stopping, and anti-entropy's hand-off (``hand_off`` before a drop,
    ``orphans`` at start-up)."""

    def __init__(self, *, me: str, state: Callable[[], ClusterState], store: "Storage",
                 committer: "GroupCommitter", clock: "Clock", detector: "FailureDetector",
                 call_peer: Callable[..., Awaitable[Any]], note_epoch: Callable[[int, str], None],
                 observe_version: Callable[[int], None], propose: Callable[[dict], Awaitable[int]],
                 hints: "HintManager", spawn: Callable[[Any], asyncio.Task],
                 max_bytes_s: int, stopping: Callable[[], bool], handoff: "AntiEntropy",
                 buggify: Buggify = BUGGIFY_OFF, inline: bool = False):
        self.id, self.state, self.store, self.committer = me, state, store, committer
        self.clock, self.detector, self.call_peer = clock, detector, call_peer
        self.note_epoch, self.observe_version, self.propose = note_epoch, observe_version, propose
        self.hints, self.spawn, self.max_bytes_s = hints, spawn, max_bytes_s
        self.stopping, self.handoff = stopping, handoff
        self.buggify = buggify
        self.inline = inline  # an in-memory store: batches are read on the loop
        self.progress = TransferProgress()
        self._pull_task: Optional[asyncio.Task] = None
        self._driver_task: Optional[asyncio.Task] = None
        self._seat_problem: Optional[str] = None  # the last reason a leave waited for its seat
        # Until ``resume`` (the end of start-up replay), a state change only notes the
        # ranges it took away.
        self.replaying = True
        self._replay_lost: list[tuple[int, int]] = []

    def resume(self) -> None:
        """After start-up replay: drop what the replayed entries took away (the process may
        have died before it did), clear the transfer state of changes that are over, and
        continue the transfer of a change in progress."""
        self.replaying = False
        lost, self._replay_lost = self._replay_lost, []
        state, me = self.state(), self.id
        if state.ring is not None and state.member(me) is not None:
            lost = lost + self.handoff.orphans(held_ranges(state, me))
        if lost:
            self.spawn(self._drop_lost_ranges(lost))
        self.spawn(self._clear_stale_transfer_state())
        if self.state().change is not None:
            self._start_change(self.state())

    # ---- reacting to the membership state ------------------------------------------
    def on_state_change(self, old: ClusterState, new: ClusterState) -> None:
        """Called after every applied entry and every installed snapshot. While the log is
        replayed at start-up it only notes the ranges lost (``resume`` acts on them)."""
        if self.stopping():
            return
        lost = lost_ranges(old, new, self.id)
        if self.replaying:
            self._replay_lost += lost
            return
        if old.change is not None and (new.change is None
                                       or new.change_epoch != old.change_epoch):
            # The change is over (finished or abandoned): its transfer must stop, and its
            # cursors and "done" marker must go, so nothing can vouch for it any more.
            if new.change is None:
                self._stop_tasks()
            self.spawn(self._clear_stale_transfer_state())
        if new.change is not None and new.change_epoch != self.progress.change_epoch:
            self._start_change(new)
        if lost:
            self.spawn(self._drop_lost_ranges(lost))

    def _stop_tasks(self) -> None:
        for t in (self._pull_task, self._driver_task):
            if t is not None:
                t.cancel()
        self._pull_task = self._driver_task = None

    def _start_change(self, state: ClusterState) -> None:
        self._stop_tasks()
        me = self.id
        mine = [m for m in state.transfers() if me in m.gained]
        self.progress = TransferProgress(change_epoch=state.change_epoch, ranges_total=len(mine))
        self._pull_task = self.spawn(self._pull_all(state.change_epoch, pull_sources(state, me)))
        self._driver_task = self.spawn(self._drive(state.change_epoch))

    # ---- the gainer side ----------------------------------------------------------------
    def _done_key(self, change_epoch: int) -> str:
        return f"{XFER_PREFIX}{change_epoch:012d}/done"

    def is_done(self, change_epoch: int) -> bool:
        """This node holds everything it gains in the change begun at ``change_epoch``: that
        change is not over here, and its durable marker says so or it gives this node
        nothing."""
        if not self._in_progress(change_epoch):
            return False
        if self.store.meta_get(self._done_key(change_epoch)) is not None:
            return True
        state = self.state()
        return (state.change is not None and state.change_epoch == change_epoch
                and self.id not in state.gainers())

    async def _pull_all(self, change_epoch: int,
                        by_source: dict[str, list[tuple[int, int]]]) -> None:
        if self.is_done(change_epoch):
            self.progress.done = True
            self.progress.ranges_done = self.progress.ranges_total
            return
        await asyncio.gather(*(self._pull_from(change_epoch, source, ranges)
                               for source, ranges in sorted(by_source.items())))
        if not self._in_progress(change_epoch):
            return  # abandoned meanwhile: no marker may outlive it
        await self.committer.put_meta(self._done_key(change_epoch), b"1")
        self.progress.ranges_done = self.progress.ranges_total
        self.progress.done = True
        log.info("transfer for change at epoch %d done: %d keys, %d bytes", change_epoch,
                 self.progress.keys_moved, self.progress.bytes_moved)

    async def _pull_from(self, change_epoch: int, source: str,
                         ranges: list[tuple[int, int]]) -> None:
        """Stream every range ``source`` holds for us, batch by batch, from a durable
        cursor [range index, token, key] (so a restart resumes where it stopped)."""
        node = self
        cursor_name = f"{XFER_PREFIX}{change_epoch:012d}/{source}"
        raw = node.store.meta_get(cursor_name)
        cursor = msgpack.unpackb(raw, raw=False) if raw else [0, ranges[0][0], None]
        if cursor is True:
            return
        wire_ranges = [list(r) for r in ranges]
        while not node.stopping():
            if not self._in_progress(change_epoch):
                return  # the change ended (abandoned): stop pulling for it
            if node.state().member(source) is None:
                return  # the source left the membership: nothing more to get from it
            if node.state().is_removing(source) and not node.detector.is_up(source):
                return  # a removed member is dead: the surviving old replicas supply the data
            if node.detector.down_for(source) > DEAD_SOURCE_GRACE_S:
                # Every write acknowledged by W of N old replicas is on a live one too (one
                # replica down), and hints for the dead one wait for it: go on without it.
                log.warning("transfer: skipping %s, down for over %.0fs", source,
                            DEAD_SOURCE_GRACE_S)
                self.progress.skipped_sources.append(source)
                return
            # buggify: a chunk of one record (many more cursor steps and restarts between them)
            limit = 1 if self.buggify.on and self.buggify.fires("transfer_chunk_one") else BATCH_KEYS
            try:
                items, nxt = await node.call_peer(
                    source, "xfer_pull", [change_epoch, wire_ranges, *cursor, limit],
                    timeout_s=10.0)
            except (PeerError, asyncio.TimeoutError) as e:
                log.info("transfer: pulling from %s failed (%r); retrying", source, e)
                await self.clock.sleep(RETRY_S)
                continue
            writes = [(tok, key, Record.from_wire(w)) for tok, key, w in items]
            size = sum(len(k) + len(r.value) for _t, k, r in writes)
            await node.committer.submit(
                writes=writes,
                meta_put={cursor_name: msgpack.packb(True if nxt is None else nxt,
                                                     use_bin_type=True)})
            for _t, _k, r in writes:
                node.observe_version(r.version)
            self.progress.keys_moved += len(writes)
            self.progress.bytes_moved += size
            if nxt is None:
                return
            cursor = nxt
            if size:  # throttle (per source): leave room for live traffic
                await node.clock.sleep(size / node.max_bytes_s)

    async def rpc_pull(self, payload: list, peer_id: str) -> Any:
        """Serve one batch: records of ``ranges`` from the cursor on (tombstones too), and
        the next cursor, ``None`` once every range is exhausted."""
        change_epoch, ranges, idx, cur_token, cur_key, limit = payload
        if self.state().epoch < change_epoch:
            # Until this source knows the change, it may still accept writes for the moving
            # ranges from coordinators that skip the gainer; serve only once it knows.
            self.note_epoch(change_epoch, peer_id)
            raise StaleEpochError(self.state().epoch)
        # A barrier: writes accepted under the old epoch are queued for the group commit
        # (the epoch check and the enqueue happen in one step); once this empty batch is
        # synced they are all on disk, so the scan below sees them.
        await self.committer.submit()
        limit = max(1, min(int(limit), MAX_BATCH_KEYS))
        return await off_loop(self.inline, read_batch, self.store, ranges, idx, cur_token,
                              cur_key, limit)

    def _in_progress(self, change_epoch: int) -> bool:
        """False once this node knows the change begun at ``change_epoch`` is over."""
        state = self.state()
        return state.epoch < change_epoch or (state.change is not None
                                              and state.change_epoch == change_epoch)

    async def rpc_status(self, payload: list, peer_id: str) -> Any:
        (change_epoch,) = payload
        return self.is_done(change_epoch)

    # ---- the driver side ---------------------------------------------------------------
    def _is_driver(self, state: ClusterState) -> bool:
        op, mid = state.change
        if op in ("join", "leave"):
            return mid == self.id
        live = sorted((m.number, m.id) for m in state.members.values()
                      if m.id != mid and m.state == "normal" and self.detector.is_up(m.id))
        return bool(live) and live[0][1] == self.id

    async def _drive(self, change_epoch: int) -> None:
        node = self
        while not node.stopping():
            state = node.state()
            if state.change is None or state.change_epoch != change_epoch:
                return
            if self._is_driver(state):
                op, mid = state.change
                if all(await asyncio.gather(*(self._gainer_done(g, change_epoch)
                                              for g in state.gainers()))) and (
                        op != "leave" or await node.hints.hand_off()
                        and await self._seat_handed_over(state)):
                    # (a leaver first hands off its hints and its seat in the metadata
                    # group: it may be stopped once it left)
                    finish = "finish_join" if op == "join" else "finish_leave"
                    try:
                        await node.propose({"op": finish, "id": mid,
                                            "change_epoch": change_epoch})
                        log.info("%s of %s finished", op, mid)
                    except Exception as e:  # no majority, lost leadership: try again
                        log.info("proposing %s %s failed: %r", finish, mid, e)
            await self.clock.sleep(RETRY_S)

    async def _seat_handed_over(self, state: ClusterState) -> bool:
        """A leaver in the metadata group may finish only once its seat is handed over, or
        nobody can take it and the rest of the group votes (``leaver_seat_problem``)."""
        if self.id not in state.acceptors:
            return True
        others = sorted(m for m in state.members if m != self.id)
        replies = await asyncio.gather(*(self._group_token(m) for m in others))
        problem = leaver_seat_problem(state, self.id, {m: r for m, r in zip(others, replies)
                                                       if r is not None})
        if problem is not None and problem != self._seat_problem:
            log.info("leave not finished yet: %s", problem)
        self._seat_problem = problem
        return problem is None

    async def _group_token(self, member: str) -> Optional[dict]:
        try:
            reply = await self.call_peer(member, "group_token", [], timeout_s=1.0)
        except (PeerError, asyncio.TimeoutError, MembershipError):
            return None
        return reply if isinstance(reply, dict) else None

    async def _gainer_done(self, gainer: str, change_epoch: int) -> bool:
        if gainer == self.id:
            return self.is_done(change_epoch)
        try:
            return bool(await self.call_peer(gainer, "xfer_status", [change_epoch],
                                                  timeout_s=2.0))
        except (PeerError, asyncio.TimeoutError):
            return False

    # ---- cleanup after the switch ------------------------------------------------------
    async def _drop_lost_ranges(self, lost: list[tuple[int, int]]) -> None:
        """Drop records of ``lost`` ranges (this node replicated them and no longer does),
        once the members that replicate them now hold every one of them (the hand-off).

        What to keep is decided from the *current* state and the deletes are queued in the
        same step, in order with the writes: writes queued before are dropped with the range;
        writes of a later change that gives a range back (queued after) survive. The
        hand-off returns in the same step as the state it checked, so what is dropped is
        what it handed off."""
        me = self.id
        lost = merge_spans(lost)
        await self.handoff.hand_off(
            lost, lambda state, spans: subtract_sorted(spans, held_ranges(state, me)))
        doomed = subtract_sorted(lost, held_ranges(self.state(), me))
        dropped = await self.committer.delete_ranges_in_order(doomed) if doomed else 0
        if dropped:
            log.info("dropped %d records of ranges no longer replicated here", dropped)

    async def _clear_stale_transfer_state(self) -> None:
        """Delete the cursors and "done" markers of every change but the one in progress."""
        state = self.state()
        live = f"{XFER_PREFIX}{state.change_epoch:012d}/" if state.change is not None else None
        names = [name for name, _ in self.store.meta_scan(XFER_PREFIX)
                 if live is None or not name.startswith(live)]
        if names:
            await self.committer.submit(meta_delete=names)
