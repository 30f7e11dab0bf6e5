"""The Storage seam as the node sees it: a *disk* it opens its store on at start.

``Disk.open()`` returns a ``Storage`` (the protocol in ``dynamopy.storage``): the one store the
GroupCommitter, the replica, the hints, the metadata log and the transfers share.
``inline`` says whether the store's ``apply`` may run on the event loop (an in-memory store:
no fsync to wait for, and no thread, so a run stays deterministic) or must run on the group
committer's own thread (LevelDB). An optional ``sync_wait`` coroutine function is awaited by
the group committer before each synced batch (the in-memory disk's slow-disk fault);
production disks have none. ``LevelDBDisk`` is the production disk;
``dynamopy.sim.storage.MemoryDisk`` the in-memory one, whose ``crash()`` loses every write
that was not synced.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING, Optional, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.storage import Storage


@runtime_checkable
class Disk(Protocol):
    inline: bool

    def open(self) -> "Storage": ...


class LevelDBDisk:
    """``<data_dir>/db``, a LevelDB ``Store``. With ``rng`` (the node's generator) each open
    draws the store's memtable size from it, so the replicas of a range, which receive the
    same writes, do not flush their memtables (and stall their syncs) at the same moment."""

    inline = False
    sync_wait = None  # a real sync takes its own time

    def __init__(self, data_dir: str, rng: Optional[random.Random] = None) -> None:
        self.data_dir = data_dir
        self.rng = rng

    def open(self) -> "Storage":
        from dynamopy.storage.store import Store
        os.makedirs(self.data_dir, exist_ok=True)
        fraction = self.rng.random() if self.rng is not None else 0.5
        return Store(os.path.join(self.data_dir, "db"), write_buffer_fraction=fraction)
