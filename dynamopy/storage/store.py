"""Durable local storage of one replica: records, hints and metadata in one LevelDB.

Key layout (one keyspace, separated by a one-byte prefix)::

    b"d" + token.to_bytes(4, "big") + key              -> packb(record.to_wire())
    b"h" + target.encode() + b"\\x00" + seq.to_bytes(8, "big")
                                                       -> packb([token, key, record.to_wire()])
    b"i" + target.encode() + b"\x00" + token.to_bytes(4, "big") + key
                                                       -> the key of its hint with the
                                                          largest version
    b"m" + name.encode()                               -> raw bytes (caller-defined)

Rules and invariants:

* Data records are ordered by ring token, then key, so a token range ``[start, end)`` is one
  contiguous LevelDB range (streaming to new owners, anti-entropy). ``end`` may be ``2**32``.
* A data write is stored only if its version is larger than the stored one
  (``core.records.is_newer``); within one ``apply`` call earlier writes of the same key count
  as stored. So each key only ever moves to larger versions.
* ``apply`` is one atomic LevelDB write batch; with ``sync=True`` it returns only after the
  batch is on disk, so an acknowledgement may be given as soon as it returns. The batch is
  written even if every write was stale, because a "not applied" answer also claims that a
  newer version is durable.
* Mutations (``apply``, ``delete_range``) are serialized by a lock, which makes the
  read-compare-write of ``apply`` and the incremental counters safe. Reads (``get``, ``scan``,
  ``hints``, ``meta_*``) take no lock: LevelDB reads are thread-safe and iterators read a
  consistent snapshot.
* ``key_count`` (data records, tombstones included) and ``hint_stats`` are computed by a full
  scan at open and maintained incrementally, updated only after a batch was written; they may
  be read from any thread (an int, and a dict that is replaced rather than mutated).
* Hint sequence numbers increase monotonically within a process, and are used up by an
  ``apply`` whose write raises (never handed out twice); at open the counter resumes
  after the largest stored seq. If every hint was deleted before a reopen, numbering may restart;
  that is harmless because the seq only orders the hints that are still stored.
* The hint index entry of a (target, token, key) points at its stored hint with the largest
  version, whatever order the hints arrived in. Deleting that hint (it was delivered: the
  target holds something at least as new) drops the entry even if older hints of the key
  remain; a lookup then misses only versions the target already superseded.
* Hint targets are member ids and must not contain ``"\\x00"`` (it ends the target in the key).

* A *watcher* (``watch``) hears every change to the data records, after its batch was
  written and under the lock, as ``(token, key, old, new)`` (either ``None`` when absent):
  anti-entropy keeps its hash trees current on write with it. ``watch`` returns a snapshot
  scan taken at the instant the watcher was installed, so snapshot + changes = the store.

* ``purge`` deletes a tombstone only while it still is the one named (same version): a newer
  write stored meanwhile is never purged. When a tombstone may be purged at all is decided by
  ``core.tombstones`` (anti-entropy runs it); the purge decrements ``key_count``.

* The read of the read-compare-write is served from an in-memory table of what is stored
  for recently read or written keys (``_stored``: data key -> the stored record's version
  and tombstone flag, as a value-less ``Record``), falling back to LevelDB. It runs on the
  group-commit thread, where every LevelDB ``get`` releases the GIL and must win it back from
  the busy event loop (measured: a fifth of that thread's waits for the GIL). The table only
  ever holds what is on disk once the batch being built is written: entries are added under
  the lock from a read or for a write put in the batch (and the whole table is emptied if
  that batch's write raises), and removed by ``purge`` and ``delete_range`` after their
  batch; it is also emptied when it reaches ``STORED_CACHE_KEYS``, and lost with the
  process (a reopened store starts empty). So the newer-wins rule decides on the same versions as
  before. A watcher's ``old`` record may therefore carry only the version and the tombstone
  flag (no value).

* ``get`` is served from a second table, of whole records (``_records``: data key -> the
  stored ``Record``), falling back to LevelDB: a LevelDB ``get`` from the event loop releases
  the GIL, often to the commit thread, and decodes the record again each time (the replica
  side of a peer read and the coordinator's local read, once per quorum read each). The
  table never holds a record LevelDB would not return at that moment:

  - the commit thread puts each record a batch stored into it only after that batch's
    ``write()`` returned (for a synced batch: after the sync; LevelDB makes a batch
    visible only then too);
  - ``purge`` and ``delete_range`` remove their keys after their batch, and a batch whose
    write raised empties the table;
  - a record read from LevelDB is added only if no batch changed the table since that read
    began (``_records_gen``, checked and written under ``_records_lock``), so a read that
    raced with a write cannot put back the value the write replaced.

  Records with values over ``RECORD_CACHE_VALUE_BYTES`` are never held, and the table is
  emptied when it would hold more than ``RECORD_CACHE_BYTES`` of values.
"""

