"""core/membership.py, the edges the mutation run (issue 18, session 5) found untested: the
REST answer (status, code, detail) of the refusals added with group changes, merged removals
and number reuse; group-change sizes and settings; request ids across group changes; who
is being removed; snapshots of zones, clock floors, moved groups and older settings."""

from dataclasses import replace

import pytest

from dynamopy.core.membership import (REUSE_AFTER_MS, ClusterState, InvalidEntry, Settings,
                                      bootstrap_entry, validate)
from dynamopy.core.versions import MAX_MEMBER_NUMBER

T0 = 1_800_000_000_000


def _boot(k=3, zones=None, **kw) -> ClusterState:
    seeds = [{"id": f"n{i}", "url": f"u{i}", "peer": f"p{i}",
              **({"zone": zones[i - 1]} if zones else {})} for i in range(1, k + 1)]
    return ClusterState().apply(bootstrap_entry(seeds, Settings(**kw)))


def _joined(s: ClusterState, mid: str, **extra) -> ClusterState:
    s = s.apply({"op": "join", "id": mid, "url": f"u-{mid}", "peer": f"p-{mid}", **extra})
    return s.apply({"op": "finish_join", "id": mid, "change_epoch": s.change_epoch})


def _joining() -> ClusterState:
    return _boot().apply({"op": "join", "id": "n4", "url": "u4", "peer": "p4"})


def _removing_n4() -> ClusterState:
    return _boot(4).apply({"op": "remove", "id": "n4", "merge": True})


def _removing_two() -> tuple[ClusterState, str, str]:
    """Five members, n=3: n5's removal and a dead gainer's merged into it."""
    s = _boot(5).apply({"op": "remove", "id": "n5", "merge": True})
    y = s.gainers()[0]
    return s.apply({"op": "remove", "id": y, "merge": True}), y, s.gainers()[1]


def test_a_third_merge_below_n_is_refused_naming_every_member_being_removed():
    s, y, z = _removing_two()
    assert s.leaving() == ("n5", y) and z in s.gainers()
    with pytest.raises(InvalidEntry) as e:
        validate(s, {"op": "remove", "id": z, "merge": True})
    assert (e.value.status, e.value.code, e.value.detail) == (
        409, "conflict",
        f"cannot remove {z}: with n5, {y} being removed too, 2 members would be fewer than n=3")


def _no_number_left(waiting_ms: int) -> ClusterState:
    """Every number held or held by a member removed less than a minute ago; the one
    freed first becomes reusable ``waiting_ms`` after T0."""
    return replace(_boot(), next_number=MAX_MEMBER_NUMBER + 1,
                   free_numbers={5: T0 + waiting_ms, 9: T0 + REUSE_AFTER_MS})


def _join_at(at_ms=None):
    return {"op": "join", "id": "x", "url": "ux", "peer": "px",
            **({"at_ms": at_ms} if at_ms is not None else {})}


REFUSALS = [
    # (state, entry, status, code, whole detail)
    (_joining, {"op": "set_group", "group": ["n1", "n2", "n4"], "from_group": ["n1", "n2", "n3"]},
     409, "conflict", "n4 is joining: only a normal member can enter the metadata group"),
    (_boot, {"op": "set_group", "group": ["n1", "n1"], "from_group": ["n1", "n2", "n3"]},
     400, "bad_request", "metadata_group must be a non-empty list of distinct member ids"),
    (_removing_n4, {"op": "remove", "id": "n1", "merge": True}, 409, "conflict",
     "cannot remove n1: with n4 being removed too, 2 members would be fewer than n=3"),
    (_joining, {"op": "finish_join", "id": "n4", "change_epoch": 2.0}, 409, "conflict",
     "finish_join names the change at epoch 2.0; the join of n4 in progress began at epoch 2"),
    (_boot, {"op": "leave", "id": "n2"}, 409, "conflict",
     "cannot leave n2: 2 members would be fewer than n=3"),
    (_boot, {"op": "remove", "id": "n2"}, 409, "conflict",
     "cannot remove n2: 2 members would be fewer than n=3"),
    (_boot, {"op": "replace", "id": "n2"}, 409, "conflict",
     "cannot remove n2: 2 members would be fewer than n=3; add a member first, then n2 is "
     "replaced and comes back"),
    (_joining, {"op": "remove", "id": "n4", "abandon_join": True, "change_epoch": 9}, 409,
     "conflict", "n4 is no longer joining"),
    (_boot, {"op": "set_config", "tombstone_grace_s": 0}, 400, "bad_request",
     "tombstone_grace_s=0 must be a number > 0"),
    (lambda: _no_number_left(59_530), _join_at(T0), 409, "conflict",
     f"no member number free: all {MAX_MEMBER_NUMBER} are held or were held by members "
     "removed less than 60 s ago; the next becomes reusable 60 s from now"),
    (lambda: _no_number_left(400), _join_at(T0), 409, "conflict",
     f"no member number free: all {MAX_MEMBER_NUMBER} are held or were held by members "
     "removed less than 60 s ago; the next becomes reusable 0 s from now"),
    (lambda: _no_number_left(400), _join_at(), 409, "conflict",
     f"no member number free: all {MAX_MEMBER_NUMBER} are held or were held by members "
     "removed less than 60 s ago"),
]


@pytest.mark.parametrize("make,entry,status,code,detail", REFUSALS)
def test_each_refusal_answers_its_status_code_and_whole_detail(make, entry, status, code,
                                                               detail):
    s = make()
    with pytest.raises(InvalidEntry) as e:
        validate(s, entry)
    assert (e.value.status, e.value.code, e.value.detail) == (status, code, detail)
    if entry["op"] != "set_group":  # (a group change applies by its compare-and-set alone)
        after = s.apply(entry)  # committed anyway (a race): a no-op that bumps the epoch
        assert after.skipped == s.skipped + 1 and after.members == s.members


