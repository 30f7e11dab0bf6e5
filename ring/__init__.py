"""ring: dynamopy's placement layer, a consistent-hash ring of equal partitions.

Pure: no I/O, no clock, no global random; mmh3 and the standard library only.
For any key it names the N distinct members that replicate it (the
preference list) and, beyond them, the members that stand in when those are
down (fallbacks); it says how much of the keyspace each member owns, and for
a membership change it yields the new ring and the key ranges that move.

Strategy: Dynamo's strategy 3. The token space [0, 2**32) is cut into Q equal
partitions (Q a power of two, default 4096) and each partition is assigned
to one member. A key's preference list is the first n distinct owners met
walking the partitions clockwise from the key's partition. The assignment
keeps two invariants: partition counts are even (within one, or within 3%
above the mean when that avoids repeats with few members), and the owners of
any ``spread`` (default 3 = N) consecutive partitions are distinct wherever
possible, so each member sits in ``spread * count`` preference lists and
replica load is as even as primary ownership. Random tokens, even with 256
virtual nodes per member, leave primary max/mean at 1.14-1.23 at 64 members
(measured over three seeds); equal partitions give about 1 + m/Q.
The rules of the assignment are in ``ring.claim``; README "Placement" shows the figures.

Tokens:
    ``token = mmh3.hash(key_bytes, seed, signed=False)``, a ``str`` key hashed
    as UTF-8. Partition of a token: ``token * Q >> 32``; partition p covers
    ``[p * 2**32 // Q, (p + 1) * 2**32 // Q)``. Ranges never wrap.

Public API (``from ring import Ring, RangeMove, TOKEN_SPACE``):

    Ring.build(members, *, partitions=4096, seed=0, spread=3) -> Ring
        Deterministic from (members in order, kwargs): the same ring on every
        machine. ``partitions`` (Q): power of two, >= len(members); balance
        is about 1 + m/Q, so keep Q >= 64 * members (4096 suits <= 64 members
        at 1.016 and 256 members at about 1.06). ``seed``: mmh3 seed in
        [0, 2**32) for keys and tie-breaks. ``spread``: the list length N whose
        replica load is kept even (set it to the replication factor).
    r.preference_list(key, n) -> list[str]
        n distinct members, 1 <= n <= len(members); key is str or bytes.
    r.preference_list_for_token(token, n) -> list[str]
    r.walk(key) / r.walk_token(token) -> Iterator[str]
        Every member exactly once in ring order: preference list, then fallbacks.
    r.token(key) -> int
        The key's token in [0, 2**32) under this ring's seed.
    r.ownership() -> dict[str, float]
        Share of the token space where each member comes first; sums to 1
        exactly (members in join order).
    r.replica_load(n) -> dict[str, float]
        Share of the token space each member replicates; sums to n.
    r.add(member) -> Ring, r.remove(member) -> Ring
        New rings; the old one is unchanged. A joiner takes Q // (m + 1)
        partitions evenly from the others and only replica sets that now
        include it change (it then replicates about N/(m+1) of the keys); a
        leaver's partitions go evenly to the others and only sets that
        included it change. Exception by design: when the new ring has at
        most ``spread`` members, every list of length ``spread`` holds every
        member whatever the layout, so the ring is re-dealt as ``build``
        would (shorter lists may then change). ``add``/``remove`` need not
        equal ``build`` of the new member list.
    r.moves(other, n) -> list[RangeMove]
        Token ranges whose replica set (length n) differs between the rings:
        sorted, non-wrapping, adjacent equal (old, new) merged. A change of
        order only is not listed: the same members hold the same keys.
    r.ranges_of(member, n) -> list[tuple[int, int]]
        Sorted, merged [start, end) token ranges whose length-n list
        includes member (for anti-entropy and streaming).
    r.members -> tuple[str, ...]  (join order), r.partition_count, r.seed, r.spread
    r.partition_of(token), r.partition_range(p), r.owner_of_partition(p)
    r.to_dict() -> dict, Ring.from_dict(d) -> Ring
        JSON/msgpack-safe: {"version", "members", "partitions", "seed",
        "spread", "owners"}, owners being one member index per partition.
        Carries the full assignment, so loading it and then applying the same
        adds/removes gives an identical ring on every node.
    r == other
        Same seed, same member set and every token placed identically
        (``spread`` is a setting for future changes, not part of placement).

    RangeMove(start, end, old, new): frozen; tokens start <= t < end had
    replicas ``old`` and now have ``new`` (preference order); ``.gained``
    (in new, not old) and ``.lost`` (in old, not new); ``token in move``.

Bad input raises ValueError naming the problem: an empty member list,
duplicate ids, an empty id, n < 1 or n > members, removing an unknown or the
last member, adding a present member or more members than partitions,
a token outside [0, 2**32), a malformed dict, comparing rings with different
seeds. Wrong types raise TypeError.

``python -m dynamopy.benchlib.ring_bench`` prints balance, movement and speed (the
benchmark lives outside ``ring``, which reads no clock).
"""

from ring.hashing import TOKEN_SPACE
from ring.moves import RangeMove
from ring.ring import Ring

__all__ = ["Ring", "RangeMove", "TOKEN_SPACE"]