from __future__ import annotations

import itertools
import threading
from typing import Callable, Container, Iterable, Iterator, Mapping, Optional

import msgpack
import plyvel

from dynamopy.core.records import Record, is_newer, version_only
from dynamopy.storage.layout import (
    Change, DATA_PREFIX, HINT_PREFIX, HintAdd, META_PREFIX, Watcher, Write, check_range,
    data_key, hint_index_key, hint_key, hint_prefix, hint_seq, hint_target, pack_hint,
    token_bound, unpack_hint, unpack_record, validate_meta_name, validate_ops,
    validate_target,
)

STORED_CACHE_KEYS = 65_536   # entries of Store._stored (~10 MiB with short keys)
RECORD_CACHE_BYTES = 32 << 20      # values held by Store._records (module docstring)
RECORD_CACHE_VALUE_BYTES = 16 << 10  # larger values are always read from LevelDB

# apply() reads every written key first (newer-wins), and most writes are to keys the store
# has not seen: a bloom filter answers those misses without touching each table file
# (measured: a 256-write batch spends ~2.3 ms in gets without, ~1 ms with). A 16 MiB memtable
# (default 4) means fewer level-0 tables to probe. Both are safe to change on an existing DB:
# tables written without a filter are simply read without one.
_LEVELDB_OPTIONS = {"bloom_filter_bits": 10}
# A node draws its memtable size per open from [WRITE_BUFFER_MIN, WRITE_BUFFER_MAX] (mean
# 16 MiB; ``LevelDBDisk``, from the node's generator: per open, not per path, since nodes on
# different machines share one path).
# The replicas of a key range receive the same writes, so with one fixed size every node's
# memtable filled at the same instant: all of them flushed (a ~0.3 s burst of compression
# and a table fsync) and compacted together, and their synced batches stalled together
# (docs/perf.md, session 6: the three flushes began within 80 ms of each other, and the slow
# syncs during and just after them fell on two or more nodes at once). A quorum waits for the
# fastest W replicas, so a stall on one node is masked; spreading the sizes keeps the
# flushes of different nodes apart.
WRITE_BUFFER_MIN = 10 << 20
WRITE_BUFFER_MAX = 22 << 20


def write_buffer_size(fraction: float) -> int:
    """The memtable size for a draw ``fraction`` in [0, 1): spread evenly over
    [WRITE_BUFFER_MIN, WRITE_BUFFER_MAX], on 64 KiB steps."""
    size = WRITE_BUFFER_MIN + int(fraction * (WRITE_BUFFER_MAX - WRITE_BUFFER_MIN))
    return min(WRITE_BUFFER_MAX, size & ~0xFFFF)


# ---------------------------------------------------------------- the store


class _Read:
    """``with store._read:`` around one read of LevelDB (a class, not a generator context
    manager: it is on the path of every get that misses the record table)."""

    __slots__ = ("store",)

    def __init__(self, store: "Store") -> None:
        self.store = store

    def __enter__(self) -> None:
        s = self.store
        with s._readers_cv:
            if s._closing:
                raise RuntimeError("store is closed")
            s._readers += 1

    def __exit__(self, *exc: object) -> None:
        s = self.store
        with s._readers_cv:
            s._readers -= 1
            if not s._readers:
                s._readers_cv.notify_all()


