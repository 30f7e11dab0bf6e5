"""Anti-entropy: co-replicas compare hash trees of the ranges they share and exchange only
the keys that differ (Dynamo §4.7, Riak's active anti-entropy, TicTac trees).

Rules:

* The tree (:class:`dynamopy.core.merkle.HashTree`) is kept current on write: the store's
  watcher XORs every change into it on the commit thread, under a lock. It is built once at
  start from a snapshot scan taken at the instant the watcher was installed, so the tree
  always equals the store (XOR is commutative: build and live changes may interleave).
* Every ``--anti-entropy-interval-s`` (jittered by the node's rng to 0.5-1x, so nodes do not
  run in lockstep), the node compares with each live co-replica, in random order, the ranges
  both replicate in the current ring: top-down over ``ae_tree``, one level per round trip,
  then lists the keys of the differing leaves on both sides (``ae_keys``). The newer version
  wins on both sides: it pulls what the peer holds newer or alone (``ae_get``) and pushes
  what it holds newer or alone (``ae_push``). Both sides write through the replica's repair
  path (``Replica.apply_repairs``): same epoch, only tokens the writer replicates, newest
  wins, synced before the call returns.
* An exchange runs only while both nodes are at the same epoch and no ring change is in
  progress (transfers move data during a change): a peer at another epoch answers
  ``stale_epoch`` and the pair waits for the next round.
* Budget: every key listed or repaired counts against ``--anti-entropy-rate`` keys/s; after
  each batch of leaves the loop sleeps ``keys / rate`` seconds. Tree levels cost no keys.
* The interval, the rate and the tombstone grace are cluster settings (``set_config``, the
  bootstrap entry carries the seeds' ``--anti-entropy-interval-s``, ``--anti-entropy-rate``
  and ``--tombstone-grace-s``); the flags count only until this node knows the cluster's.
* Interval 0 turns it off: no exchanges, and a node that never had it on has no tree and
  no watcher and refuses ``ae_tree`` (``anti_entropy_off``); it still answers the key and
  record methods, which hand-offs use. Turned on later, the node builds its tree first.
* Hand-off before a drop (:meth:`AntiEntropy.hand_off`): a node drops the records of a range
  it no longer replicates only once every member that replicates that range now (current
  and pending ring) holds each of those records at the same or a newer version. It finds
  what they lack like an exchange (trees where both have them, else key lists) and pushes
  it; an unreachable new owner makes it wait and retry, never drop. This covers a node that
  was down while a ring change skipped it as a transfer source, and one that crashed
  between a ``finish_*`` entry and its drop (orphaned ranges are found in the tree at
  start, see ``orphans``).
* After a round, at most every ``min(grace, 1 h)``, the tombstone purge
  (``node/tombstone_purge.py``) runs.
* Every store read that grows with the data (listing the keys of spans, reading records to
  send) runs off the event loop (``node/offload.py``), on both sides of an exchange: a
  listing of a hand-off piece reads thousands of records (measured: 40-260 ms on the loop
  at a million keys per node, ``dynamopy.benchlib.loop_stalls``), and the node's requests
  would wait for it. So ``ae_keys``, ``ae_get`` and ``ae_versions`` are served in a task.

Time is read only through the Clock seam, randomness only through the node's rng.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Awaitable, Callable, Optional

import msgpack

from dynamopy.core.buggify import BUGGIFY_OFF, Buggify
from dynamopy.core.membership import ClusterState
from dynamopy.core.placement import held_ranges
from dynamopy.core.merkle import (
    HashTree,
    TreeWalk,
    diff_keys,
    intersect_spans,
    shared_ranges,
)
from dynamopy.core.records import Record, record_wire_bytes
from dynamopy.node.clock import Clock
from dynamopy.node.errors import StaleEpochError, stale_epoch_of
from dynamopy.node.offload import off_loop
from dynamopy.node.tombstone_purge import TombstonePurge
from dynamopy.peer import PeerError, RemoteError

log = logging.getLogger(__name__)

TREE_BATCH = 4096        # tree nodes per ae_tree call
LEAF_BATCH = 64          # leaves per ae_keys call
RECORD_BYTES = 8 * 1024 * 1024   # records per ae_get reply / ae_push call (one peer frame)
CALL_TIMEOUT_S = 10.0
OFF = "anti_entropy_off"
OFF_POLL_S = 5.0         # while off, how often the loop looks whether it was turned on
HANDOFF_RETRY_S = 1.0
SPAN_PIECE = 1 << 22     # a hand-off without trees lists keys in pieces of this many tokens

CallPeer = Callable[..., Awaitable[Any]]
ApplyRepairs = Callable[[int, list], Awaitable[int]]


@dataclass
class PeerExchange:
    """What the last exchange with one peer did (shown in ``GET /node``)."""
    last_ms: int = 0
    outcome: str = ""
    keys_compared: int = 0
    keys_pulled: int = 0
    keys_pushed: int = 0
    bytes: int = 0

    def to_dict(self) -> dict:
        return {"last_ms": self.last_ms, "outcome": self.outcome,
                "keys_compared": self.keys_compared, "keys_pulled": self.keys_pulled,
                "keys_pushed": self.keys_pushed, "bytes": self.bytes}


@dataclass
class Totals:
    exchanges: int = 0
    keys_compared: int = 0
    keys_repaired: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    last_exchange_ms: int = 0
    peers: dict = field(default_factory=dict)


def _size(obj: Any) -> int:
    return len(msgpack.packb(obj, use_bin_type=True))


def key_versions(store, spans) -> list[list]:
    """``[token, key, version]`` of every record in the token ``spans``, in order.
    Blocking: run it off the event loop."""
    return [[t, k, r.version] for s, e in spans for t, k, r in store.scan(int(s), int(e))]


def compare(store, spans, theirs: list) -> tuple[int, list, list]:
    """List this store's keys in ``spans`` and compare them with a peer's listing of the same
    spans (``theirs``, ``[token, key, version]``): ``(keys listed here, pull, push)`` as
    ``diff_keys`` decides. Blocking (a listing of thousands of keys, and its comparison):
    run it off the event loop."""
    mine = key_versions(store, spans)
    pull, push = diff_keys(mine, [(int(t), bytes(k), int(v)) for t, k, v in theirs])
    return len(mine), pull, push


def read_records(store, keys: list, start: int, budget: int) -> tuple[list, int]:
    """``[token, key, wire record or None]`` of ``keys[start:]``, in order, as many as fit in
    ``budget`` bytes (at least one; a key not held counts 64 bytes), and the index of the
    first key not read. Blocking: run it off the event loop."""
    out, size = [], 0
    for i in range(start, len(keys)):
        token, key = keys[i]
        rec = store.get(int(token), bytes(key))
        rec_size = 64 if rec is None else record_wire_bytes(key, rec)
        if out and size + rec_size > budget:
            return out, i
        out.append([token, key, None if rec is None else rec.to_wire()])
        size += rec_size
    return out, len(keys)


class AntiEntropy:
    """One node's anti-entropy: its tree, its exchange loop and its peer methods."""

    def __init__(self, *, node_id: str, interval_s: float, rate_keys_s: int,
                 call_peer: CallPeer, get_state: Callable[[], ClusterState],
                 is_up: Callable[[str], bool], apply_repairs: ApplyRepairs,
                 note_epoch: Callable[[int, str], None], clock: Clock, rng, metrics,
                 tombstone_grace_s: float = 10 * 86400.0, buggify: Buggify = BUGGIFY_OFF,
                 clock_ok: Callable[[], bool] = lambda: True):
        self.node_id = node_id
        self.buggify = buggify
        self.interval_s = float(interval_s)
        self.rate_keys_s = max(1, int(rate_keys_s))
        self.call_peer = call_peer
        self.get_state = get_state
        self.is_up = is_up
        self.apply_repairs = apply_repairs
        self.note_epoch = note_epoch
        self.clock = clock
        self.rng = rng
        self.metrics = metrics
        self.tree = HashTree()
        self._shared_memo: dict[str, tuple] = {}  # peer -> (ring, n, ranges, cover)
        self._lock = threading.Lock()
        self.store = None
        self.inline = False
        self.built = False
        self.build_s: Optional[float] = None
        self.totals = Totals()
        self.purge = TombstonePurge(
            node_id=node_id, grace_s=tombstone_grace_s, rate_keys_s=self.rate_keys_s,
            call_peer=call_peer, get_state=get_state, clock=clock, metrics=metrics,
            store=lambda: self.store, check=self._check, blocking=self._blocking,
            buggify=buggify, clock_ok=clock_ok)
        # When the last purge pass started (monotonic): the next one is due ``every_s`` after
        # it, with ``every_s`` read when it is due, so a grace shortened through the log
        # takes effect at once, not after the hour the old grace had scheduled.
        self._last_purge: Optional[float] = None
        self._watching = False

    @property
    def enabled(self) -> bool:
        return self.interval_s > 0

    def _adopt(self, state: ClusterState) -> None:
        """Take the cluster's anti-entropy and tombstone settings (once it has any)."""
        if not state.bootstrapped:
            return
        s = state.settings
        if (s.anti_entropy_interval_s, s.anti_entropy_rate) != (self.interval_s,
                                                                self.rate_keys_s):
            log.info("anti-entropy: every %ss, at most %d keys/s (cluster settings)",
                     s.anti_entropy_interval_s, s.anti_entropy_rate)
        self.interval_s = float(s.anti_entropy_interval_s)
        self.rate_keys_s = max(1, int(s.anti_entropy_rate))
        self.purge.grace_s = float(s.tombstone_grace_s)
        self.purge.rate_keys_s = self.rate_keys_s

    # ---- the tree ----------------------------------------------------------------------
    async def attach(self, store, *, inline: bool = False) -> None:
        """Install the store watcher and build the tree from the snapshot scan (off the
        event loop, or on it for an ``inline`` in-memory store, deterministically).
        Exchanges start, and ``ae_tree`` answers, once it is built."""
        self.store = store
        self.inline = inline
        if self.enabled:   # the cluster's setting once the log was replayed, else the flag
            await self._build_tree()

    async def _build_tree(self) -> None:
        started = self.clock.monotonic()
        self._watching = True
        snapshot = self.store.watch(self._on_change)
        await self._blocking(self._build, snapshot)
        self.build_s = self.clock.monotonic() - started
        self.metrics.ae_tree_build_seconds.set(self.build_s)
        self.built = True
        log.info("anti-entropy tree built: %d records in %.2fs", self.tree.records, self.build_s)

    def _build(self, snapshot) -> None:
        chunk: list = []
        for token, key, rec in snapshot:
            chunk.append((token, key, rec))
            if len(chunk) >= 1000:
                self._add_all(chunk)
                chunk = []
        self._add_all(chunk)

    def _add_all(self, records: list) -> None:
        with self._lock:
            for token, key, rec in records:
                self.tree.update(token, key, None, (rec.version, rec.deleted))

    def _on_change(self, changes: list) -> None:
        """The store's watcher (commit thread, store lock held): XOR each change in. (The
        write path's share of anti-entropy: two hashes and one tree update per change, in
        one call per batch.)"""
        with self._lock:
            self.tree.apply_changes(changes)

    def on_state_change(self, old: ClusterState, new: ClusterState) -> None:
        """A membership change: forget the exchange records of members that are gone; a
        settings change: take it."""
        self._adopt(new)
        for peer in [p for p in self.totals.peers if new.member(p) is None]:
            del self.totals.peers[peer]
        if new.ring is not old.ring:  # what a pair shares is remembered for one ring only
            self._shared_memo.clear()

    def detach(self) -> None:
        if self.store is not None and self._watching:
            self._watching = False
            self.store.unwatch()

    # ---- the loop ----------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            if not self.enabled:   # off: the cluster may turn it on
                await self.clock.sleep(OFF_POLL_S)
                continue
            if not self._watching and self.store is not None:
                await self._build_tree()
            await self.clock.sleep(self.interval_s * self.rng.uniform(0.5, 1.0))
            if self.built and self.enabled:
                await self.round()
                now = self.clock.monotonic()
                if self._last_purge is None or now >= self._last_purge + self.purge.every_s:
                    self._last_purge = now
                    try:
                        await self.purge.round()
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # a local failure: the next pass tries again
                        log.exception("tombstone purge pass failed")

    def co_replicas(self, state: ClusterState) -> list[str]:
        if state.ring is None or self.node_id not in state.ring.members:
            return []
        return [m for m in state.ring.members
                if m != self.node_id and self._shared(state, m)[0]]

    async def round(self) -> None:
        """One exchange with each live co-replica, in random order."""
        state = self.get_state()
        if state.change is not None:
            return
        peers = [p for p in self.co_replicas(state) if self.is_up(p)]
        self.rng.shuffle(peers)
        for peer in peers:
            try:
                await self.exchange(peer)
            except asyncio.CancelledError:
                raise
            except Exception:  # a local failure (store closing, a bug): next round again
                log.exception("anti-entropy with %s failed", peer)

    async def exchange(self, peer: str) -> PeerExchange:
        """Compare and repair every range shared with ``peer``; never raises for a peer's
        failure (the outcome is recorded)."""
        stats = PeerExchange(last_ms=self.clock.wall_ms())
        try:
            await self._exchange(peer, stats)
            stats.outcome = "ok"
        except RemoteError as e:
            stats.outcome = e.code
            self._note_if_ahead(e, peer)  # catch up before the next round
        except (PeerError, asyncio.TimeoutError) as e:
            stats.outcome = "unreachable"
            log.info("anti-entropy with %s failed: %r", peer, e)
        t = self.totals
        t.peers[peer] = stats
        self.metrics.ae_exchanges.labels(stats.outcome).inc()
        if stats.outcome == "ok":
            t.exchanges += 1
            t.last_exchange_ms = stats.last_ms
        repaired = stats.keys_pulled + stats.keys_pushed
        if repaired:
            log.info("anti-entropy with %s: %d keys compared, %d pulled, %d pushed", peer,
                     stats.keys_compared, stats.keys_pulled, stats.keys_pushed)
        return stats

    async def _call(self, peer: str, method: str, payload: list, stats: PeerExchange) -> Any:
        sent = _size(payload)
        reply = await self.call_peer(peer, method, payload, timeout_s=CALL_TIMEOUT_S)
        got = _size(reply)
        stats.bytes += sent + got
        self.totals.bytes_sent += sent
        self.totals.bytes_received += got
        self.metrics.ae_bytes.labels("sent").inc(sent)
        self.metrics.ae_bytes.labels("received").inc(got)
        return reply

    async def _exchange(self, peer: str, stats: PeerExchange) -> None:
        state = self.get_state()
        if state.ring is None or state.change is not None:
            return
        epoch = state.epoch
        walk = TreeWalk(self.tree, list(self._shared(state, peer)[1]))
        await self._walk(peer, epoch, walk, stats)
        for i in range(0, len(walk.leaves), LEAF_BATCH):
            if self.get_state().epoch != epoch:
                return  # the ring moved on: the next round compares under the new one
            spans = [self.tree.node_range(*leaf) for leaf in walk.leaves[i:i + LEAF_BATCH]]
            theirs = await self._call(peer, "ae_keys", [epoch, spans], stats)
            mine, pull, push = await self._blocking(compare, self.store, spans, theirs)
            listed = mine + len(theirs)
            stats.keys_compared += listed
            self.totals.keys_compared += listed
            self.metrics.ae_keys_compared.inc(listed)
            await self._pull(peer, epoch, pull, stats)
            if self.buggify.on and self.buggify.fires("ae_interrupt"):
                # as if the peer vanished between the pull and the push
                raise asyncio.TimeoutError("buggify: anti-entropy exchange interrupted")
            await self._push(peer, epoch, push, stats)
            budget = listed + len(pull) + len(push)
            await self.clock.sleep(budget / self.rate_keys_s)

    async def _walk(self, peer: str, epoch: int, walk: TreeWalk, stats: PeerExchange) -> None:
        """Run ``walk`` against ``peer``'s tree down to its differing leaves."""
        while (ask := walk.request()):
            remote: list[int] = []
            for i in range(0, len(ask), TREE_BATCH):
                flat = list(chain.from_iterable(ask[i:i + TREE_BATCH]))
                remote += await self._call(peer, "ae_tree", [epoch, flat], stats)
            walk.receive(remote)

    def _shared(self, state: ClusterState, peer: str) -> tuple[list, list]:
        """``(ranges, cover)``: the token ranges this node and ``peer`` both replicate under
        ``state``'s ring and the tree nodes that tile them. Remembered per peer for as long
        as the ring object and N stay the same (a ring is immutable; the cover of a few
        hundred ranges is thousands of nodes, and every round asks again)."""
        ring, n = state.ring, state.settings.n
        got = self._shared_memo.get(peer)
        if got is None or got[0] is not ring or got[1] != n:
            ranges = shared_ranges(ring, n, self.node_id, peer)
            got = self._shared_memo[peer] = (ring, n, ranges, self.tree.cover_ranges(ranges))
        return got[2], got[3]

    async def _pull(self, peer: str, epoch: int, keys: list, stats: PeerExchange) -> None:
        while keys:
            got = await self._call(peer, "ae_get", [epoch, [list(k) for k in keys]], stats)
            if not got:
                return
            items = [(int(t), bytes(k), Record.from_wire(w)) for t, k, w in got
                     if w is not None]
            keys = keys[len(got):]
            if items:
                applied = await self.apply_repairs(epoch, items)
                stats.keys_pulled += applied
                self.totals.keys_repaired += applied
                self.metrics.ae_keys_repaired.labels("pulled").inc(applied)

    async def _push(self, peer: str, epoch: int, keys: list, stats: PeerExchange) -> None:
        """Send the records of ``keys`` this node holds, one peer frame at a time."""
        start = 0
        while start < len(keys):
            batch, start = await self._blocking(read_records, self.store, keys, start,
                                                RECORD_BYTES)
            batch = [item for item in batch if item[2] is not None]
            if batch:
                await self._push_batch(peer, epoch, batch, stats)

    async def _push_batch(self, peer: str, epoch: int, batch: list, stats: PeerExchange) -> None:
        applied = int(await self._call(peer, "ae_push", [epoch, batch], stats))
        stats.keys_pushed += applied
        self.totals.keys_repaired += applied
        self.metrics.ae_keys_repaired.labels("pushed").inc(applied)

    # ---- hand-off before a drop -----------------------------------------------------------
    def orphans(self, held: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Spans outside ``held`` (sorted, merged) where this node still holds records: the
        leftovers of a drop that never ran (a crash, or a ring learned by snapshot). Read
        from the tree (a non-empty span has a non-zero hash, but for a 2**-64 chance), or,
        with anti-entropy off, by one store seek per span outside ``held``."""
        out: list[tuple[int, int]] = []
        pos = 0
        for start, end in held + [(1 << 32, 1 << 32)]:
            if pos < start:
                if self.built:
                    out += [self.tree.node_range(*node) for node in self.tree.cover(pos, start)
                            if self.tree.hash_at(*node)]
                elif self.store is not None and next(self.store.scan(pos, start), None):
                    out.append((pos, start))
            pos = max(pos, end)
        return out

    async def hand_off(self, spans: list[tuple[int, int]],
                       doomed_in: Callable[[ClusterState, list], list]) -> None:
        """Return once every record this node holds in the parts of ``spans`` it no longer
        replicates (``doomed_in(state, spans)``) is held, at the same or a newer version, by
        every member that replicates it in the current state (ring and pending ring).
        Retries while a new owner is unreachable or the state moves on; the caller then
        drops what is doomed under the state it reads in the same step."""
        attempt = 0
        while True:
            state = self.get_state()
            if state.ring is None:
                # No ring (a one-node cluster bootstrapped from a wiped directory dropped
                # its log to come back as a replacement: MetaLog.forget): nobody to hand
                # the records to, and doomed_in would doom all of them. Keep them until
                # the node learns the ring of the cluster it rejoins, then hand off.
                await self.clock.sleep(HANDOFF_RETRY_S)
                continue
            doomed = doomed_in(state, spans)
            if not doomed:
                return
            try:
                await self._hand_off_once(state, doomed)
                if self.get_state().epoch == state.epoch:
                    return
            except (PeerError, asyncio.TimeoutError) as e:  # RemoteError included
                if attempt % 30 == 0:
                    log.warning("hand-off before dropping ranges no longer replicated here: "
                                "%r; the records are kept and it retries", e)
            attempt += 1
            await self.clock.sleep(HANDOFF_RETRY_S)

    async def _hand_off_once(self, state: ClusterState, doomed: list) -> None:
        members = set(state.ring.members)
        if state.pending_ring is not None:
            members |= set(state.pending_ring.members)
        for member in sorted(members - {self.node_id}):
            spans = intersect_spans(doomed, held_ranges(state, member))
            if spans:
                stats = PeerExchange(last_ms=self.clock.wall_ms())
                try:
                    await self._push_missing(member, state.epoch, spans, stats)
                except RemoteError as e:
                    self._note_if_ahead(e, member)  # catch up before the retry
                    raise
                if stats.keys_pushed:
                    log.info("handed %d records of dropped ranges to %s", stats.keys_pushed,
                             member)

    def _note_if_ahead(self, e: RemoteError, peer: str) -> None:
        """A ``stale_epoch`` refusal naming a newer epoch than this node's: the peer is
        ahead, so ask the metadata log to catch up now rather than at the next heartbeat."""
        newer = stale_epoch_of(e)
        if newer is not None and newer > self.get_state().epoch:
            self.note_epoch(newer, peer)

    async def _push_missing(self, peer: str, epoch: int, spans: list, stats: PeerExchange) -> None:
        """Push to ``peer`` what it lacks in ``spans`` (never pulls: this node is giving the
        ranges up). Narrowed by a tree walk when both sides have trees."""
        pieces: Optional[list[tuple[int, int]]] = None
        if self.built:
            walk = TreeWalk(self.tree, self.tree.cover_ranges(spans))
            try:
                await self._walk(peer, epoch, walk, stats)
                pieces = [self.tree.node_range(*leaf) for leaf in walk.leaves]
            except RemoteError as e:
                if e.code != OFF:
                    raise
        if pieces is None:  # no trees: list every key of the spans, piece by piece
            pieces = [(s, min(s + SPAN_PIECE, end)) for start, end in spans
                      for s in range(start, end, SPAN_PIECE)]
        for i in range(0, len(pieces), LEAF_BATCH if self.built else 4):
            chunk = pieces[i:i + (LEAF_BATCH if self.built else 4)]
            theirs = await self._call(peer, "ae_keys", [epoch, chunk], stats)
            _mine, _pull, push = await self._blocking(compare, self.store, chunk, theirs)
            await self._push(peer, epoch, push, stats)

    async def _blocking(self, fn, *args):
        """Run a blocking store operation off the event loop (on it for an inline store);
        cancelled, it returns only once the thread is done (``offload.off_loop``)."""
        return await off_loop(self.inline, fn, *args)

    # ---- peer methods ------------------------------------------------------------------
    def _check(self, epoch: Any, peer_id: str, *, tree: bool = False) -> int:
        """Serve only a peer at this node's epoch (both then agree on who replicates what);
        ``ae_tree`` needs the tree, the other methods only the store (hand-offs use them
        with anti-entropy off too)."""
        if self.store is None or (tree and not self.built):
            raise RemoteError(OFF, f"anti-entropy is {'off' if not self.enabled else 'starting'}"
                                   f" on {self.node_id}")
        state = self.get_state()
        if not isinstance(epoch, int) or epoch != state.epoch:
            if isinstance(epoch, int):
                self.note_epoch(epoch, peer_id)
            raise StaleEpochError(state.epoch)
        return epoch

    def rpc_tree(self, payload: list, peer_id: str) -> list[int]:
        """Hashes of the requested ``[level, index, level, index, ...]`` nodes."""
        epoch, flat = payload
        self._check(epoch, peer_id, tree=True)
        try:
            return self.tree.hashes_flat(flat)
        except ValueError as e:
            raise RemoteError("bad_request", str(e)) from None

    async def rpc_keys(self, payload: list, peer_id: str) -> list:
        """``[token, key, version]`` of every record in the requested token spans (read off
        the event loop)."""
        epoch, spans = payload
        self._check(epoch, peer_id)
        return await self._blocking(key_versions, self.store, spans)

    async def rpc_get(self, payload: list, peer_id: str) -> list:
        """Records of the requested keys, in order, as many as fit in one reply
        (``None`` for a key not held; read off the event loop)."""
        epoch, keys = payload
        self._check(epoch, peer_id)
        out, _next = await self._blocking(read_records, self.store, keys, 0, RECORD_BYTES)
        return out

    async def rpc_push(self, payload: list, peer_id: str) -> int:
        """Store pushed records through the replica's repair path; how many were newer."""
        epoch, items = payload
        self._check(epoch, peer_id)
        return await self.apply_repairs(
            epoch, [(int(t), bytes(k), Record.from_wire(w)) for t, k, w in items])

    # ---- views -------------------------------------------------------------------------
    def view(self) -> dict:
        t = self.totals
        return {"enabled": self.enabled, "interval_s": self.interval_s,
                "rate_keys_s": self.rate_keys_s, "tree_built": self.built,
                "tree_records": self.tree.records if self.built else None,
                "tree_root": f"{self.tree.root():016x}" if self.built else None,
                "tree_build_s": self.build_s, "exchanges": t.exchanges,
                "last_exchange_ms": t.last_exchange_ms or None,
                "keys_compared": t.keys_compared, "keys_repaired": t.keys_repaired,
                "bytes_sent": t.bytes_sent, "bytes_received": t.bytes_received,
                "tombstone_grace_s": self.purge.grace_s,
                "tombstones_purged": self.purge.purged,
                "peers": {p: s.to_dict() for p, s in sorted(t.peers.items())}}
