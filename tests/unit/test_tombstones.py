"""The tombstone purge rule (core.tombstones)."""

import pytest

from dynamopy.core.records import Record
from dynamopy.core.tombstones import (FOREVER_MS, grace_covers_window, held_everywhere,
                                     hint_expired, hint_ttl_ms, may_purge, min_grace_s,
                                     no_older_copy_elsewhere, no_recent_exit,
                                     seconds_text,
                                     old_enough)
from dynamopy.core.versions import compose

DAY_MS = 86_400_000
NOW = 1_800_000_000_000
GRACE = 10 * 86_400.0


def tomb(age_ms: int, deleted=True) -> Record:
    return Record(compose(NOW - age_ms, 0, 3), deleted=deleted)


def test_old_enough_is_strictly_past_the_grace():
    assert old_enough(tomb(11 * DAY_MS), NOW, GRACE)
    assert not old_enough(tomb(9 * DAY_MS), NOW, GRACE)
    assert not old_enough(tomb(10 * DAY_MS), NOW, GRACE)
    assert not old_enough(tomb(11 * DAY_MS, deleted=False), NOW, GRACE)  # live: never
    assert old_enough(tomb(2_000), NOW, 1.0) and not old_enough(tomb(500), NOW, 1.0)
    # to the millisecond: grace_s is seconds
    assert old_enough(tomb(10 * DAY_MS + 1), NOW, GRACE)
    assert old_enough(tomb(1_001), NOW, 1.0) and not old_enough(tomb(1_000), NOW, 1.0)


def test_every_current_replica_must_confirm_the_tombstone_or_newer():
    v = tomb(11 * DAY_MS).version
    reps = ["a", "b", "c"]
    assert held_everywhere(v, reps, {"a": v, "b": v, "c": v + 1})
    assert not held_everywhere(v, reps, {"a": v, "b": v})            # c did not answer
    assert not held_everywhere(v, reps, {"a": v, "b": v, "c": None})  # c holds nothing
    assert not held_everywhere(v, reps, {"a": v, "b": v, "c": v - 1})  # c holds older
    assert not held_everywhere(v, [], {})


def test_may_purge_needs_age_confirmation_and_a_settled_ring():
    t = tomb(11 * DAY_MS)
    everyone = {"a": t.version, "b": t.version}
    assert may_purge(t, NOW, GRACE, ["a", "b"], [], everyone, change_in_progress=False)
    assert not may_purge(t, NOW, GRACE, ["a", "b"], [], everyone, change_in_progress=True)
    assert not may_purge(tomb(DAY_MS), NOW, GRACE, ["a", "b"], [],
                         {"a": tomb(DAY_MS).version, "b": tomb(DAY_MS).version}, False)
    assert not may_purge(t, NOW, GRACE, ["a", "b"], [], {"a": t.version}, False)


def test_no_other_member_may_hold_an_older_copy():
    """A member that stopped replicating the key in a ring change may keep an old copy until
    its late hand-off gives it to the new owners: with the tombstone gone they would take it
    back. Every other member must answer, and hold nothing, the tombstone or newer."""
    t = tomb(11 * DAY_MS)
    v = t.version
    held = {"a": v, "b": v}
    assert no_older_copy_elsewhere(v, ["c", "d"], {"c": None, "d": v + 1})
    assert no_older_copy_elsewhere(v, ["c"], {"c": v})
    assert no_older_copy_elsewhere(v, [], {})
    assert not no_older_copy_elsewhere(v, ["c", "d"], {"c": None})       # d did not answer
    assert not no_older_copy_elsewhere(v, ["c"], {"c": v - 1})           # c holds older
    assert may_purge(t, NOW, GRACE, ["a", "b"], ["c"], {**held, "c": None}, False)
    assert not may_purge(t, NOW, GRACE, ["a", "b"], ["c"], {**held, "c": v - 1}, False)
    assert not may_purge(t, NOW, GRACE, ["a", "b"], ["c"], held, False)


def test_no_purge_until_the_grace_has_passed_since_a_member_left_the_ring():
    """A member that left the ring is asked by no purge but may still hand off old copies,
    within the grace (the operator rule): no tombstone goes until that grace has passed."""
    t = tomb(11 * DAY_MS)
    held = {"a": t.version, "b": t.version}
    assert no_recent_exit(0, NOW, GRACE)                          # nobody ever left
    assert no_recent_exit(NOW - 10 * DAY_MS - 1, NOW, GRACE)
    assert not no_recent_exit(NOW - 10 * DAY_MS, NOW, GRACE)
    assert not no_recent_exit(NOW - DAY_MS, NOW, GRACE)
    assert may_purge(t, NOW, GRACE, ["a", "b"], [], held, False, NOW - 10 * DAY_MS - 1)
    assert not may_purge(t, NOW, GRACE, ["a", "b"], [], held, False, NOW - DAY_MS)


