"""The tombstone purge rule (core.tombstones)."""

from dynamopy.core.records import Record
from dynamopy.core.tombstones import held_everywhere, may_purge, old_enough
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
