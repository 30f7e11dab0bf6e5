"""How the system simulator sees inside real nodes without changing them: the history's
node events (``Stamped``, ``Synced``, ``Acked``) recorded from the seams and from thin
wrappers around two methods of each node built, never from a flag in production code.

* ``RecordingDisk``: the in-memory disk (``sim/storage.py``) whose every sync reports the
  (key, version) of each data record and hint it makes durable, earlier unsynced writes
  included (a synced LevelDB batch carries every earlier write to disk), decoded with the
  store's own encoding: the ``Synced`` events.
* ``instrument(node, ...)``: wraps the version clock's ``next`` (every version a coordinator
  issues for the client operation in ``CURRENT_OP``: a ``Stamped``, at issue time), ``node.replica.put`` /
  ``put_nowait`` (an answer equal to the request's own version is an ack: an ``Acked``, with
  ``hint_for`` when the node stood in as a fallback) and ``node.hints.store`` (counted: the
  run's ``hints_stored``). All are instance attributes looked up at call time, so
  the coordinator's local writes and the peer handlers go through the wrappers alike.

The metadata log is watched too (``instrument`` wraps two methods of ``node.metalog``): every
entry a node applies, by slot (``Recorder.chosen``: one value per slot across all nodes and
restarts), and every acceptor vote (a Ready whose acceptor update promises or accepts) of a
node whose disk was wiped, with the re-admission that lets it vote again
(``Recorder.acceptor_log``); and the group changes the metadata leader's keeper has
proposed and not yet seen commit (``Recorder.set_group_in_flight``), so the run can tell
when a fault hits the leader or a group member in the middle of one.

``CURRENT_OP`` is a context variable the run loop sets in each client operation's task;
asyncio tasks copy the context they were created in, so the coordinator's fan-out sees it.
Acks find their operation through the version (versions are unique per write).
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Callable, Optional

from dynamopy.storage.layout import DATA_PREFIX, HINT_PREFIX, unpack_hint, unpack_record

from .history import History
from .storage import MemoryDisk, MemoryLevelDB

# (op id, key, coordinator id) of the client operation a task works for, or None.
CURRENT_OP: contextvars.ContextVar[Optional[tuple[int, str, str]]] = contextvars.ContextVar(
    "dynamopy_sim_current_op", default=None)


def _now_ms() -> int:
    return int(asyncio.get_running_loop().time() * 1000)


def durable_items(ops) -> list[tuple[str, int]]:
    """The (key, version) of every data record and hint among the (db key, value) ``ops``."""
    out = []
    for dbkey, value in ops:
        if value is None:
            continue
        if dbkey.startswith(DATA_PREFIX):
            key = dbkey[5:]
            out.append((key.decode("utf-8", "replace"), unpack_record(value).version))
        elif dbkey.startswith(HINT_PREFIX):
            _token, key, rec = unpack_hint(value)
            out.append((key.decode("utf-8", "replace"), rec.version))
    return out


class _RecordingLevelDB(MemoryLevelDB):
    def _flush(self) -> None:
        items = durable_items(self.unsynced)
        super()._flush()
        if items:
            self._disk.on_sync(items)


class RecordingDisk(MemoryDisk):
    """A ``MemoryDisk`` that calls ``on_sync(items)`` at every sync holding data or hints."""

    def __init__(self, on_sync: Callable[[list[tuple[str, int]]], None]) -> None:
        super().__init__()
        self.on_sync = on_sync

    def open(self):
        from dynamopy.storage.store import Store
        if self._db is not None and not self._db.closed:
            raise RuntimeError("the memory disk is open already (crash() or close it first)")
        self._db = _RecordingLevelDB(self)
        return Store("<memory>", db=self._db)


class Recorder:
    """Turns node-side calls into history events; ``ops_by_version`` pairs acks with writes."""

    def __init__(self, history: History, now_ms: Callable[[], int] = None) -> None:
        self.history = history
        self.now_ms = now_ms or _now_ms  # the history's clock (the run's time since it began)
        self.ops_by_version: dict[int, tuple[int, str]] = {}
        self.hints_stored = 0  # hints any node stored (a coordinator's own, or as a fallback)
        self.tombstones_purged = 0  # tombstones any node's purge dropped from its store
        self.purge_passes = 0       # purge passes any node ran (anti-entropy's timer)
        # slot -> [(value, first node that applied it)], one item unless two values were chosen
        self.chosen: dict[int, list[tuple[object, str]]] = {}
        self.chosen_ms: dict[int, int] = {}  # slot -> when a node first applied it
        self.wiped_nodes: set[str] = set()
        # (t_ms, node, "wiped" | "readmitted" | "vote") for nodes that were wiped
        self.acceptor_log: list[tuple[int, str, str]] = []
        # group changes the metadata leader's keeper is proposing now: id -> (node, entry)
        self.set_group_in_flight: dict[int, tuple[str, dict]] = {}
        self._next_change = 0
        self.on_set_group: Callable[[str, dict], None] = lambda node_id, entry: None

    def set_group_started(self, node_id: str, entry: dict) -> int:
        self._next_change += 1
        self.set_group_in_flight[self._next_change] = (node_id, entry)
        self.on_set_group(node_id, entry)
        return self._next_change

    def set_group_ended(self, change: int) -> None:
        self.set_group_in_flight.pop(change, None)

    def wiped(self, node_id: str) -> None:
        self.wiped_nodes.add(node_id)
        self.acceptor_log.append((self.now_ms(), node_id, "wiped"))
        self.history.wiped(node_id, t_ms=self.now_ms())

    def applied(self, node_id: str, slot: int, value: object) -> None:
        self.chosen_ms.setdefault(slot, self.now_ms())
        values = self.chosen.setdefault(slot, [])
        if not any(v == value for v, _n in values):
            values.append((value, node_id))

    def acceptor_ready(self, node_id: str, persist) -> None:
        if persist is None or node_id not in self.wiped_nodes:
            return
        if persist.votes_from is not None:
            self.acceptor_log.append((self.now_ms(), node_id, "readmitted"))
        if persist.promised is not None or persist.accepted:
            self.acceptor_log.append((self.now_ms(), node_id, "vote"))

    def synced(self, node_id: str, items: list[tuple[str, int]]) -> None:
        self.history.synced(node_id, items, t_ms=self.now_ms())

    def stamped(self, node_id: str, version: int) -> None:
        cur = CURRENT_OP.get()
        if cur is None or cur[2] != node_id:
            return
        op, key, _coord = cur
        self.ops_by_version[version] = (op, key)
        self.history.stamped(node_id, op, key, version, t_ms=self.now_ms())

    def purging(self, node_id: str, items) -> None:
        for _token, key, version in items:
            self.history.purged(node_id, bytes(key).decode("utf-8", "replace"), int(version), t_ms=self.now_ms())

    def acked(self, node_id: str, version: int, hint_for: Optional[str]) -> None:
        found = self.ops_by_version.get(version)
        if found is None:
            return  # not a client write's version (cannot happen for a put that answers it)
        op, key = found
        self.history.acked(node_id, op, key, version, t_ms=self.now_ms(),
                           hint_for=hint_for if hint_for not in (None, node_id) else None)


def instrument(node, recorder: Recorder) -> None:
    """Wrap ``node``'s version source, replica put, tombstone purge and metadata log so they
    report to ``recorder``."""
    versions, replica, me = node.versions, node.replica, node.id
    start_clock, put, store_hint = versions.start, replica.put, node.hints.store

    def start_recorded(member_number: int, floor_ms: int = 0):
        # Recorded where each version is issued (``HybridClock.next``, called synchronously
        # in ``versions.next``, in the caller's task): ``versions.next`` then awaits the
        # durable mark, so two calls can return in the other order than they issued.
        hlc = start_clock(member_number, floor_ms)
        issue = hlc.next

        def next_recorded(wall_ms: int) -> int:
            version = issue(wall_ms)
            recorder.stamped(me, version)
            return version
        hlc.next = next_recorded
        return hlc

    put_nowait = replica.put_nowait

    async def put_recorded(token, key, record, hint_for=None) -> int:
        stored = await put(token, key, record, hint_for)
        # A home put goes through put_nowait (recorded there, once).
        if stored == record.version and hint_for is not None and hint_for != me:
            recorder.acked(me, record.version, hint_for)
        return stored

    def put_nowait_recorded(token, key, record) -> asyncio.Future:
        stored = put_nowait(token, key, record)

        def report(stored: asyncio.Future) -> None:
            # Runs before anyone else sees the answer (the first callback on the future).
            if (not stored.cancelled() and stored.exception() is None
                    and stored.result() == record.version):
                recorder.acked(me, record.version, None)
        stored.add_done_callback(report)
        return stored

    async def store_hint_counted(target, token, key, record) -> None:
        await store_hint(target, token, key, record)
        recorder.hints_stored += 1

    purge = node.anti_entropy.purge
    purge_local, purge_round = purge._local, purge.round

    async def purge_local_recorded(items) -> int:
        recorder.purging(me, items)
        count = await purge_local(items)
        recorder.tombstones_purged += count
        return count

    async def purge_round_counted() -> int:
        recorder.purge_passes += 1
        return await purge_round()

    purge._local = purge_local_recorded
    purge.round = purge_round_counted
    versions.start = start_recorded
    replica.put = put_recorded
    replica.put_nowait = put_nowait_recorded
    node.hints.store = store_hint_counted

    metalog = node.metalog
    apply_entry, handle_ready = metalog._apply, metalog._handle_ready

    def apply_recorded(slot, value) -> None:
        recorder.applied(me, slot, value)
        apply_entry(slot, value)

    async def handle_ready_recorded(rd) -> None:
        recorder.acceptor_ready(me, rd.persist)
        await handle_ready(rd)

    metalog._apply = apply_recorded
    metalog._handle_ready = handle_ready_recorded

    keeper = node.group_keeper
    keeper_propose = keeper.propose

    async def keeper_propose_recorded(entry: dict) -> int:
        change = recorder.set_group_started(me, entry)
        try:
            return await keeper_propose(entry)
        finally:
            recorder.set_group_ended(change)

    keeper.propose = keeper_propose_recorded