def test_a_hint_expires_before_any_tombstone_that_could_shadow_it_is_purged():
    """A hint older than the grace may be shadowed by a purged tombstone: it expires at 90%
    of the grace less the clock bound, and never later than a purge of a newer tombstone on
    a clock that bound ahead."""
    grace_s, bound_ms = 100.0, 500
    assert hint_ttl_ms(grace_s, bound_ms) == 89_500
    assert hint_ttl_ms(0.1, bound_ms) == 0
    now = 1_000_000_000
    hint = Record(compose(now - 89_501, 0, 1), value=b"old")
    assert hint_expired(hint, now, grace_s, bound_ms)
    assert not hint_expired(Record(compose(now - 89_000, 0, 1)), now, grace_s, bound_ms)
    # Any tombstone newer than a live hint that a purger whose clock is `bound` ahead may
    # purge now is older than the grace on that clock: the hint has expired here.
    for age_ms in range(0, 200_000, 997):
        tomb = Record(compose(now - age_ms, 0, 2), deleted=True)
        if old_enough(tomb, now + bound_ms, grace_s):
            older = Record(compose(now - age_ms, 0, 1))
            assert hint_expired(older, now, grace_s, bound_ms)


def test_a_grace_is_accepted_only_if_a_hint_outlives_the_hint_window():
    """The rule checked at start-up and by POST /cluster/config: a hint lives
    ``hint_ttl_ms`` (90% of the grace less the clock bound), so a grace whose hints would
    expire before the hint window ends is refused; a hint stored for a member that is back
    within the window is then never dropped undelivered."""
    window_s, bound_ms = 3600.0, 500
    least = min_grace_s(window_s, bound_ms)
    assert least == pytest.approx((3600 + 0.5) / 0.9, abs=0.002)
    assert grace_covers_window(least, window_s, bound_ms)
    assert not grace_covers_window(least - 0.001, window_s, bound_ms)
    # At the least grace a hint as old as the window is still delivered; just below, not.
    now = 1_000_000_000
    hint = Record(compose(now - 3_600_000, 0, 1), value=b"v")
    assert not hint_expired(hint, now, least, bound_ms)
    assert hint_expired(hint, now, least - 0.002, bound_ms)
    # A grace equal to the window is not enough (hints expire at 90% of it), nor a grace
    # below it; the clock bound counts too.
    assert not grace_covers_window(3600.0, 3600.0, 0)
    assert not grace_covers_window(60.0, 3600.0, 500)
    assert grace_covers_window(4000.0, 3600.0, 0)
    assert not grace_covers_window(4000.0, 3600.0, 400_000)
    # No window (no hints): any grace; the defaults (10 days, 3 h, 500 ms) by far.
    assert grace_covers_window(0.4, 0.0, 500) and min_grace_s(0.0, 500) == 0.0
    assert grace_covers_window(864000.0, 10800.0, 500)
    # (4176.703 s with 500 ms: the float rounding makes the least grace three steps above
    # min_grace_s's first guess, not two)
    for window_s in (0.5, 1.0, 7.3, 10800.0, 123456.789, 4176.703):
        for bound_ms in (0, 1, 500, 5000):
            least = min_grace_s(window_s, bound_ms)
            assert grace_covers_window(least, window_s, bound_ms)
            assert not grace_covers_window(least - 0.001, window_s, bound_ms)


def test_a_huge_or_infinite_grace_means_forever_not_an_overflow():
    """The log accepts any grace > 0 (1e308, even inf from a JSON ``Infinity``): the hint
    TTL and the purge age cap it instead of raising OverflowError (a 500 that schemathesis
    found through the new check; a hint store or a purge pass would have raised too)."""
    for grace in (4.47e307, 1e308, float("inf")):
        assert hint_ttl_ms(grace, 500) == FOREVER_MS - 500
        assert grace_covers_window(grace, 1e9, 500)
        assert not old_enough(tomb(11 * DAY_MS), NOW, grace)
        assert not hint_expired(Record(compose(NOW - 11 * DAY_MS, 0, 1)), NOW, grace, 500)


def test_a_hint_exactly_the_ttl_old_is_delivered_and_a_zero_clock_bound_takes_nothing_off():
    """The TTL boundary (issue 18's mutation run): with --max-clock-offset-ms 0 the TTL is 90%
    of the grace exactly; a hint that old is still delivered, one millisecond older is not."""
    now, grace_s = 1_000_000_000, 100.0
    assert hint_ttl_ms(grace_s, 0) == 90_000
    assert not hint_expired(Record(compose(now - 90_000, 0, 1)), now, grace_s, 0)
    assert hint_expired(Record(compose(now - 90_001, 0, 1)), now, grace_s, 0)


def test_seconds_print_as_an_operator_types_them():
    """The refusal of a short grace names the least grace and the window in seconds as an
    operator would type them (start-up error, POST /cluster/config's 400 detail)."""
    assert seconds_text(10800.0) == "10800"
    assert seconds_text(12000.556) == "12000.556"
    assert seconds_text(4000.5) == "4000.5"
    assert seconds_text(0.25) == "0.25"
    assert seconds_text(100.0) == "100"
    assert seconds_text(0.0) == "0"
