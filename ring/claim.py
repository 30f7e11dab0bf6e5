"""Partition assignment: who owns each of the Q equal partitions.

This is Dynamo's strategy 3 (Q equal-size partitions, each assigned to one
member). An assignment is a list ``owners`` of length Q holding member
indexes. Functions here are pure: they take an assignment and return a new one.

Invariants every function keeps (the balance and movement claims rest on them):

- Counts: each member owns ``Q // m`` or ``Q // m + 1`` partitions after
  :func:`initial_owners`, except that at the wrap-around a member may take a
  second partition of the last round rather than repeat (counts then lie in
  ``Q // m - 1 .. Q // m + 1``; e.g. Q=4096, 9 members, seed 0). :func:`claim_for_joiner` water-fills (the joiner
  takes each partition from whoever has most). :func:`release_leaver` lets a
  member go up to ``COUNT_SLACK_PERCENT`` above the mean (never less than the
  rounding needs) when that avoids repeats, so primary max/mean stays within
  1.03 or one partition above the mean, whichever is larger.
- Spread: the owners of any ``spread`` consecutive partitions are distinct
  wherever that is possible (it is not when m < spread, nor always right at
  the wrap-around or after shrinking to few members). When it holds, the
  preference list of length ``spread`` of partition p is exactly the owners
  of p .. p+spread-1, so each member appears in ``spread * count`` preference
  lists: replica load is as even as primary ownership. A window that breaks
  this rule is a *conflict*; the joiner prefers partitions in conflicts, so
  growth repairs what shrinking could not avoid.
- Movement: a join only hands partitions to the joiner and a leave only
  hands out the leaver's partitions. So a walk that meets ``spread`` distinct
  members before any changed partition is unchanged: on join every replica
  set that changes now includes the joiner; on leave only sets that included
  the leaver change.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from ring.hashing import rank

# How far above the mean (in percent) a member's partition count may go when
# that keeps replica sets clean; the cap is never below ceil(mean). With many
# members this is the +1 that rounding needs anyway; with few it buys room to
# avoid repeats, which is what keeps replica load even. Integer arithmetic
# throughout, so every machine computes the same assignment.
COUNT_SLACK_PERCENT = 3


def _conflicts(owners: Sequence[int], p: int, member: int, spread: int) -> int:
    """How many partitions within ``spread - 1`` of ``p`` are owned by ``member``."""
    size = len(owners)
    hits = 0
    for d in range(1, min(spread, size)):
        if owners[(p - d) % size] == member:
            hits += 1
        if owners[(p + d) % size] == member:
            hits += 1
    return hits


def initial_owners(names: Sequence[str], partitions: int, spread: int, seed: int) -> list[int]:
    """A fresh assignment for ``names`` (indexes into ``names``).

    Partitions are dealt in rounds: each round gives every member one
    partition, in a per-round pseudo-random order, skipping members that
    would repeat within ``spread`` partitions. Rounds keep counts within one
