"""The in-memory disk: the real ``Store`` over an in-memory ordered key-value store that
loses, on a crash, every write not yet synced.

``MemoryDisk`` is the Storage seam (``dynamopy.storage.Disk``) for in-process tests and the
simulator. ``open()`` returns a real ``dynamopy.storage.Store`` (same encoding, same newest-
wins and hint bookkeeping as production) whose LevelDB is ``MemoryLevelDB``: the subset of
plyvel the store uses (get, ordered iterators, write batches), with LevelDB's durability
rule modelled explicitly:

* a write batch written with ``sync=False`` is visible at once but NOT durable;
* one written with ``sync=True`` makes itself and every earlier write durable (the write-
  ahead log is sequential) — the group committer's ``write_batch(sync=True)`` is the sync
  point;
* ``MemoryDisk.crash()`` closes the open store and throws away everything not durable; the
  next ``open()`` sees only what was synced.

A slow disk: while ``sync_delay_ms`` is set (the simulator sets it from its fault state),
the group committer's ``sync_wait()`` before each synced batch takes that long in loop
(virtual) time; the batch is neither visible nor durable until it returns, and a crash
meanwhile ends the wait at once (the batch then fails: its store is closed). Reads are not
slowed (the store's reads are synchronous calls on the loop).
"""

from __future__ import annotations

import asyncio
from typing import Iterator, Optional

from dynamopy.storage.store import Store

_Op = tuple[bytes, Optional[bytes]]  # (key, value); None = delete


class MemoryDisk:
    """What survives a crash: the synced key-value pairs of one node."""

    inline = True  # the store commits on the event loop: no thread, deterministic

    def __init__(self) -> None:
        self.durable: dict[bytes, bytes] = {}
        self.syncs = 0        # synced batches written, for tests that count them
        self.sync_delay_ms = 0  # > 0: a slow disk, each sync takes this long
        self.slow_syncs = 0     # syncs that waited for a slow disk
        self._db: Optional[MemoryLevelDB] = None
        self._crashed: Optional[asyncio.Event] = None

    async def sync_wait(self) -> None:
        """Called by the group committer before each synced batch: wait ``sync_delay_ms``
        (loop time), or until a crash, whichever comes first."""
        if self.sync_delay_ms <= 0:
            return
        self.slow_syncs += 1
        crashed = self._crashed = self._crashed or asyncio.Event()
        try:
            await asyncio.wait_for(crashed.wait(), self.sync_delay_ms / 1000)
        except asyncio.TimeoutError:
            pass

    def open(self) -> Store:
        if self._db is not None and not self._db.closed:
            raise RuntimeError("the memory disk is open already (crash() or close it first)")
        self._db = MemoryLevelDB(self)
        return Store("<memory>", db=self._db)

    def crash(self) -> int:
        """The process dies: the open store is closed and its unsynced writes are lost.
        Returns how many unsynced operations were lost."""
        db, self._db = self._db, None
        if self._crashed is not None:
            self._crashed.set()  # a sync in progress ends now (and fails)
            self._crashed = None
        if db is None:
            return 0
        lost = len(db.unsynced)
        db.unsynced.clear()
        db.closed = True
        return lost


class _Batch:
    def __init__(self, db: "MemoryLevelDB", sync: bool) -> None:
        self._db, self._sync, self._ops = db, sync, []

    def put(self, key: bytes, value: bytes) -> None:
        self._ops.append((bytes(key), bytes(value)))

    def delete(self, key: bytes) -> None:
        self._ops.append((bytes(key), None))

    def write(self) -> None:
        self._db._write(self._ops, self._sync)


class _Iterator:
    """A snapshot iterator over a sorted key range (plyvel's ``with db.iterator(...)``)."""

    def __init__(self, items: list, include_value: bool) -> None:
        self._items = items if include_value else [k for k, _v in items]

    def __iter__(self) -> Iterator:
        return iter(self._items)

    def __enter__(self) -> "_Iterator":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class MemoryLevelDB:
    """The plyvel ``DB`` subset ``Store`` uses, in memory, durable only through syncs."""

    def __init__(self, disk: MemoryDisk) -> None:
        self._disk = disk
        self.live: dict[bytes, bytes] = dict(disk.durable)  # what reads see
        self.unsynced: list[_Op] = []                        # not on disk yet
        self.closed = False

    def close(self) -> None:
        """A clean close: LevelDB flushes its log on close, so nothing is lost."""
        if not self.closed:
            self._flush()
            self.closed = True

    def get(self, key: bytes) -> Optional[bytes]:
        self._check()
        return self.live.get(bytes(key))

    def write_batch(self, sync: bool = False) -> _Batch:
        self._check()
        return _Batch(self, sync)

    def iterator(self, *, prefix: Optional[bytes] = None, start: Optional[bytes] = None,
                 stop: Optional[bytes] = None, include_value: bool = True) -> _Iterator:
        self._check()
        keys = sorted(self.live)
        items = [(k, self.live[k]) for k in keys
                 if (prefix is None or k.startswith(prefix))
                 and (start is None or k >= start) and (stop is None or k < stop)]
        return _Iterator(items, include_value)

    def _write(self, ops: list[_Op], sync: bool) -> None:
        self._check()
        for key, value in ops:
            if value is None:
                self.live.pop(key, None)
            else:
                self.live[key] = value
        self.unsynced.extend(ops)
        if sync:
            self._flush()

    def _flush(self) -> None:
        durable = self._disk.durable
        for key, value in self.unsynced:
            if value is None:
                durable.pop(key, None)
            else:
                durable[key] = value
        self.unsynced.clear()
        self._disk.syncs += 1

    def _check(self) -> None:
        if self.closed:
            raise RuntimeError("store is closed")
