"""When a tombstone may be purged (no I/O, no clock: the caller passes the time).

A delete is a record with ``deleted=True``. Keeping it forever costs space; dropping it too
early lets an older live copy of the key, still on some replica, come back ("resurrection")
through anti-entropy or read repair. The rule (Cassandra's ``gc_grace_seconds``, made safe by
confirmation as Riak's reaping is):

* **Old enough**: the tombstone's hybrid time (its version's physical part) is more than
  ``grace_s`` before ``now_ms``. No hint older than the delete can be delivered after the
  purge: hints expire first (below), whatever the hint window.
* **Held everywhere**: every member that currently replicates the key confirmed it holds
  this very tombstone (same version) or something newer. Then no current replica holds an
  older live copy. A replica that is down, unreachable, or lacks the tombstone blocks the
  purge; it is retried later (anti-entropy brings the tombstone to it meanwhile).
* **No older copy elsewhere**: every other member of the ring answered and holds no older
  version of the key. A member that stopped replicating the key in a ring change keeps its
  copy until it has handed it to the new owners, and that hand-off may run late; once the
  tombstone is gone, the new owners would take the old value back as one they lack. So a
  member that is down or unreachable, or still holds an old copy, blocks the purge too.
* **No member left the ring within the grace**: a member that leaves the ring (a graceful
  leave, a removal, an abandoned join) is asked by no purge once it is out, yet it hands
  the copies it still holds to the new owners before it drops them, and that hand-off may
  run late. The operator keeps a node that left reachable until it has handed everything
  off, within the grace (README); so no tombstone goes until the grace has passed since
  the last member left (``ClusterState.last_exit_ms``, the proposer's hybrid time of the
  entry that took it out).
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

The grace must cover the hint window (``grace_covers_window``, checked at start-up and by
``POST /cluster/config``): ``hint_ttl_ms(grace) >= hint_window``, i.e. 90% of the grace less
the clock bound is at least the window. Otherwise a hint the window lets a fallback store
(and count toward W) for a member that is back within the window expires undelivered, and a
write acknowledged by that hint alone is lost. The hint TTL, not this check, is what keeps a
purged delete from being undone by a hint.

What the user must do: bring a node that was down back within the grace period, or remove it
from the cluster and add it fresh (empty). A node that returns after the grace with old live
data for a purged key could otherwise bring it back.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

from dynamopy.core.records import Record
from dynamopy.core.versions import physical_ms


FOREVER_MS = 1 << 62   # any grace longer than this (up to inf) is this long


def _ms(seconds: float) -> int:
    """Whole milliseconds of a grace the log accepted (any number > 0, inf and 1e308
    included), capped at ``FOREVER_MS`` rather than overflowing."""
    return int(min(seconds * 1000, FOREVER_MS))


def old_enough(record: Record, now_ms: int, grace_s: float) -> bool:
    """A tombstone whose delete happened more than ``grace_s`` before ``now_ms``."""
    return record.deleted and physical_ms(record.version) < now_ms - _ms(grace_s)


def hint_ttl_ms(grace_s: float, max_clock_offset_ms: int) -> int:
    """How old a hinted record may be and still be delivered (never negative)."""
    return max(0, int(min(grace_s * 900, FOREVER_MS)) - max(0, max_clock_offset_ms))


def grace_covers_window(grace_s: float, hint_window_s: float, max_clock_offset_ms: int) -> bool:
    """A hint lives at least as long as the hint window (module doc): one stored for a
    member down up to the window is still deliverable when it is back within it."""
    return hint_ttl_ms(grace_s, max_clock_offset_ms) >= hint_window_s * 1000


def min_grace_s(hint_window_s: float, max_clock_offset_ms: int) -> float:
    """The shortest grace (to the millisecond) that covers ``hint_window_s``; 0 for no
    window (no hint is ever stored, any grace does)."""
    if hint_window_s <= 0:
        return 0.0
    ms = math.ceil((hint_window_s * 1000 + max(0, max_clock_offset_ms)) / 0.9) - 2
    while not grace_covers_window(ms / 1000, hint_window_s, max_clock_offset_ms):
        ms += 1
    return ms / 1000


def seconds_text(value: float) -> str:
    """A number of seconds as an operator typed it: ``12000.556``, ``10800``."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def hint_expired(record: Record, now_ms: int, grace_s: float, max_clock_offset_ms: int) -> bool:
    """A hinted record too old to deliver: a purged tombstone may shadow it (module doc)."""
    return physical_ms(record.version) < now_ms - hint_ttl_ms(grace_s, max_clock_offset_ms)


def held_everywhere(version: int, replicas: list[str],
                    confirmed: Mapping[str, Optional[int]]) -> bool:
    """Every current replica answered and holds ``version`` or newer (``confirmed`` maps a
    replica to the version it holds, ``None`` for none; a missing replica did not answer)."""
    return bool(replicas) and all(
        confirmed.get(m) is not None and confirmed[m] >= version for m in replicas)


def no_older_copy_elsewhere(version: int, others: list[str],
                            confirmed: Mapping[str, Optional[int]]) -> bool:
    """Every member that is not a replica of the key answered, and none holds an older
    version of it (``None``: it holds none). A member that stopped replicating the key in
    a ring change may still hold the copy it had then: it hands the records of a range it
    lost to the new owners before it drops them, and that hand-off may run late (a call
    waits out its timeout, the ring keeps changing). Were the tombstone gone by then, the
    new owners would take the old value as one they lack: the delete would be undone."""
    return all(m in confirmed and (confirmed[m] is None or confirmed[m] >= version)
               for m in others)


def no_recent_exit(last_exit_ms: int, now_ms: int, grace_s: float) -> bool:
    """No member left the ring within the last ``grace_s`` (``last_exit_ms``: when one last
    did, 0 for never): any hand-off a node that left still owed is done (module doc)."""
    return last_exit_ms < now_ms - _ms(grace_s)


def may_purge(record: Record, now_ms: int, grace_s: float, replicas: list[str],
              others: list[str], confirmed: Mapping[str, Optional[int]],
              change_in_progress: bool, last_exit_ms: int = 0) -> bool:
    """The whole rule: may the replicas drop this tombstone now? ``replicas`` are the key's
    current replicas, ``others`` every other member of the ring, ``confirmed`` what each
    member that answered holds (a missing member did not answer), ``last_exit_ms`` when a
    member last left the ring."""
    return (not change_in_progress and no_recent_exit(last_exit_ms, now_ms, grace_s)
            and old_enough(record, now_ms, grace_s)
            and held_everywhere(record.version, replicas, confirmed)
            and no_older_copy_elsewhere(record.version, others, confirmed))
