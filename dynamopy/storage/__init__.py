"""LevelDB storage of a replica (records, hints, metadata) and its group commit.

``Store`` is synchronous; ``GroupCommitter`` is the asyncio front for durable writes.
``Storage`` is the seam the runtime depends on: ``Store`` implements it on LevelDB; a
simulated store (``dynamopy.sim.storage``: in memory, losing unsynced writes on a crash)
stands in for it. ``Disk`` (``disk.py``) is what the node is given: it opens the store.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping, Optional, Protocol, runtime_checkable

from dynamopy.core.records import Record
from dynamopy.storage.disk import Disk, LevelDBDisk
from dynamopy.storage.group_commit import CommitterClosed, GroupCommitter
from dynamopy.storage.store import Store


@runtime_checkable
class Storage(Protocol):
    """Durable records ordered by (token, key), hints per target, metadata; ``apply`` is the
    one write path and is atomic, and durable on return when ``sync`` is true."""

    def get(self, token: int, key: bytes) -> Optional[Record]: ...

    def scan(self, start_token: int, end_token: int, *,
             after_key: Optional[bytes] = None) -> Iterator[tuple[int, bytes, Record]]: ...

    def key_count(self) -> int: ...

    def apply(self, writes: Iterable = (), hints_add: Iterable = (),
              hints_delete: Iterable[bytes] = (), meta_put: Optional[Mapping[str, bytes]] = None,
              meta_delete: Iterable[str] = (), sync: bool = True) -> list[bool]: ...

    def delete_range(self, start_token: int, end_token: int, sync: bool = True) -> int: ...

    def delete_range_chunk(self, start_token: int, end_token: int,
                           cursor: Optional[bytes] = None, *, chunk: int = 10_000,
                           sync: bool = True, keep=frozenset()
                           ) -> tuple[int, Optional[bytes]]: ...

    def hints(self, target: str, limit: int, *, after: Optional[bytes] = None
              ) -> list[tuple[bytes, int, bytes, Record]]: ...

    def hint_lookup(self, target: str, token: int, key: bytes) -> Optional[Record]: ...

    def hint_stats(self) -> dict[str, tuple[int, int]]: ...

    def meta_get(self, name: str) -> Optional[bytes]: ...

    def meta_scan(self, prefix: str = "") -> Iterator[tuple[str, bytes]]: ...

    def close(self) -> None: ...


__all__ = ["CommitterClosed", "Disk", "GroupCommitter", "LevelDBDisk", "Storage", "Store"]
