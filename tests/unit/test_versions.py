from hypothesis import given, settings, strategies as st

from dynamopy.core.versions import HybridClock, compose, decompose, MAX_MEMBER_NUMBER
import pytest


def test_versions_follow_the_wall_clock():
    c = HybridClock(3)
    v = c.next(1_700_000_000_000)
    assert decompose(v) == (1_700_000_000_000, 0, 3)


def test_monotonic_when_the_clock_steps_back():
    c = HybridClock(1)
    a = c.next(10_000)
    b = c.next(5_000)          # wall clock stepped back 5 s
    d = c.next(5_001)
    assert a < b < d
    assert decompose(b)[0] == 10_000


def test_counter_overflow_borrows_a_millisecond():
    c = HybridClock(1)
    seen = [c.next(100) for _ in range(5000)]
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert decompose(seen[-1])[0] == 101


def test_observe_moves_past_a_remote_version():
    a, b = HybridClock(1), HybridClock(2)
    remote = b.next(50_000)
    a.observe(remote)
    assert a.next(10) > remote


def test_bad_member_number():
    with pytest.raises(ValueError, match="member number"):
        HybridClock(0)
    with pytest.raises(ValueError, match="member number"):
        HybridClock(MAX_MEMBER_NUMBER + 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 2_000),
                          st.booleans()), min_size=1, max_size=200))
def test_unique_and_monotonic_across_members(steps):
    """Random interleavings of writes and observations on 4 members: all versions unique,
    each member's versions strictly increasing, observation keeps causality."""
    clocks = {m: HybridClock(m) for m in range(1, 5)}
    issued: list[int] = []
    last: dict[int, int] = {}
    for member, wall, observe_last in steps:
        c = clocks[member]
        if observe_last and issued:
            c.observe(issued[-1])
            floor = issued[-1]
        else:
            floor = 0
        v = c.next(wall)
        assert v > floor
        assert v > last.get(member, 0)
        last[member] = v
        issued.append(v)
    assert len(set(issued)) == len(issued)
    assert all(decompose(v)[2] in clocks for v in issued)


def test_compose_roundtrip():
    assert decompose(compose(123, 45, 6)) == (123, 45, 6)


# ---- found by mutation testing (python -m dynamopy.benchlib.mutation) ---------------------

def test_member_numbers_span_one_to_the_maximum():
    assert decompose(HybridClock(MAX_MEMBER_NUMBER).next(5))[2] == MAX_MEMBER_NUMBER
    for bad in (0, MAX_MEMBER_NUMBER + 1):
        with pytest.raises(ValueError):
            HybridClock(bad)


def test_a_borrowed_millisecond_starts_its_counter_at_zero():
    c = HybridClock(1)
    versions = [c.next(100) for _ in range(4097)]  # counters 0..4095, then a borrow
    assert decompose(versions[-2]) == (100, 4095, 1)
    assert decompose(versions[-1]) == (101, 0, 1)
