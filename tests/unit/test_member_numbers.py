"""Member numbers over a long cluster life (issue 19 item 3): removed members' numbers are
reused safely, and a join that cannot get one is refused before it is proposed."""

from dataclasses import replace

import pytest

from ring import Ring

from dynamopy.core.membership import (REUSE_AFTER_MS, ClusterState, InvalidEntry,
                                      bootstrap_entry, Settings, validate)
from dynamopy.core.versions import MAX_MEMBER_NUMBER

T0 = 1_800_000_000_000


def _seeded() -> ClusterState:
    seeds = [{"id": f"s{i}", "url": f"http://s{i}", "peer": f"s{i}:1"} for i in (1, 2, 3)]
    s = ClusterState().apply(bootstrap_entry(seeds, Settings()))
    # A small ring keeps 1,100 joins fast; placement plays no part in numbering.
    return replace(s, ring=Ring.build(["s1", "s2", "s3"], partitions=16))


def _cycle(s: ClusterState, mid: str, at_ms: int) -> tuple[ClusterState, int]:
    """Join ``mid`` then remove it (an abandoned join), each entry validated first as the
    node does before proposing; return the state and the number it held."""
    join = {"op": "join", "id": mid, "url": f"http://{mid}", "peer": f"{mid}:1", "at_ms": at_ms}
    validate(s, join)
    s = s.apply(join)
    number = s.members[mid].number
    remove = {"op": "remove", "id": mid, "at_ms": at_ms + 500}
    validate(s, remove)
    s = s.apply(remove)
    assert mid not in s.members
    return s, number


def test_1100_join_remove_cycles_keep_joins_possible():
    """Before the fix the 1,022nd cycle's member got number 1024 (outside 1..1023) and no
    node could join again. With one cycle a second, numbers of members removed a minute ago
    are reused, and every holder of a reused number starts its clock above the removal."""
    s = _seeded()
    released_at: dict[int, int] = {}
    for i in range(1100):
        at = T0 + i * 1000
        before = s
        s, number = _cycle(s, f"m{i}", at)
        assert 1 <= number <= MAX_MEMBER_NUMBER
        assert s.epoch == before.epoch + 2 and s.skipped == before.skipped  # both applied
        if number in released_at:
            assert at >= released_at[number] + REUSE_AFTER_MS
        released_at[number] = at + 500
    again = ClusterState.from_dict(s.to_dict())
    assert again.to_dict() == s.to_dict()


@pytest.fixture(scope="module")
def exhausted() -> ClusterState:
    """Every new number used once, all their members removed at T0."""
    s = _seeded()
    i = 0
    while s.next_number <= MAX_MEMBER_NUMBER:
        s, _ = _cycle(s, f"m{i}", T0)
        i += 1
    return s


def test_a_reused_number_carries_its_clock_floor(exhausted):
    s = exhausted
    join = {"op": "join", "id": "late", "url": "http://late", "peer": "late:1",
            "at_ms": T0 + REUSE_AFTER_MS + 500}
    s = s.apply(join)
    m = s.members["late"]
    assert m.number == 4 and m.floor_ms == T0 + 500 + REUSE_AFTER_MS   # lowest, not before
    assert 4 not in s.free_numbers


def test_a_join_that_cannot_get_a_number_is_refused_before_it_is_proposed(exhausted):
    s = exhausted
    join = {"op": "join", "id": "x", "url": "http://x", "peer": "x:1", "at_ms": T0 + 1000}
    with pytest.raises(InvalidEntry) as e:
        validate(s, join)          # the node validates before proposing: a 409, no entry
    assert e.value.status == 409 and e.value.code == "conflict"
    assert "no member number free" in e.value.detail and "s from now" in e.value.detail
    # Without a time (an old entry), nothing is reused: still refused, never a bad number.
    with pytest.raises(InvalidEntry):
        validate(s, {k: v for k, v in join.items() if k != "at_ms"})


def test_a_removal_without_a_time_frees_nothing():
    s = _seeded()
    s = s.apply({"op": "join", "id": "a", "url": "http://a", "peer": "a:1"})
    s = s.apply({"op": "remove", "id": "a"})
    assert s.free_numbers == {}


def test_finish_leave_frees_the_number():
    s = _seeded()
    s = s.apply({"op": "join", "id": "a", "url": "http://a", "peer": "a:1", "at_ms": T0})
    s = s.apply({"op": "finish_join", "id": "a", "change_epoch": s.change_epoch})
    s = s.apply({"op": "leave", "id": "a"})
    s = s.apply({"op": "finish_leave", "id": "a", "at_ms": T0 + 7, "change_epoch": s.change_epoch})
    assert s.free_numbers == {4: T0 + 7 + REUSE_AFTER_MS}


def test_a_member_leaving_the_ring_is_timed_for_the_tombstone_purge():
    """``last_exit_ms`` (core.tombstones: no purge within the grace after a member left): the
    newest ``finish_leave`` or abandoned join with a time; an entry without one keeps it."""
    s = _seeded()
    assert s.last_exit_ms == 0
    s = s.apply({"op": "join", "id": "a", "url": "http://a", "peer": "a:1", "at_ms": T0})
    s = s.apply({"op": "remove", "id": "a", "abandon_join": True, "at_ms": T0 + 3,
                 "change_epoch": s.change_epoch})
    assert "a" not in s.members and s.last_exit_ms == T0 + 3
    s = s.apply({"op": "join", "id": "b", "url": "http://b", "peer": "b:1", "at_ms": T0 + 4})
    s = s.apply({"op": "finish_join", "id": "b", "change_epoch": s.change_epoch})
    assert s.last_exit_ms == T0 + 3                       # a join takes nobody out
    s = s.apply({"op": "leave", "id": "b"})
    assert s.last_exit_ms == T0 + 3                       # not out until the finish
    s = s.apply({"op": "finish_leave", "id": "b", "at_ms": T0 + 9, "change_epoch": s.change_epoch})
    assert s.last_exit_ms == T0 + 9
    assert ClusterState.from_dict(s.to_dict()) == s
    s = s.apply({"op": "join", "id": "c", "url": "http://c", "peer": "c:1", "at_ms": T0 + 10})
    s = s.apply({"op": "remove", "id": "c", "abandon_join": True, "change_epoch": s.change_epoch})
    assert "c" not in s.members and s.last_exit_ms == T0 + 9   # no time: unchanged
