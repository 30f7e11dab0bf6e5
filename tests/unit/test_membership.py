import pytest

from dynamopy.core.membership import (ClusterState, InvalidEntry, Settings, bootstrap_entry,
                                      validate)

SEEDS = [{"id": f"n{i}", "url": f"http://h:{8000 + i}", "peer": f"h:{9000 + i}"} for i in (1, 2, 3)]


def boot(**kw) -> ClusterState:
    return ClusterState().apply(bootstrap_entry(SEEDS, Settings(**kw)))


def test_bootstrap_numbers_members_and_builds_ring():
    s = boot()
    assert s.epoch == 1 and s.bootstrapped
    assert [s.members[m].number for m in ("n1", "n2", "n3")] == [1, 2, 3]
    assert s.acceptors == ("n1", "n2", "n3")
    assert sorted(s.ring.members) == ["n1", "n2", "n3"]


def test_bootstrap_is_idempotent_second_one_is_a_noop():
    s = boot()
    again = s.apply(bootstrap_entry(SEEDS, Settings()))
    assert again.epoch == 2 and again.members == s.members and again.skipped == 1


def test_join_then_finish_join_switches_the_ring():
    s = boot().apply({"op": "join", "id": "n4", "url": "http://h:8004", "peer": "h:9004"})
    assert s.members["n4"].state == "joining" and s.members["n4"].number == 4
    assert "n4" not in s.ring.members and "n4" in s.pending_ring.members
    assert s.gainers() == ("n4",) and s.change_epoch == 2
    assert all(m.gained == ("n4",) for m in s.transfers())
    s = s.apply({"op": "finish_join", "id": "n4"})
    assert s.members["n4"].state == "normal" and "n4" in s.ring.members and s.change is None


def test_second_change_while_one_is_in_progress_is_refused():
    s = boot().apply({"op": "join", "id": "n4", "url": "u4", "peer": "p4"})
    with pytest.raises(InvalidEntry) as e:
        validate(s, {"op": "join", "id": "n5", "url": "u5", "peer": "p5"})
    assert e.value.status == 409 and "in progress" in e.value.detail


def test_join_with_existing_id_at_other_address_is_a_conflict():
    with pytest.raises(InvalidEntry) as e:
        validate(boot(), {"op": "join", "id": "n2", "url": "http://other", "peer": "o:1"})
    assert e.value.status == 409 and "already a member" in e.value.detail


def test_leave_and_remove_unknown_member_is_404():
    for op in ("leave", "remove"):
        with pytest.raises(InvalidEntry) as e:
            validate(boot(), {"op": op, "id": "nope"})
        assert e.value.status == 404 and e.value.code == "unknown_member"


def test_leave_then_finish_leave_and_numbers_never_reused():
    s = boot(n=2, r=1, w=1).apply({"op": "join", "id": "n4", "url": "u", "peer": "p"}).apply(
        {"op": "finish_join", "id": "n4"})
    s = s.apply({"op": "leave", "id": "n4"})
    assert s.members["n4"].state == "leaving" and "n4" not in s.pending_ring.members
    s = s.apply({"op": "finish_leave", "id": "n4"})
    assert "n4" not in s.members and "n4" not in s.ring.members
    # numbers are never reused
    s = s.apply({"op": "join", "id": "n4", "url": "u4", "peer": "p4"})
    assert s.members["n4"].number == 5


def test_seeds_cannot_leave_or_be_removed():
    for op in ("leave", "remove"):
        with pytest.raises(InvalidEntry, match="seed"):
            validate(boot(), {"op": op, "id": "n2"})


def test_removing_a_dead_joiner_abandons_its_join():
    s = boot().apply({"op": "join", "id": "n4", "url": "u", "peer": "p"})
    s = s.apply({"op": "remove", "id": "n4"})
    assert "n4" not in s.members and s.change is None and s.pending_ring is None
    assert sorted(s.ring.members) == ["n1", "n2", "n3"]


def test_an_abandoned_join_applies_only_while_that_join_is_in_progress():
    s = boot().apply({"op": "join", "id": "n4", "url": "u", "peer": "p"})
    abandon = {"op": "remove", "id": "n4", "abandon_join": True, "change_epoch": s.change_epoch,
               "reason": "join abandoned"}
    gone = s.apply(abandon)
    assert "n4" not in gone.members and gone.change is None
    # The join finished before the abandon committed: n4 stays (no removal of a member).
    finished = s.apply({"op": "finish_join", "id": "n4"})
    after = finished.apply(abandon)
    assert after.members["n4"].state == "normal" and after.change is None
    assert after.skipped == finished.skipped + 1
    # A later join of the same id is a different change: the old abandon does not apply.
    rejoined = gone.apply({"op": "join", "id": "n4", "url": "u", "peer": "p"})
    assert rejoined.apply(abandon).change == ("join", "n4")


def test_set_config_validates_rw():
    s = boot().apply({"op": "set_config", "r": 1, "w": 3})
    assert (s.settings.r, s.settings.w) == (1, 3)
    with pytest.raises(InvalidEntry):
        validate(s, {"op": "set_config", "w": 4})
    with pytest.raises(InvalidEntry):
        validate(s, {"op": "set_config", "n": 5})


def test_snapshot_roundtrip():
    s = boot().apply({"op": "join", "id": "n4", "url": "u", "peer": "p"})
    again = ClusterState.from_dict(s.to_dict())
    assert again.to_dict() == s.to_dict()
    assert again.ring == s.ring and again.pending_ring == s.pending_ring


def test_same_entries_same_state_everywhere():
    entries = [bootstrap_entry(SEEDS, Settings()),
               {"op": "join", "id": "n4", "url": "u", "peer": "p"},
               {"op": "finish_join", "id": "n4"},
               {"op": "set_config", "r": 3}]
    a = b = ClusterState()
    for e in entries:
        a = a.apply(e)
    for e in entries:
        b = b.apply(dict(e))
    assert a.to_dict() == b.to_dict()


def test_a_re_committed_request_is_a_no_op():
    s = boot().apply({"op": "set_config", "r": 1, "rid": "a"})
    s = s.apply({"op": "set_config", "r": 3, "rid": "b"})
    s = s.apply({"op": "set_config", "r": 1, "rid": "a"})  # the retry of "a" commits again
    assert s.settings.r == 3 and s.epoch == 4
    again = ClusterState.from_dict(s.to_dict())
    assert again.apply({"op": "set_config", "r": 1, "rid": "b"}).settings.r == 3
