"""Tombstone purge: drop deletes that every replica holds, once past the grace.

The rule is ``core.tombstones`` (older than ``--tombstone-grace-s``, every current replica
holds it or something newer, no other member holds an older copy, no ring change in
progress, no member left the ring within the grace); this module does the I/O:

* A pass (run by anti-entropy after a round, at most every ``min(grace, 1 h)``) walks the
  keys this node is *first replica* of, so each key has one purger. It reads them
  ``SCAN_CHUNK`` records at a time off the event loop (a pass over a large store must not
  stop the node's requests meanwhile), at most ``SCAN_RATE_FACTOR`` times the anti-entropy
  keys/s budget (the count carried across spans: a local read costs far less than a key
  compared with a peer, and anti-entropy exchanges wait while a pass runs); it stops at the
  next chunk once the epoch moved (a ring or settings change). Old tombstones are taken in
  batches of ``PURGE_BATCH``; for each batch it asks every other member of the ring which
  version it holds of each key (``ae_versions``, which the member asked reads off the event
  loop too), keeps the tombstones ``may_purge`` allows (every replica holds the tombstone,
  no other member an older copy it has not handed off yet), asks the other replicas to drop
  them (``ae_purge``), then drops its own copy. Each batch is paced by the anti-entropy keys/s
  budget.
* A replica drops a tombstone only if it still stores that very version
  (``Store.purge``): a newer write that arrived meanwhile is never purged (the simulator's
  BUGGIFY ``purge_pause`` widens that window: a batch waits between the confirmations and
  the drops).
* A replica that misses the ``ae_purge`` keeps its copy; anti-entropy then hands the
  tombstone back to the others (they lack it) and a later pass purges it everywhere. It never
  brings back an older live value: every current replica held the tombstone or newer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Optional

from dynamopy.core.buggify import BUGGIFY_OFF, Buggify
from dynamopy.core.membership import ClusterState
from dynamopy.core.placement import merge_spans
from dynamopy.core.tombstones import may_purge, no_recent_exit, old_enough
from dynamopy.node.clock import Clock
from dynamopy.peer import PeerError

log = logging.getLogger(__name__)

PURGE_BATCH = 1000       # tombstones confirmed and purged per batch of a pass
SCAN_CHUNK = 256         # records a pass reads per step, off the event loop
SCAN_RATE_FACTOR = 10    # a pass reads at most this many times the anti-entropy keys/s
PURGE_EVERY_MAX_S = 3600.0
CALL_TIMEOUT_S = 10.0
PAUSE_MAX_S = 1.0        # BUGGIFY purge_pause: longest wait between confirmations and drops


def old_tombstones(store, start: int, end: int, after: Optional[tuple[int, bytes]],
                   now_ms: int, grace_s: float, limit: int
                   ) -> tuple[list, Optional[tuple[int, bytes]], int]:
    """Read up to ``limit`` records of ``[start, end)`` that come after the cursor ``after``
    (the ``(token, key)`` of the last record read before, or None to start at ``start``).
    Returns the tombstones among them older than the grace, the cursor to go on from (None
    once the span is read to its end) and how many records it read. Blocking: run it off
    the event loop."""
    found: list = []
    read = 0
    begin, after_key = (start, None) if after is None else after
    for token, key, rec in store.scan(begin, end, after_key=after_key):
        if old_enough(rec, now_ms, grace_s):
            found.append((token, key, rec))
        read += 1
        if read >= limit:
            return found, (token, key), read
    return found, None, read


def held_versions(store, keys: list) -> list:
    """The version ``store`` holds of each ``[token, key]`` (``None`` for none). Blocking:
    run it off the event loop."""
    out = []
    for token, key in keys:
        rec = store.get(int(token), bytes(key))
        out.append(None if rec is None else rec.version)
    return out


class TombstonePurge:
    """One node's share of the purge: the keys it is first replica of, and its peer methods."""

    def __init__(self, *, node_id: str, grace_s: float, rate_keys_s: int,
                 call_peer: Callable[..., Awaitable[Any]],
                 get_state: Callable[[], ClusterState], clock: Clock, metrics,
                 store: Callable[[], Any], check: Callable[[Any, str], int],
                 blocking: Callable[..., Awaitable[Any]], buggify: Buggify = BUGGIFY_OFF,
                 clock_ok: Callable[[], bool] = lambda: True):
        self.node_id = node_id
        self.grace_s = float(grace_s)   # the cluster's (AntiEntropy keeps it current)
        self.rate_keys_s = max(1, int(rate_keys_s))
        self.call_peer = call_peer
        self.get_state = get_state
        self.clock = clock
        self.metrics = metrics
        self.store = store          # the local store (set once anti-entropy attached it)
        self.check = check          # the peer-method epoch check
        self.blocking = blocking    # run a blocking store call off the loop
        self.buggify = buggify      # the simulator's knobs (OFF in production)
        # Whether this node's clock is vouched for (``FailureDetector.clock_ok``): "older than
        # the grace" is judged on it, and the hint TTL's margin covers only a clock within
        # the bound of the others'. A node fenced for clock skew purges nothing.
        self.clock_ok = clock_ok
        self.purged = 0             # tombstones this node dropped from its own store

    @property
    def every_s(self) -> float:
        """How often a pass runs: the grace, at most hourly."""
        return min(self.grace_s, PURGE_EVERY_MAX_S)

    def _primary_spans(self, state: ClusterState) -> list[tuple[int, int]]:
        """Token spans whose preference list starts with this node: it runs their purge."""
        ring = state.ring
        # A partition's preference list (any length) starts with the partition's owner.
        return merge_spans([ring.partition_range(p) for p in range(ring.partition_count)
                            if ring.owner_of_partition(p) == self.node_id])

    async def round(self) -> int:
        """Purge the tombstones, among those of keys this node is first replica of, that are
        older than the grace and held by every current replica; return how many of them.
        Works through the candidates in batches, each paced by the keys/s budget."""
        state = self.get_state()
        if state.ring is None or state.change is not None or \
                self.node_id not in state.ring.members or not self.clock_ok():
            return 0
        now_ms = self.clock.wall_ms()
        if not no_recent_exit(state.last_exit_ms, now_ms, self.grace_s):
            return 0   # a member that left may still hand off old copies (core.tombstones)
        purged = 0
        batch: list = []
        unpaced = 0  # records read since the last pause, across spans
        for start, end in self._primary_spans(state):
            cursor: Optional[tuple[int, bytes]] = None
            while True:
                found, cursor, read = await self.blocking(
                    old_tombstones, self.store(), start, end, cursor, now_ms, self.grace_s,
                    SCAN_CHUNK)
                batch += found
                unpaced += read
                while len(batch) >= PURGE_BATCH:
                    purged += await self._batch(state, now_ms, batch[:PURGE_BATCH])
                    batch = batch[PURGE_BATCH:]
                    if self.get_state().epoch != state.epoch:
                        return purged  # the ring moved on: the next pass decides afresh
                if self.get_state().epoch != state.epoch:
                    # A ring or settings change (anti-entropy off, another grace): no batch
                    # of this pass may purge any more, so it stops here rather than walk on.
                    return purged
                if unpaced >= SCAN_CHUNK:
                    await self.clock.sleep(unpaced / (self.rate_keys_s * SCAN_RATE_FACTOR))
                    unpaced = 0
                if cursor is None:
                    break
        if batch:
            purged += await self._batch(state, now_ms, batch)
        if purged:
            log.info("purged %d tombstones older than %.0fs held by every replica", purged,
                     self.grace_s)
        return purged

    async def _batch(self, state: ClusterState, now_ms: int, batch: list) -> int:
        epoch, n = state.epoch, state.settings.n
        # Every other member of the ring is asked about every key of the batch: a replica
        # must hold the tombstone, any other member must hold no older copy (one it kept
        # from before a ring change and has not handed off yet: core.tombstones).
        keys = [[t, k] for t, k, _r in batch]

        async def ask(member: str) -> Optional[list]:
            try:
                held = await self.call_peer(member, "ae_versions", [epoch, keys],
                                            timeout_s=CALL_TIMEOUT_S)
            except (PeerError, asyncio.TimeoutError):
                return None  # no answer: no confirmation of any key
            return held if isinstance(held, list) and len(held) == len(keys) else None
        members = sorted(set(state.ring.members) - {self.node_id})
        answers = dict(zip(members, await asyncio.gather(*map(ask, members))))
        answered = {m: a for m, a in answers.items() if a is not None}
        silent = [m for m in answers if m not in answered]
        if silent:   # (an operator wondering why tombstones pile up finds it here)
            log.info("tombstone purge held back: no answer from %s (every member must "
                     "answer)", ", ".join(silent))
        groups: dict[tuple[str, ...], list] = {}
        for i, (token, key, rec) in enumerate(batch):
            groups.setdefault(tuple(state.ring.preference_list_for_token(token, n)),
                              []).append((i, token, key, rec))
        purged = 0
        for replicas, items in groups.items():
            others = [m for m in answers if m not in replicas]
            doomed = []
            for i, t, k, r in items:
                held = {m: a[i] for m, a in answered.items()}
                held[self.node_id] = r.version
                if may_purge(r, now_ms, self.grace_s, list(replicas), others, held, False,
                             state.last_exit_ms):
                    doomed.append([t, k, r.version])
            if doomed and self.buggify.on:
                # Writes may land between the confirmations and the drops (the drops go
                # over the network anyway): only the confirmed version may go.
                await self.clock.sleep(self.buggify.delay_s("purge_pause", PAUSE_MAX_S))
            if not doomed or self.get_state().epoch != epoch or not self.clock_ok():
                continue   # (fenced meanwhile: the pass's clock reading is not to be trusted)
            for member in replicas:  # the others first; this node's copy last
                if member == self.node_id:
                    continue
                try:
                    await self.call_peer(member, "ae_purge", [epoch, doomed],
                                         timeout_s=CALL_TIMEOUT_S)
                except (PeerError, asyncio.TimeoutError) as e:
                    # It keeps its copy; anti-entropy hands the tombstone back to the others
                    # and a later pass purges it everywhere.
                    log.info("tombstone purge on %s failed: %r", member, e)
            purged += await self._local(doomed)
        await self.clock.sleep(len(batch) / self.rate_keys_s)
        return purged

    async def _local(self, items: list) -> int:
        count = await self.blocking(self.store().purge, items)
        self.metrics.tombstones_purged.inc(count)
        self.purged += count
        return count

    async def rpc_versions(self, payload: list, peer_id: str) -> list:
        """The version this node holds of each ``[token, key]`` (``None`` for none), read
        off the event loop (up to ``PURGE_BATCH`` gets)."""
        epoch, keys = payload
        self.check(epoch, peer_id)
        return await self.blocking(held_versions, self.store(), keys)

    async def rpc_purge(self, payload: list, peer_id: str) -> int:
        """Drop the named tombstones (only those still stored at that very version)."""
        epoch, items = payload
        self.check(epoch, peer_id)
        if self.get_state().change is not None:
            return 0
        return await self._local([(int(t), bytes(k), int(v)) for t, k, v in items])
