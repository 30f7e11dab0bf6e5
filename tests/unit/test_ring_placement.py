"""Balance, movement and range properties of the ring (no timing)."""

from __future__ import annotations

import bisect
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ring import TOKEN_SPACE, Ring

N = 3
BALANCE_BOUND = 1.10
tokens = st.integers(min_value=0, max_value=TOKEN_SPACE - 1)


def names(count: int, prefix: str = "n") -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def balance(ring: Ring, n: int = N) -> tuple[float, float]:
    members = len(ring.members)
    return max(ring.ownership().values()) * members, max(ring.replica_load(n).values()) * members / n


def moved_share(before: Ring, after: Ring, n: int = N) -> float:
    return sum(move.end - move.start for move in before.moves(after, n)) / TOKEN_SPACE


def check_moves_shape(before: Ring, after: Ring, n: int) -> None:
    """Sorted, non-overlapping, non-wrapping, merged, and only set changes."""
    moves = before.moves(after, n)
    for move in moves:
        assert 0 <= move.start < move.end <= TOKEN_SPACE
        assert set(move.old) != set(move.new)
        assert len(move.old) == len(move.new) == n
        assert move.gained and move.lost
    for earlier, later in zip(moves, moves[1:]):
        assert earlier.end <= later.start
        if earlier.end == later.start:
            assert (earlier.old, earlier.new) != (later.old, later.new)


# --------------------------------------------------------------------- balance


@pytest.mark.parametrize("size", range(3, 65))
def test_fresh_ring_is_balanced(size: int) -> None:
    ring = Ring.build(names(size))
    primary, replica = balance(ring)
    assert primary <= BALANCE_BOUND and replica <= BALANCE_BOUND
    grown = ring.add("joiner")
    assert max(balance(grown)) <= BALANCE_BOUND
    if size > N:
        shrunk = ring.remove(f"n{size // 2}")
        assert max(balance(shrunk)) <= BALANCE_BOUND


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.sampled_from([3, 5, 8, 16, 40, 64]))
def test_any_seed_is_balanced(seed: int, size: int) -> None:
    assert max(balance(Ring.build(names(size, "m"), seed=seed))) <= BALANCE_BOUND


# -------------------------------------------------------- movement under churn


@settings(max_examples=25, deadline=None)
@given(
    start=st.integers(3, 12),
    seed=st.integers(0, 2**32 - 1),
    ops=st.lists(st.integers(0, 2**16), min_size=1, max_size=10),
)
def test_movement_and_balance_after_random_adds_and_removes(start: int, seed: int, ops: list[int]) -> None:
    """Each add changes only sets that gain the joiner, and the joiner takes
    N/(m+1) of the keyspace within 15%; each remove changes only sets that
    held the leaver; balance stays within 1.10 at every size >= N."""
    ring = Ring.build(names(start), seed=seed)
    next_id = start
    for op in ops:
        size = len(ring.members)
        if size <= N or op % 2 == 0:
            joiner = f"n{next_id}"
            next_id += 1
            after = ring.add(joiner)
            for move in ring.moves(after, N):
                assert joiner in move.new and joiner not in move.old
            assert moved_share(ring, after) == pytest.approx(N / (size + 1), rel=0.15)
        else:
            leaver = ring.members[op % size]
            after = ring.remove(leaver)
            for move in ring.moves(after, N):
                assert leaver in move.old and leaver not in move.new
        check_moves_shape(ring, after, N)
        ring = after
        assert max(balance(ring)) <= BALANCE_BOUND


@settings(max_examples=20, deadline=None)
@given(start=st.integers(4, 10), ops=st.lists(st.integers(0, 2**16), min_size=1, max_size=6), n=st.integers(1, 4))
def test_movement_is_minimal_for_any_n_above_spread_sized_rings(start: int, ops: list[int], n: int) -> None:
    """While every ring has more than ``spread`` members, changes touch only
    the joiner's or leaver's sets for every list length, not just N."""
    ring = Ring.build(names(start), partitions=1024)
    next_id = start
    for op in ops:
        size = len(ring.members)
        if size <= max(N + 1, n) or op % 2 == 0:
            member = f"n{next_id}"
            next_id += 1
            after = ring.add(member)
            assert all(member in move.gained for move in ring.moves(after, n))
        else:
            member = ring.members[op % size]
            after = ring.remove(member)
            assert all(member in move.lost for move in ring.moves(after, n))
        ring = after


def test_tiny_rings_are_re_dealt_without_moving_full_sets() -> None:
    """At most ``spread`` members: every list of length ``spread`` holds every
    member whatever the layout, so add and remove re-deal a clean layout, the
    one ``build`` gives, and still no N-set changes without the member."""
    five = Ring.build(names(5))
    three = five.remove("n1").remove("n3")
    assert three == Ring.build(["n0", "n2", "n4"])
    assert all("n3" in move.lost for move in five.remove("n1").moves(three, N))
    assert Ring.build(["a", "b"]).add("c") == Ring.build(["a", "b", "c"])
    assert max(balance(three.add("n9"))) <= BALANCE_BOUND


# --------------------------------------------------- moves agree with lists


@settings(max_examples=25, deadline=None)
@given(start=st.integers(3, 10), grow=st.booleans(), n=st.integers(1, 3), seed=st.integers(0, 1000))
def test_moves_agree_with_comparing_preference_lists(start: int, grow: bool, n: int, seed: int) -> None:
    before = Ring.build(names(start), partitions=512)
    after = before.add("new") if grow or start <= N else before.remove(f"n{seed % start}")
    moves = before.moves(after, n)
    starts = [move.start for move in moves]
    rng = random.Random(seed)
    samples = [rng.randrange(TOKEN_SPACE) for _ in range(400)]
    samples += [move.start for move in moves] + [move.end - 1 for move in moves]
    for token in samples:
        old = before.preference_list_for_token(token, n)
        new = after.preference_list_for_token(token, n)
        index = bisect.bisect_right(starts, token) - 1
        covering = moves[index] if index >= 0 and token < moves[index].end else None
        if set(old) == set(new):
            assert covering is None
        else:
            assert covering is not None
            assert (covering.old, covering.new) == (tuple(old), tuple(new))
    check_moves_shape(before, after, n)


@settings(max_examples=30, deadline=None)
@given(size=st.integers(1, 10), data=st.data())
def test_ranges_of_agrees_with_preference_lists(size: int, data: st.DataObject) -> None:
    ring = Ring.build(names(size), partitions=256)
    n = data.draw(st.integers(1, size))
    member = data.draw(st.sampled_from(ring.members))
    ranges = ring.ranges_of(member, n)
    for (start, end), (next_start, _) in zip(ranges, ranges[1:]):
        assert start < end < next_start
    covered = sum(end - start for start, end in ranges)
    assert covered / TOKEN_SPACE == pytest.approx(ring.replica_load(n)[member])
    for token in data.draw(st.lists(st.integers(0, TOKEN_SPACE - 1), min_size=1, max_size=50)):
        inside = any(start <= token < end for start, end in ranges)
        assert inside == (member in ring.preference_list_for_token(token, n))


def test_failover_load_is_spread() -> None:
    """A down member's first fallback is not always the same member: its
    primary partitions' fallbacks spread over many others."""
    ring = Ring.build(names(16))
    victim = "n0"
    fallbacks = set()
    for partition in range(ring.partition_count):
        if ring.owner_of_partition(partition) == victim:
            walk = list(ring.walk_token(ring.partition_range(partition)[0]))
            fallbacks.add(walk[N])
    assert len(fallbacks) >= 8
