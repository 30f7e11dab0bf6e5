"""LevelDB storage of a replica (records, hints, metadata) and its group commit.

``Store`` is synchronous; ``GroupCommitter`` is the asyncio front for durable writes.
"""

from dynamopy.storage.group_commit import CommitterClosed, GroupCommitter
from dynamopy.storage.store import Store

__all__ = ["CommitterClosed", "GroupCommitter", "Store"]
