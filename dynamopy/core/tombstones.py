"""When a tombstone may be purged (no I/O, no clock: the caller passes the time).

A delete is a record with ``deleted=True``. Keeping it forever costs space; dropping it too
early lets an older live copy of the key, still on some replica, come back ("resurrection")
through anti-entropy or read repair. The rule (Cassandra's ``gc_grace_seconds``, made safe by
confirmation as Riak's reaping is):

* **Old enough**: the tombstone's hybrid time (its version's physical part) is more than
  ``grace_s`` before ``now_ms``. The grace must exceed the hint window, so no hint older than
  the delete can still be delivered.
* **Held everywhere**: every member that currently replicates the key confirmed it holds
  this very tombstone (same version) or something newer. Then no current replica holds an
  older live copy. A replica that is down, unreachable, or lacks the tombstone blocks the
  purge; it is retried later (anti-entropy brings the tombstone to it meanwhile).
* **Only this tombstone**: a replica deletes the stored record only if it still is this
  tombstone (same version): a newer write that arrived meanwhile is never purged.
* No purge while a ring change is in progress (the replica set is in motion).

Hints (Cassandra's rule: a hint lives no longer than ``gc_grace_seconds``): a hint older than
the grace may be shadowed by a tombstone already purged on its target, and delivering it then
would bring the deleted value back. So a hint whose record (live or deleted) is older than
``hint_ttl_ms`` is dropped, not delivered, re-homed, handed on or read. The TTL is the grace
less a tenth of it (the purge and the delivery race) and less the clock bound (the purger's
clock and the hint holder's may differ by that much). Dropping is safe for deletes (the other
replicas keep the tombstone until every replica holds it) and costs one copy of a live write.

What the user must do: bring a node that was down back within the grace period, or remove it
from the cluster and add it fresh (empty). A node that returns after the grace with old live
data for a purged key could otherwise bring it back.
"""

from __future__ import annotations

from typing import Mapping, Optional

from dynamopy.core.records import Record
from dynamopy.core.versions import physical_ms


def old_enough(record: Record, now_ms: int, grace_s: float) -> bool:
    """A tombstone whose delete happened more than ``grace_s`` before ``now_ms``."""
    return record.deleted and physical_ms(record.version) < now_ms - int(grace_s * 1000)


def hint_ttl_ms(grace_s: float, max_clock_offset_ms: int) -> int:
    """How old a hinted record may be and still be delivered (never negative)."""
    return max(0, int(grace_s * 900) - max(0, max_clock_offset_ms))


def hint_expired(record: Record, now_ms: int, grace_s: float, max_clock_offset_ms: int) -> bool:
    """A hinted record too old to deliver: a purged tombstone may shadow it (module doc)."""
    return physical_ms(record.version) < now_ms - hint_ttl_ms(grace_s, max_clock_offset_ms)


def held_everywhere(version: int, replicas: list[str],
                    confirmed: Mapping[str, Optional[int]]) -> bool:
    """Every current replica answered and holds ``version`` or newer (``confirmed`` maps a
    replica to the version it holds, ``None`` for none; a missing replica did not answer)."""
    return bool(replicas) and all(
        confirmed.get(m) is not None and confirmed[m] >= version for m in replicas)


def may_purge(record: Record, now_ms: int, grace_s: float, replicas: list[str],
              confirmed: Mapping[str, Optional[int]], change_in_progress: bool) -> bool:
    """The whole rule: may the replicas drop this tombstone now?"""
    return (not change_in_progress and old_enough(record, now_ms, grace_s)
            and held_everywhere(record.version, replicas, confirmed))