class Store:
    """One replica's LevelDB: versioned records by token, hints per target, metadata."""

    def __init__(self, path: str, *, db=None, write_buffer_fraction: float = 0.5) -> None:
        """Open the LevelDB at ``path``; or, with ``db``, run on that ordered key-value
        store instead (the in-memory disk of ``dynamopy.sim.storage``, plyvel's interface).
        ``write_buffer_fraction`` picks the memtable size (``write_buffer_size``): a node
        draws it from its generator per open (``LevelDBDisk``); 0.5 is the mean, 16 MiB."""
        self.path = path
        self.write_buffer_size = write_buffer_size(write_buffer_fraction)
        self._db = db if db is not None else plyvel.DB(
            str(path), create_if_missing=True, write_buffer_size=self.write_buffer_size,
            **_LEVELDB_OPTIONS)
        self._lock = threading.Lock()
        # Reads in progress, from any thread (``_read``): close() waits for them. LevelDB
        # freed under a thread inside an iterator step or a get crashes the process.
        self._readers = 0
        self._readers_cv = threading.Condition(threading.Lock())
        self._closing = False
        # ``with self._read:`` around one read of LevelDB (a get, or a step of an iterator),
        # from any thread: refused once the store is closing; close() waits until no read
        # is inside.
        self._read = _Read(self)
        self._key_count = 0
        # target -> (count, bytes). Replaced, never mutated, once open: readers on other
        # threads then iterate a dict that cannot change under them.
        self._hint_stats: dict[str, tuple[int, int]] = {}
        self._hint_seq = 0  # last seq handed out
        self._watcher: Optional[Watcher] = None
        self.watch_errors = 0  # watcher calls that raised (the batch stands regardless)
        # data key -> Record(version, deleted) as stored on disk (module docstring).
        self._stored: dict[bytes, Record] = {}
        # data key -> the whole stored Record, for get() (module docstring).
        self._records: dict[bytes, Record] = {}
        self._records_bytes = 0
        self._records_gen = 0  # moved on by every change of the table by a write or delete
        self._records_lock = threading.Lock()
        self._recover()

    def _recover(self) -> None:
        """Recompute the incremental counters from what is on disk."""
        count = 0
        for _ in self._db.iterator(prefix=DATA_PREFIX, include_value=False):
            count += 1
        self._key_count = count
        stats: dict[str, tuple[int, int]] = {}
        for hkey, raw in self._db.iterator(prefix=HINT_PREFIX):
            target = hint_target(hkey)
            count, size = stats.get(target, (0, 0))
            stats[target] = (count + 1, size + len(hkey) + len(raw))
            self._hint_seq = max(self._hint_seq, hint_seq(hkey))
        self._hint_stats = stats

    # -- lifecycle

    def close(self) -> None:
        """Close the store: writes are excluded (the lock), new reads are refused, and reads
        in progress on other threads (a scan's step, a get) finish first."""
        with self._lock:
            with self._readers_cv:
                self._closing = True
                while self._readers:
                    self._readers_cv.wait()
            if not self._db.closed:
                self._db.close()

    def _fenced(self, make_iter: Callable[[], Iterator]) -> Iterator:
        """The items of the LevelDB iterator ``make_iter()``, read a few at a time inside
        ``_read`` (4, doubling to 128: a caller that stops early reads little ahead), so a
        scan that runs while the store closes ends with "store is closed" instead of reading
        freed memory. One iterator throughout: the scan still reads one snapshot."""
        source = None   # the iterator object (a context manager, as plyvel's are)
        it: Iterator = iter(())
        step = 4
        try:
            while True:
                with self._read:
                    if source is None:
                        source = make_iter()
                        it = iter(source)
                    items = list(itertools.islice(it, step))
                yield from items
                if len(items) < step:
                    return
                step = min(step * 2, 128)
        finally:
            if source is not None:
                try:
                    with self._read:
                        source.__exit__(None, None, None)
                except RuntimeError:
                    pass  # closing: LevelDB's close closes its iterators itself

    @property
    def closed(self) -> bool:
        return self._db.closed

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- data reads

    def get(self, token: int, key: bytes) -> Optional[Record]:
        """The stored record of ``key`` (tombstones included), or None. Reads unsynced state."""
        dkey = data_key(token, key)
        rec = self._records.get(dkey)
        if rec is not None and not self._db.closed:  # a closed (crashed) store still refuses
            return rec
        gen = self._records_gen
        with self._read:
            raw = self._db.get(dkey)
        if raw is None:
            return None
        rec = unpack_record(raw)
        if len(rec.value) <= RECORD_CACHE_VALUE_BYTES:
            with self._records_lock:
                if self._records_gen == gen:  # no write or delete since the read began
                    self._remember(dkey, rec)
        return rec

    def _remember(self, dkey: bytes, rec: Record) -> None:
        """Put ``rec`` in the record table (``_records_lock`` held)."""
        records = self._records
        old = records.get(dkey)
        size = self._records_bytes + len(rec.value) - (len(old.value) if old is not None else 0)
        if size > RECORD_CACHE_BYTES:
            records.clear()
            size = len(rec.value)
        records[dkey] = rec
        self._records_bytes = size

    def _write_or_forget(self, wb) -> None:
        """A deleting batch's write (store lock held): if it raises, what reached the disk is
        unknown, so both tables are emptied (later reads go to LevelDB)."""
        try:
            wb.write()
        except BaseException:
            self._stored.clear()
            self._records_changed(clear=True)
            raise

    def _records_changed(self, written: Iterable[tuple[bytes, Record]] = (),
                         removed: Iterable[bytes] = (), clear: bool = False) -> None:
        """After a batch's write: its records in, deleted keys out (or everything out)."""
        with self._records_lock:
            self._records_gen += 1
            records = self._records
            if clear:
                records.clear()
                self._records_bytes = 0
                return
            for dkey in removed:
                old = records.pop(dkey, None)
                if old is not None:
                    self._records_bytes -= len(old.value)
            size = self._records_bytes
            for dkey, rec in written:  # _remember, inlined: once per replica write
                value = rec.value
                old = records.pop(dkey, None)
                if old is not None:
                    size -= len(old.value)
                if type(value) is bytes and len(value) <= RECORD_CACHE_VALUE_BYTES:
                    if size + len(value) > RECORD_CACHE_BYTES:
                        records.clear()
                        size = 0
                    records[dkey] = rec
                    size += len(value)
            self._records_bytes = size

    def scan(self, start_token: int, end_token: int, *,
             after_key: Optional[bytes] = None) -> Iterator[tuple[int, bytes, Record]]:
        """Records with ``start_token <= token < end_token`` in (token, key) order.

        With ``after_key``, records at ``start_token`` whose key is ``<= after_key`` are
        skipped: ``(start_token, after_key)`` is a resume cursor (the last record seen).
        Reads a snapshot taken at the first ``next()``. A wrapping range (start > end) is the
        caller's to split in two.
        """
        check_range(start_token, end_token)  # eagerly, not at the first next()
        return self._scan(start_token, end_token, after_key)

    def _scan(self, start_token: int, end_token: int,
              after_key: Optional[bytes] = None) -> Iterator[tuple[int, bytes, Record]]:
        if start_token >= end_token:
            return
        start = token_bound(start_token)
        if after_key is not None:
            start = start + after_key + b"\x00"  # the smallest key after the cursor
        stop = token_bound(end_token)
        for dkey, raw in self._fenced(lambda: self._db.iterator(start=start, stop=stop)):
            yield int.from_bytes(dkey[1:5], "big"), dkey[5:], unpack_record(raw)

    def key_count(self) -> int:
        """Number of data records, tombstones included."""
        return self._key_count

    # -- the one write path

    def apply(
        self,
        writes: Iterable[Write] = (),
        hints_add: Iterable[HintAdd] = (),
        hints_delete: Iterable[bytes] = (),
        meta_put: Optional[Mapping[str, bytes]] = None,
        meta_delete: Iterable[str] = (),
        sync: bool = True,
        check: bool = True,
    ) -> list[bool]:
        """Apply everything as one atomic write batch; return, per data write, if it was applied.

        Order inside the batch: data writes, hints added, hints deleted, metadata puts,
        metadata deletes (so a name both put and deleted in one call ends up deleted).
        Deleting a hint key that does not exist is a no-op. Counters change only after the
        batch was written, so a failed write leaves them matching the disk. ``check=False``
        skips validation for callers that validated every operation already.
        """
        if isinstance(hints_delete, (bytes, bytearray)):
            raise TypeError("hints_delete must be a list of hint keys, not one bytes value")
        writes = list(writes)
        hints_add = list(hints_add)
        hints_delete = list(hints_delete)
        meta_put = dict(meta_put or {})
        meta_delete = list(meta_delete)
        if check:
            validate_ops(writes, hints_add, meta_put, meta_delete)

        with self._lock:
            db = self._db
            if db.closed:
                raise RuntimeError("store is closed")
            wb = db.write_batch(sync=sync)
            applied: list[bool] = []
            # Records decided earlier in this call, by data key; None = absent.
            seen: dict[bytes, Optional[Record]] = {}
            stored = self._stored
            if len(stored) >= STORED_CACHE_KEYS:
                stored.clear()
            # Entries remembered for this batch are true only once it is written: if
            # anything raises before or in the write (what reached the disk is then
            # unknown), the table is emptied and later batches read LevelDB again.
            try:
                new_keys = 0
                changes: list[Change] = []
                written: list[tuple[bytes, Record]] = []
                # The per-record work runs on the commit thread for every replica write:
                # one packer per batch (msgpack.packb builds one per call), the value-less
                # table entries built by ``version_only``.
                pack = msgpack.Packer(use_bin_type=True).pack
                put = wb.put
                for token, key, record in writes:
                    if key.__class__ is not bytes:
                        key = bytes(key)
                    dkey = DATA_PREFIX + token.to_bytes(4, "big") + key
                    if dkey in seen:
                        current = seen[dkey]
                    else:
                        current = stored.get(dkey)
                        if current is None:
                            raw = db.get(dkey)
                            if raw is not None:
                                current = unpack_record(raw)
                                stored[dkey] = version_only(current.version, current.deleted)
                        seen[dkey] = current
                    if current is None or record.version > current.version:  # is_newer
                        put(dkey, pack(record.to_wire()))
                        if current is None:
                            new_keys += 1
                        seen[dkey] = record
                        # Remembered now (not after the sync, when the loop thread waits for this
                        # thread to get the GIL back); a failed write empties the table below.
                        stored[dkey] = version_only(record.version, record.deleted)
                        written.append((dkey, record))
                        applied.append(True)
                        changes.append((token, key, current, record))
                    else:
                        applied.append(False)

                # Hint bookkeeping is staged and committed only after wb.write() succeeds.
                seq = self._hint_seq
                hint_delta: dict[str, list[int]] = {}
                added: dict[bytes, int] = {}  # hint key -> size, added in this call
                added_raw: dict[bytes, bytes] = {}
                index: dict[bytes, Optional[bytes]] = {}  # index key -> hint key (staged here)
                for target, token, key, record in hints_add:
                    seq += 1
                    hkey = hint_key(target, seq)
                    raw = pack_hint(token, bytes(key), record)
                    wb.put(hkey, raw)
                    # The newest hint of a (target, key) is found by a point lookup (sloppy
                    # reads), never by scanning the target's hints. Newest by version, not by
                    # arrival: a slowed coordinator's older write may arrive after a newer one.
                    ikey = hint_index_key(target, token, bytes(key))
                    if is_newer(record, self._indexed(ikey, index, added_raw)):
                        wb.put(ikey, hkey)
                        index[ikey] = hkey
                    added[hkey] = len(hkey) + len(raw)
                    added_raw[hkey] = raw
                    d = hint_delta.setdefault(target, [0, 0])
                    d[0] += 1
                    d[1] += added[hkey]
                gone: set[bytes] = set()
                for hkey in hints_delete:
                    hkey = bytes(hkey)
                    if hkey in gone or not hkey.startswith(HINT_PREFIX):
                        continue
                    if hkey in added:
                        size, raw = added[hkey], added_raw[hkey]
                    else:
                        raw = db.get(hkey)
                        if raw is None:
                            continue
                        size = len(hkey) + len(raw)
                    gone.add(hkey)
                    wb.delete(hkey)
                    h_token, h_key, _rec = unpack_hint(raw)
                    ikey = hint_index_key(hint_target(hkey), h_token, h_key)
                    pointed = index[ikey] if ikey in index else db.get(ikey)
                    if pointed == hkey:  # only the newest hint of the key is indexed
                        wb.delete(ikey)
                        index[ikey] = None
                    d = hint_delta.setdefault(hint_target(hkey), [0, 0])
                    d[0] -= 1
                    d[1] -= size

                for name, value in meta_put.items():
                    wb.put(META_PREFIX + name.encode(), bytes(value))
                for name in meta_delete:
                    wb.delete(META_PREFIX + name.encode())

                # Handed out for good before the write: if anything from here on raises,
                # what reached the disk is unknown, and a hint key must never be given twice
                # (the delivery cursor relies on each new hint getting a larger key).
                self._hint_seq = seq
                # Written even when empty: with sync=True it also makes earlier unsynced
                # state durable, which a "not applied" answer relies on.
                wb.write()
                # The counters first: once the batch is written they must count it, whatever
                # raises after (hint delivery visits only the targets ``hint_stats`` names).
                self._key_count += new_keys
                if hint_delta:
                    stats = dict(self._hint_stats)
                    for target, (d_count, d_bytes) in hint_delta.items():
                        count, size = stats.get(target, (0, 0))
                        if count + d_count <= 0:
                            stats.pop(target, None)
                        else:
                            stats[target] = (count + d_count, size + d_bytes)
                    self._hint_stats = stats
                if written:
                    self._records_changed(written)
                if changes:
                    self._notify(changes)
                return applied
            except BaseException:
                stored.clear()
                self._records_changed(clear=True)
                raise

    # -- the watcher

    def watch(self, watcher: Watcher) -> Iterator[tuple[int, bytes, Record]]:
        """Install ``watcher`` (it replaces any earlier one) and return a scan of every data
        record as of that instant: the records the watcher will not hear about. (A LevelDB
        iterator reads the snapshot taken when it is created, here under the lock.)"""
        with self._lock:
            if self._db.closed:
                raise RuntimeError("store is closed")
            it = self._db.iterator(prefix=DATA_PREFIX)
            self._watcher = watcher
        return self._iterate_records(self._fenced(lambda: it))

    def unwatch(self) -> None:
        with self._lock:
            self._watcher = None

    @staticmethod
    def _iterate_records(items: Iterator) -> Iterator[tuple[int, bytes, Record]]:
        for dkey, raw in items:
            yield int.from_bytes(dkey[1:5], "big"), dkey[5:], unpack_record(raw)

    def _notify(self, changes: list[Change]) -> None:
        """Called under the lock after a batch was written."""
        watcher = self._watcher
        if watcher is None:
            return
        try:
            watcher(changes)
        except Exception:  # noqa: BLE001 - the batch is on disk; never fail its callers
            self.watch_errors += 1

    def _indexed(self, ikey: bytes, staged: dict, staged_raw: dict) -> Optional[Record]:
        """The record the hint index entry ``ikey`` points at (staged in this batch or on
        disk), or None."""
        hkey = staged[ikey] if ikey in staged else self._db.get(ikey)
        if hkey is None:
            return None
        raw = staged_raw.get(hkey) or self._db.get(hkey)
        return None if raw is None else unpack_hint(raw)[2]

    def delete_range(
        self, start_token: int, end_token: int, sync: bool = True, chunk: int = 10_000
    ) -> int:
        """Drop data records with ``start_token <= token < end_token``; return how many.

        Deletes in batches of ``chunk`` keys (``delete_range_chunk``), taking the lock per
        batch so concurrent group commits are not stalled by a large range. Not atomic as a
        whole: a crash may leave a prefix deleted, which is fine because the caller re-runs it
        for a range it no longer replicates. Each batch re-reads the range under the lock, so
        the count is exact.
        """
        check_range(start_token, end_token)
        total, cursor = 0, None
        while True:
            n, cursor = self.delete_range_chunk(start_token, end_token, cursor,
                                                chunk=chunk, sync=sync)
            total += n
            if cursor is None:
                return total

    def delete_range_chunk(
        self, start_token: int, end_token: int, cursor: Optional[bytes] = None, *,
        chunk: int = 10_000, sync: bool = True, keep: Container[bytes] = frozenset(),
    ) -> tuple[int, Optional[bytes]]:
        """One step of a range drop: look at up to ``chunk`` data records of
        ``[start_token, end_token)`` from ``cursor`` on (None: the range's start), delete
        those whose data key is not in ``keep``, in one write batch under the lock. Returns
        (how many were deleted, where the next step resumes), the second None once the range
        has no more records."""
        check_range(start_token, end_token)
        if start_token >= end_token:
            return 0, None
        start = token_bound(start_token) if cursor is None else cursor
        stop = token_bound(end_token)
        with self._lock:
            if self._db.closed:
                raise RuntimeError("store is closed")
            seen, keys = 0, []
            changes: list[Change] = []
            watched = self._watcher is not None
            last = None
            with self._db.iterator(start=start, stop=stop, include_value=watched) as it:
                for item in it:
                    dkey, raw = item if watched else (item, None)
                    last = dkey
                    seen += 1
                    if dkey not in keep:
                        if watched:
                            changes.append((int.from_bytes(dkey[1:5], "big"), dkey[5:],
                                            unpack_record(raw), None))
                        keys.append(dkey)
                    if seen >= chunk:
                        break
            if keys:
                wb = self._db.write_batch(sync=sync)
                for dkey in keys:
                    wb.delete(dkey)
                self._write_or_forget(wb)
                stored = self._stored
                for dkey in keys:
                    stored.pop(dkey, None)
                self._records_changed(removed=keys)
                self._key_count -= len(keys)
                if changes:
                    self._notify(changes)
        # Everything up to and including the last key looked at is done: resume just after.
        return len(keys), (last + b"\x00" if seen >= chunk else None)

    def purge(self, items: Iterable[tuple[int, bytes, int]], sync: bool = True) -> int:
        """Delete the tombstones ``(token, key, version)`` that are still stored as exactly
        that version; return how many were deleted."""
        items = list(items)
        with self._lock:
            if self._db.closed:
                raise RuntimeError("store is closed")
            wb = self._db.write_batch(sync=sync)
            changes: list[Change] = []
            for token, key, version in items:
                dkey = data_key(int(token), bytes(key))
                raw = self._db.get(dkey)
                if raw is None:
                    continue
                rec = unpack_record(raw)
                if rec.deleted and rec.version == version:
                    wb.delete(dkey)
                    changes.append((int(token), bytes(key), rec, None))
            self._write_or_forget(wb)
            for token, key, _rec, _new in changes:
                self._stored.pop(data_key(token, key), None)
            self._records_changed(removed=[data_key(t, k) for t, k, _r, _n in changes])
            self._key_count -= len(changes)
            if changes:
                self._notify(changes)
            return len(changes)

    # -- hints

    def hints(self, target: str, limit: int, *, after: Optional[bytes] = None
              ) -> list[tuple[bytes, int, bytes, Record]]:
        """Up to ``limit`` hints for ``target``, oldest first: (hint_key, token, key, record).

        With ``after`` (a hint key of ``target``), only hints after it: a cursor past hints
        already delivered and deleted. LevelDB keeps a deleted key's tombstone until a
        compaction reaches it, and a read from the start of the target's hints walks over
        every one of them (measured: 60-660 ms per read of 256 hints while 200,000
        delivered hints awaited compaction)."""
        validate_target(target)
        out: list[tuple[bytes, int, bytes, Record]] = []
        if limit <= 0:
            return out
        prefix = hint_prefix(target)
        if after is not None and not after.startswith(prefix):
            raise ValueError(f"hint cursor {after!r} is not a hint key of {target!r}")
        bounds = ({"prefix": prefix} if after is None
                  else {"start": after + b"\x00", "stop": prefix[:-1] + b"\x01"})
        with self._read, self._db.iterator(**bounds) as it:
            for hkey, raw in it:
                token, key, record = unpack_hint(raw)
                out.append((hkey, token, key, record))
                if len(out) >= limit:
                    break
        return out

    def hint_lookup(self, target: str, token: int, key: bytes) -> Optional[Record]:
        """The record of the newest hint held for ``target`` of one key, or ``None``: two
        point reads through the hint index (sloppy reads call this per request)."""
        validate_target(target)
        with self._read:
            hkey = self._db.get(hint_index_key(target, token, bytes(key)))
            if hkey is None:
                return None
            raw = self._db.get(hkey)
        return None if raw is None else unpack_hint(raw)[2]

    def hint_stats(self) -> dict[str, tuple[int, int]]:
        """target -> (count, bytes) of stored hints; bytes = encoded key + value sizes."""
        return dict(self._hint_stats)

    # -- metadata

    def meta_get(self, name: str) -> Optional[bytes]:
        validate_meta_name(name)
        with self._read:
            return self._db.get(META_PREFIX + name.encode())

    def meta_scan(self, prefix: str = "") -> Iterator[tuple[str, bytes]]:
        """(name, value) for names starting with ``prefix``, in byte order of the names."""
        validate_meta_name(prefix)
        return self._meta_scan(prefix)

    def _meta_scan(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        start = META_PREFIX + prefix.encode()
        for mkey, value in self._fenced(lambda: self._db.iterator(prefix=start)):
            yield mkey[1:].decode(), value