(two when the wrap-around forces a member to take a second partition);
    the per-round shuffle spreads each member's neighbours over many members,
    so a failed member's fallback load is shared rather than landing on one
    successor.
    """
    m = len(names)
    if m < spread:
        # Repeats within a window are unavoidable; plain rotation keeps every
        # repeat as far apart (m partitions) as possible.
        return [p % m for p in range(partitions)]
    owners = [-1] * partitions
    counts = [0] * m
    p = 0
    round_no = 0
    while p < partitions:
        order = sorted(range(m), key=lambda i: rank(seed, "deal", round_no, names[i]))
        if p + m >= partitions:
            # The last round must also avoid the owners at the start of the
            # ring (the wrap-around); deal those members first, far from the end.
            head = {owners[d] for d in range(min(spread - 1, partitions))}
            order.sort(key=lambda i: i not in head)
        for _ in range(min(m, partitions - p)):
            chosen = next((i for i in order if not _conflicts(owners, p, i, spread)), None)
            if chosen is None:
                # Only reachable at the wrap-around: every member left in this
                # round would repeat; take the least harmful member overall.
                chosen = min(
                    range(m),
                    key=lambda i: (_conflicts(owners, p, i, spread), counts[i], rank(seed, "wrap", p, names[i])),
                )
            if chosen in order:
                order.remove(chosen)
            owners[p] = chosen
            counts[chosen] += 1
            p += 1
        round_no += 1
    return owners


def _counts(owners: Sequence[int], m: int) -> list[int]:
    counts = [0] * m
    for owner in owners:
        counts[owner] += 1
    return counts


def claim_for_joiner(
    owners: Sequence[int], names: Sequence[str], joiner: str, spread: int, seed: int
) -> list[int]:
    """The assignment after ``joiner`` joins; it gets index ``len(names)``.

    The joiner takes ``Q // (m + 1)`` partitions, each from the member that
    has most at that moment (water-filling), so counts stay even. Its
    partitions are placed near evenly spaced centres, at least ``spread``
    apart from each other (so each sits in ``spread`` distinct preference
    lists), preferring partitions whose owner is in a conflict (taking those
    repairs the conflict). Nothing but the joiner's partitions changes owner.
    """
    size = len(owners)
    m = len(names)
    joiner_index = m
    wanted = size // (m + 1)
    counts = _counts(owners, m)
    heap = [(-counts[i], rank(seed, "donor", joiner, names[i]), i) for i in range(m)]
    heapq.heapify(heap)
    give = [0] * m
    for _ in range(wanted):
        negative_count, tie, i = heapq.heappop(heap)
        give[i] += 1
        heapq.heappush(heap, (negative_count + 1, tie, i))

    result = list(owners)
    # blocked[p]: the joiner already owns a partition within spread - 1 of p.
    blocked = bytearray(size)

    def in_conflict(p: int) -> bool:
        return _conflicts(result, p, result[p], spread) > 0

    def take(p: int) -> None:
        give[result[p]] -= 1
        result[p] = joiner_index
        for d in range(-(spread - 1), spread):
            blocked[(p + d) % size] = 1

    def takeable(p: int) -> bool:
        owner = result[p]
        return owner != joiner_index and give[owner] > 0

    # Pass 1: one partition near each evenly spaced centre.
    stride = size // wanted
    offset = rank(seed, "offset", joiner) % stride
    radius = max(1, stride // 2)
    for k in range(wanted):
        centre = (offset + k * size // wanted) % size
        best, best_score = -1, None
        for d in range(-radius, radius + 1):
            p = (centre + d) % size
            if blocked[p] or not takeable(p):
                continue
            score = (not in_conflict(p), abs(d))
            if best_score is None or score < best_score:
                best, best_score = p, score
        if best >= 0:
            take(best)

    # Pass 2: donors whose quota the centres missed give anywhere, still
    # keeping the joiner's partitions apart; pass 3 gives up on spacing
    # (only possible when the ring is nearly full of joiner-sized gaps).
    if sum(give):
        candidates = sorted(
            (p for p in range(size) if takeable(p)),
            key=lambda p: (not in_conflict(p), rank(seed, "fill", joiner, p)),
        )
        for p in candidates:
            if takeable(p) and not blocked[p]:
                take(p)
        for p in candidates:
            if takeable(p):
                take(p)
    return result


def _walk(owners: Sequence[int], q: int, spread: int) -> tuple[int, ...]:
    """First ``spread`` distinct owners walking clockwise from partition ``q``."""
    size = len(owners)
    seen: list[int] = []
    step = q
    while len(seen) < spread:
        owner = owners[step % size]
        if owner not in seen:
            seen.append(owner)
        step += 1
    return tuple(seen)


def release_leaver(
    owners: Sequence[int], names: Sequence[str], leaver: int, spread: int, seed: int
) -> list[int]:
    """The assignment after member index ``leaver`` leaves, renumbered.

    Requires more than ``spread`` members after the leave (smaller rings are
    re-dealt by the caller). Each freed partition goes, among survivors below
    the count cap, preferably to one that owns no partition within
    ``spread - 1`` of it (no repeat), then to the one that keeps the
    projected replica load (lists of length ``spread``) most even, then to
    the one with fewest partitions. In a clean stretch the load view is
    neutral and the fewest-partitions rule water-fills; it matters with few
    members, where every survivor is a neighbour, repeats are unavoidable and
    a blind choice skews replica load. Indexes above ``leaver`` shift down
    by one. Nothing but the leaver's partitions changes owner.
    """
    size = len(owners)
    m = len(names)
    counts = _counts(owners, m)
    freed = [p for p in range(size) if owners[p] == leaver]
    survivors = [i for i in range(m) if i != leaver]
    heirs = len(survivors)
    cap = max(-(-size // heirs), size * (100 + COUNT_SLACK_PERCENT) // (100 * heirs))

    # Until a freed partition is handed out it still counts as the leaver's,
    # so every walk stays defined; the leaver's own load is ignored.
    result = list(owners)
    walks = [_walk(result, q, spread) for q in range(size)]
    load = [0] * m
    for walk in walks:
        for member in walk:
            load[member] += 1

    def projected(i: int) -> int:
        # Replica load expected once member i reaches the mean count: each
        # partition still to come puts it in about `spread` more lists.
        # Scaled by `heirs` so the mean (size / heirs) stays an integer.
        return heirs * load[i] + spread * (size - heirs * counts[i])

    for p in freed:
        # Walks that reach p: their owners before p hold fewer than `spread`
        # distinct members. Which walks those are does not depend on p's owner.
        reaching = [p]
        distinct: set[int] = set()
        for back in range(1, size):
            distinct.add(result[(p - back) % size])
            if len(distinct) >= spread:
                break
            reaching.append((p - back) % size)
        best_score: tuple[int, ...] | None = None
        best_heir, best_walks = -1, []
        for heir in survivors:
            if counts[heir] >= cap:
                continue
            result[p] = heir
            new_walks = [_walk(result, q, spread) for q in reaching]
            delta: dict[int, int] = {heir: -spread * heirs}
            for q, walk in zip(reaching, new_walks):
                for member in walks[q]:
                    delta[member] = delta.get(member, 0) - heirs
                for member in walk:
                    delta[member] = delta.get(member, 0) + heirs
            delta.pop(leaver, None)
            spread_cost = sum((projected(i) + d) ** 2 - projected(i) ** 2 for i, d in delta.items())
            conflicted = _conflicts(result, p, heir, spread) > 0
            score = (conflicted, spread_cost, counts[heir], rank(seed, "heir", p, names[heir]))
            if best_score is None or score < best_score:
                best_score, best_heir, best_walks = score, heir, new_walks
        result[p] = best_heir
        counts[best_heir] += 1
        for q, walk in zip(reaching, best_walks):
            for member in walks[q]:
                load[member] -= 1
            for member in walk:
                load[member] += 1
            walks[q] = walk
    return [owner - (owner > leaver) for owner in result]