def test_a_group_change_may_add_a_normal_member_and_keep_a_leaving_one():
    s = _joined(_boot(), "n4")
    validate(s, {"op": "set_group", "group": ["n1", "n2", "n4"], "from_group": ["n1", "n2", "n3"]})
    s = _joined(s, "n5").apply({"op": "leave", "id": "n1"})
    validate(s, {"op": "set_group", "group": ["n1", "n2", "n4"], "from_group": ["n1", "n2", "n3"]})


@pytest.mark.parametrize("size,want", [(5, 5), (1, 1), (4, 3), (True, 3), ("5", 3), (None, 3)])
def test_a_group_change_sets_the_target_size_only_to_1_3_or_5(size, want):
    s = _boot()
    after = s.apply({"op": "set_group", "group": ["n1", "n2"], "from_group": ["n1", "n2", "n3"],
                     **({"size": size} if size is not None else {})})
    assert after.acceptors == ("n1", "n2") and after.settings.metadata_group_size == want


def test_set_config_takes_a_group_size_of_5_and_a_grace_below_a_second():
    s = _boot().apply({"op": "set_config", "metadata_group_size": 5})
    assert s.skipped == 0 and s.settings.metadata_group_size == 5
    s = s.apply({"op": "set_config", "hint_window_s": 0, "tombstone_grace_s": 0.5})
    assert s.skipped == 0 and s.settings.tombstone_grace_s == 0.5


def test_a_group_change_before_bootstrap_changes_nothing():
    s = ClusterState().apply({"op": "set_group", "group": ["n1"], "from_group": []})
    assert s.acceptors == () and s.skipped == 1 and s.epoch == 1


def test_a_re_committed_settings_change_is_still_dropped_after_group_changes():
    """Request ids are remembered across group changes: a retried set_config that commits
    again after a newer one (and a group change) must not undo the newer one."""
    s = _boot().apply({"op": "set_config", "hint_window_s": 10, "rid": "old"})
    s = s.apply({"op": "set_group", "group": ["n1", "n2"], "from_group": ["n1", "n2", "n3"],
                 "rid": "g1"})
    s = s.apply({"op": "set_group", "group": ["n1"], "from_group": ["n3"], "rid": "g2"})  # lost
    s = s.apply({"op": "set_config", "hint_window_s": 20, "rid": "new"})
    s = s.apply({"op": "set_config", "hint_window_s": 10, "rid": "old"})
    assert s.settings.hint_window_s == 20 and s.acceptors == ("n1", "n2")


def test_only_a_removal_counts_as_removing():
    s = _boot(4)
    assert not s.is_removing("n4")
    leaving = s.apply({"op": "leave", "id": "n4"})
    assert leaving.leaving() == ("n4",) and not leaving.is_removing("n4")
    removing = leaving.apply({"op": "remove", "id": "n4"})
    assert removing.is_removing("n4") and not removing.is_removing("n1")


def test_a_snapshot_keeps_zones_clock_floors_and_a_moved_group():
    s = _boot(zones=["a", "b", "c"])
    s = _joined(s, "n4", zone="d")
    s = s.apply({"op": "set_group", "group": ["n2", "n3", "n4"], "from_group": ["n1", "n2", "n3"]})
    floor = replace(s.members["n4"], floor_ms=T0)
    s = replace(s, members={**s.members, "n4": floor})  # as a reused number leaves it
    again = ClusterState.from_dict(s.to_dict())
    assert again == s
    assert again.members["n4"].zone == "d" and again.members["n4"].floor_ms == T0
    assert again.initial_group == ("n1", "n2", "n3") and again.acceptors == ("n2", "n3", "n4")


def test_a_new_number_and_no_zone_leave_nothing_in_the_member_view():
    s = _joined(_boot(), "n4")
    m = s.members["n4"]
    assert (m.zone, m.floor_ms) == ("", 0)
    assert m.to_dict() == {"id": "n4", "url": "u-n4", "peer": "p-n4", "number": 4,
                           "state": "normal"}


@pytest.mark.parametrize("k,want", [(5, 5), (1, 1), (0, 3)])
def test_a_snapshot_from_before_group_sizes_takes_its_group_size(k, want):
    d = (_boot(k, n=1, r=1, w=1) if k else ClusterState()).to_dict()
    del d["settings"]["metadata_group_size"]
    assert ClusterState.from_dict(d).settings.metadata_group_size == want


def test_no_change_or_a_join_takes_nobody_out():
    s = _boot()
    assert s.leaving() == () and s.change_view() is None
    assert _joining().leaving() == () and _joining().change_view() == ["join", "n4"]


def test_seeds_without_a_zone_have_none():
    s = _boot()
    assert all(m.zone == "" and "zone" not in m.to_dict() for m in s.members.values())


def test_removing_a_member_that_gains_from_a_join_is_refused_and_the_join_goes_on():
    """With n=4 over 5 members a join also hands ranges to an existing member (n1): that
    member is a gainer of the join, but only a joiner's removal may abandon a join."""
    s = _boot(5, n=4, r=2, w=2).apply({"op": "join", "id": "x", "url": "ux", "peer": "px"})
    assert "n1" in s.gainers() and s.change == ("join", "x")
    with pytest.raises(InvalidEntry) as e:
        validate(s, {"op": "remove", "id": "n1"})
    assert (e.value.status, e.value.code) == (409, "conflict")
    after = s.apply({"op": "remove", "id": "n1"})
    assert after.change == ("join", "x") and after.members == s.members and after.skipped == 1
