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


# ---- the durable mark across restarts (issue 19 item 1) ---------------------------------

from dynamopy.core.versions import (extended_mark, physical_ms, resume_floor,  # noqa: E402
                                    resume_wait_ms)

LEAD = 1_000


class _Process:
    """One node's clock and durable mark, run as node/version_clock.py runs them: the
    mark is extended before a version beyond it is used; a restart observes the floor and
    waits resume_wait_ms; the background refresh keeps the mark LEAD ahead."""

    def __init__(self, number: int, wall: int, mark: int = 0):
        self.wall, self.mark = wall, mark
        wait = resume_wait_ms(mark, wall, LEAD) if mark else 0
        self.wall += wait
        self.clock = HybridClock(number)
        if mark:
            self.clock.observe(resume_floor(mark))

    def refresh(self) -> None:
        self.mark = extended_mark(self.mark, self.wall + LEAD // 2, self.wall, LEAD)

    def issue(self) -> int:
        v = self.clock.next(self.wall)
        if physical_ms(v) > self.mark:
            self.mark = extended_mark(self.mark, physical_ms(v), self.wall, LEAD)
        assert physical_ms(v) <= self.mark
        return v


@pytest.mark.parametrize("clean", [True, False])
def test_restarts_never_push_versions_ahead_of_the_wall_clock(clean):
    """The issue-19 drift: every restart added a 10 s margin to a mark that already held
    one. With 100 restarts, 10 ms apart, versions stay at the wall clock (after the bounded
    start-up wait) and never repeat."""
    wall, mark, issued = 1_700_000_000_000, 0, []
    for _ in range(100):
        p = _Process(1, wall, mark)
        assert p.wall - wall <= LEAD + 1          # the start-up wait is bounded
        p.refresh()
        v = p.issue()
        issued.append(v)
        assert physical_ms(v) == p.wall           # at the wall clock, not ahead of it
        mark = p.clock.last_ms if clean else p.mark   # a clean stop stores the exact time
        assert mark <= p.wall + LEAD
        wall = p.wall + 10
    assert issued == sorted(issued) and len(set(issued)) == len(issued)


def test_a_restart_after_the_wall_clock_stepped_back_reissues_nothing():
    p = _Process(2, 10_000_000)
    p.refresh()
    before = [p.issue() for _ in range(5)]
    # The wall clock steps back one hour: no wait (it would take an hour), and the clock
    # continues above everything issued before.
    q = _Process(2, 10_000_000 - 3_600_000, p.mark)
    assert q.wall == 10_000_000 - 3_600_000
    after = q.issue()
    assert after > max(before)


def test_resume_floor_covers_every_counter_and_member():
    c = HybridClock(7)
    c.observe(resume_floor(5_000))
    for counter in (0, 1, 4095):
        assert c.next(4_000) > compose(5_000, counter, MAX_MEMBER_NUMBER)


def test_resume_wait_and_extension_arithmetic():
    assert resume_wait_ms(1_000, 2_000, LEAD) == 0          # wall already past the mark
    assert resume_wait_ms(2_500, 2_000, LEAD) == 501        # wait until wall > mark
    assert resume_wait_ms(2_000 + 2 * LEAD + 1, 2_000, LEAD) == 0   # stepped back: no wait
    assert resume_wait_ms(2_000, 2_000, LEAD) == 1          # at the mark: wait past it
    assert resume_wait_ms(2_000 + 2 * LEAD, 2_000, LEAD) == 2 * LEAD + 1  # "more than" 2 leads
    assert extended_mark(5_000, 100, 1_000, LEAD) == 5_000  # never lower
    assert extended_mark(0, 9_000, 1_000, LEAD) == 9_000    # covers what is needed
    assert extended_mark(0, 100, 1_000, LEAD) == 2_000      # wall + lead, not mark + lead


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


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 2**41), st.integers(0, 4095), st.integers(-5, 2**63))
def test_observe_keeps_the_larger_of_the_pair_seen_and_the_clocks(last_ms, counter, version):
    """``observe`` (which compares (physical_ms, counter) as one integer) adopts exactly the
    pair a tuple comparison of the decomposed version would, and nothing for version <= 0."""
    from dynamopy.core.versions import decompose
    c = HybridClock(1, last_ms, counter)
    c.observe(version)
    if version <= 0:
        expected = (last_ms, counter)
    else:
        ms, cnt, _ = decompose(version)
        expected = max((ms, cnt), (last_ms, counter))
    assert (c.last_ms, c.counter) == expected
    assert version <= 0 or c.next(0) > version
