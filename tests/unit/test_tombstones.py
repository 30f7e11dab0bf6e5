"""The tombstone purge rule (core.tombstones)."""

from dynamopy.core.records import Record
from dynamopy.core.tombstones import (held_everywhere, hint_expired, hint_ttl_ms, may_purge,
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
    assert may_purge(t, NOW, GRACE, ["a", "b"], everyone, change_in_progress=False)
    assert not may_purge(t, NOW, GRACE, ["a", "b"], everyone, change_in_progress=True)
    assert not may_purge(tomb(DAY_MS), NOW, GRACE, ["a", "b"],
                         {"a": tomb(DAY_MS).version, "b": tomb(DAY_MS).version}, False)
    assert not may_purge(t, NOW, GRACE, ["a", "b"], {"a": t.version}, False)


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


def test_a_hint_exactly_the_ttl_old_is_delivered_and_a_zero_clock_bound_takes_nothing_off():
    """The TTL boundary (issue 18's mutation run): with --max-clock-offset-ms 0 the TTL is 90%
    of the grace exactly; a hint that old is still delivered, one millisecond older is not."""
    now, grace_s = 1_000_000_000, 100.0
    assert hint_ttl_ms(grace_s, 0) == 90_000
    assert not hint_expired(Record(compose(now - 90_000, 0, 1)), now, grace_s, 0)
    assert hint_expired(Record(compose(now - 90_001, 0, 1)), now, grace_s, 0)
