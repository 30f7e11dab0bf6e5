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
    s = s.apply({"op": "finish_join", "id": "n4", "change_epoch": 2})
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
        {"op": "finish_join", "id": "n4", "change_epoch": 2})
    s = s.apply({"op": "leave", "id": "n4"})
    assert s.members["n4"].state == "leaving" and "n4" not in s.pending_ring.members
    s = s.apply({"op": "finish_leave", "id": "n4", "change_epoch": 4})
    assert "n4" not in s.members and "n4" not in s.ring.members
    # numbers are never reused
    s = s.apply({"op": "join", "id": "n4", "url": "u4", "peer": "p4"})
    assert s.members["n4"].number == 5


def test_seeds_can_leave_or_be_removed_like_any_member():
    s = boot(n=2, r=1, w=1)
    for op in ("leave", "remove"):
        validate(s, {"op": op, "id": "n2"})
        assert s.apply({"op": op, "id": "n2"}).members["n2"].state == "leaving"


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
    finished = s.apply({"op": "finish_join", "id": "n4", "change_epoch": s.change_epoch})
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
               {"op": "finish_join", "id": "n4", "change_epoch": 2},
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


# ---- finish_* names the change it finishes ---------------------------------------------

JOIN4 = {"op": "join", "id": "n4", "url": "u", "peer": "p"}


def test_finish_join_without_or_with_another_change_epoch_is_refused():
    s = boot().apply(JOIN4)  # the join began at epoch 2
    for bad in ({}, {"change_epoch": 1}, {"change_epoch": 3}, {"change_epoch": "2"},
                {"change_epoch": True}):
        entry = {"op": "finish_join", "id": "n4", **bad}
        with pytest.raises(InvalidEntry) as e:
            validate(s, entry)
        assert e.value.status == 409
        after = s.apply(entry)  # committed anyway (a race): a no-op
        assert after.change == ("join", "n4") and after.skipped == s.skipped + 1
    assert s.apply({"op": "finish_join", "id": "n4", "change_epoch": 2}).change is None


def test_a_stale_finish_join_cannot_finish_a_later_join_of_the_same_member():
    """Issue 20.1: join (2), its joiner dies before finishing; remove (3) abandons the join;
    the same member joins again (4); the finish the old joiner proposes from its old state
    names epoch 2 and must not switch the ring to it."""
    s = boot().apply(JOIN4)
    stale = {"op": "finish_join", "id": "n4", "change_epoch": s.change_epoch}
    validate(s, stale)  # what the joiner checked against its own (old) state
    s = s.apply({"op": "remove", "id": "n4"})
    assert s.change is None and "n4" not in s.members
    s = s.apply(JOIN4)
    assert s.change == ("join", "n4") and s.change_epoch == 4
    after = s.apply(stale)
    assert after.change == ("join", "n4") and after.members["n4"].state == "joining"
    assert "n4" not in after.ring.members and after.skipped == s.skipped + 1
    done = after.apply({"op": "finish_join", "id": "n4", "change_epoch": 4})
    assert done.members["n4"].state == "normal" and "n4" in done.ring.members


def test_finish_leave_names_its_change_and_a_leave_turned_remove_keeps_it():
    s = boot(n=2, r=1, w=1).apply(JOIN4).apply({"op": "finish_join", "id": "n4",
                                                 "change_epoch": 2})
    s = s.apply({"op": "leave", "id": "n4"})  # epoch 4
    with pytest.raises(InvalidEntry):
        validate(s, {"op": "finish_leave", "id": "n4", "change_epoch": 2})
    with pytest.raises(InvalidEntry):
        validate(s, {"op": "finish_leave", "id": "n4"})
    s = s.apply({"op": "remove", "id": "n4"})  # the leaver died: the same change, a removal
    assert s.change == ("remove", "n4") and s.change_epoch == 4
    s = s.apply({"op": "finish_leave", "id": "n4", "change_epoch": 4})
    assert "n4" not in s.members and s.change is None


# ---- a change of the R/W defaults settles in two entries --------------------------------

def test_set_config_uses_the_larger_quorums_until_finish_config_names_it():
    s = boot(r=1, w=3)
    assert s.defaults() == (1, 3) and s.rw_in_effect is None
    s = s.apply({"op": "set_config", "r": 3, "w": 1})  # epoch 2
    assert (s.settings.r, s.settings.w) == (3, 1)
    assert s.defaults() == (3, 3) and s.config_epoch == 2
    with pytest.raises(InvalidEntry):
        validate(s, {"op": "finish_config", "change_epoch": 1})
    with pytest.raises(InvalidEntry):
        validate(s, {"op": "finish_config"})
    done = s.apply({"op": "finish_config", "change_epoch": 2})
    assert done.defaults() == (3, 1) and done.rw_in_effect is None
    with pytest.raises(InvalidEntry):  # nothing is settling any more
        validate(done, {"op": "finish_config", "change_epoch": 2})


def test_flips_before_settling_keep_the_largest_and_only_the_last_one_finishes():
    s = boot(r=1, w=3)
    s = s.apply({"op": "set_config", "r": 3, "w": 1})  # epoch 2: (3, 3)
    s = s.apply({"op": "set_config", "r": 1, "w": 2})  # epoch 3: still (3, 3)
    assert s.defaults() == (3, 3) and s.config_epoch == 3
    stale = s.apply({"op": "finish_config", "change_epoch": 2})
    assert stale.defaults() == (3, 3) and stale.skipped == s.skipped + 1
    s = s.apply({"op": "finish_config", "change_epoch": 3})
    assert s.defaults() == (1, 2)
    # a change of hint settings alone, or to the same R/W, starts no transition
    s = s.apply({"op": "set_config", "hint_window_s": 10.0}).apply(
        {"op": "set_config", "r": 1, "w": 2})
    assert s.rw_in_effect is None and s.defaults() == (1, 2)


def test_a_settling_change_survives_a_snapshot():
    s = boot(r=1, w=3).apply({"op": "set_config", "r": 3, "w": 1})
    again = ClusterState.from_dict(s.to_dict())
    assert again.defaults() == (3, 3) and again.config_epoch == s.config_epoch
    assert again.to_dict() == s.to_dict()


# ---- found by mutation testing (python -m dynamopy.benchlib.mutation) ---------------------

def _joining():
    return boot().apply({"op": "join", "id": "n4", "url": "u4", "peer": "p4"})


def _with_n4():
    s = _joining()
    return s.apply({"op": "finish_join", "id": "n4", "change_epoch": s.change_epoch})


REFUSALS = [
    # (state, entry, status, code, detail fragment): the REST answer of each refusal
    (boot, {"op": "grow"}, 400, "bad_request", "unknown operation 'grow'"),
    (ClusterState, {"op": "join", "id": "n4", "url": "u", "peer": "p"}, 503, "not_ready",
     "cluster is not bootstrapped"),
    (boot, {"op": "bootstrap", "members": SEEDS}, 409, "conflict",
     "cluster already bootstrapped"),
    (ClusterState, bootstrap_entry(SEEDS + SEEDS[:1], Settings()), 400, "bad_request",
     "bootstrap needs distinct member ids"),
    (ClusterState, {"op": "bootstrap", "members": []}, 400, "bad_request",
     "bootstrap needs distinct member ids"),
    (ClusterState, bootstrap_entry(SEEDS, Settings(n=4)), 400, "bad_request",
     "n=4 needs at least 4 seeds"),
    (ClusterState, bootstrap_entry(SEEDS, Settings(n=0)), 400, "bad_request", "n=0 needs"),
    (ClusterState, bootstrap_entry(SEEDS, Settings(r=4)), 400, "bad_request", "r=4 outside"),
    (boot, {"op": "join", "id": "n2", "url": "http://h:8002", "peer": "o:1"}, 409, "conflict",
     "n2 is already a member at http://h:8002 (h:9002)"),
    (boot, {"op": "join", "id": "n2", "url": "http://o", "peer": "h:9002"}, 409, "conflict",
     "n2 is already a member at http://h:8002 (h:9002)"),
    (boot, {"op": "join", "id": "n2", "url": "http://h:8002", "peer": "h:9002"}, 409,
     "conflict", "n2 is already a member (normal)"),
    (_joining, {"op": "join", "id": "n5", "url": "u5", "peer": "p5"}, 409, "conflict",
     "cannot join n5: a join of n4 is in progress; retry when it finishes"),
    (boot, {"op": "finish_join", "id": "n9"}, 409, "conflict", "n9 is not joining"),
    (_joining, {"op": "finish_join", "id": "n5"}, 409, "conflict", "n5 is not joining"),
    (boot, {"op": "leave", "id": "n9"}, 404, "unknown_member", "no member 'n9'"),
    (boot, {"op": "leave", "id": "n2"}, 409, "conflict",
     "cannot leave n2: 2 members would be fewer than n=3"),
    (boot, {"op": "set_group", "group": ["n1"], "from_group": ["n1", "n2"]}, 409, "conflict",
     "the metadata group changed meanwhile"),
    (boot, {"op": "set_group", "group": [], "from_group": ["n1", "n2", "n3"]}, 400,
     "bad_request", "metadata_group must be a non-empty list"),
    (boot, {"op": "set_config", "metadata_group_size": 2}, 400, "bad_request",
     "metadata_group_size=2 must be 1, 3 or 5"),
    (_joining, {"op": "leave", "id": "n4"}, 409, "conflict",
     "cannot leave n4: a join of n4 is in progress"),
    (boot, {"op": "finish_leave", "id": "n2"}, 409, "conflict", "n2 is not leaving"),
    (boot, {"op": "set_config", "x": 1}, 400, "bad_request",
     "cannot set ['x']: settable are"),
    (boot, {"op": "set_config", "r": 4}, 400, "bad_request", "r=4 outside 1..n=3"),
    (boot, {"op": "set_config", "w": 0}, 400, "bad_request", "w=0 outside 1..n=3"),
    (boot, {"op": "set_config", "w": True}, 400, "bad_request",
     "w=True must be an integer in 1..n=3"),
    (boot, {"op": "set_config", "r": 2.0}, 400, "bad_request",
     "r=2.0 must be an integer in 1..n=3"),
    # found by a user (session 13): {"r": "2"} was refused as "r=2 outside 1..n=3"
    (boot, {"op": "set_config", "r": "2"}, 400, "bad_request",
     "r='2' must be an integer in 1..n=3"),
    (boot, {"op": "set_config", "hint_window_s": -1}, 400, "bad_request",
     "hint_window_s=-1 must be a number >= 0"),
    (boot, {"op": "set_config", "hint_window_s": "1"}, 400, "bad_request",
     "hint_window_s='1' must be a number >= 0"),
    (boot, {"op": "set_config", "hint_window_s": False}, 400, "bad_request", "hint_window_s"),
    (boot, {"op": "set_config", "hint_max_bytes": 1.5}, 400, "bad_request",
     "hint_max_bytes=1.5 must be an integer >= 0"),
    (boot, {"op": "set_config", "hint_max_bytes": -1}, 400, "bad_request",
     "hint_max_bytes=-1 must be an integer >= 0"),
]


@pytest.mark.parametrize("make,entry,status,code,detail", REFUSALS)
def test_each_refusal_answers_its_status_code_and_detail(make, entry, status, code, detail):
    s = make()
    with pytest.raises(InvalidEntry) as e:
        validate(s, entry)
    assert (e.value.status, e.value.code) == (status, code)
    assert e.value.detail.startswith(detail) and str(e.value) == e.value.detail
    after = s.apply(entry)  # applied anyway (it committed): a no-op that bumps the epoch
    assert after.skipped == s.skipped + 1 and after.epoch == s.epoch + 1
    assert {**after.to_dict(), "epoch": 0, "skipped": 0} == {**s.to_dict(), "epoch": 0, "skipped": 0}


def test_set_config_accepts_its_boundaries():
    s = boot().apply({"op": "set_config", "r": 1, "w": 3, "hint_window_s": 0,
                      "hint_max_bytes": 0})
    assert s.skipped == 0
    assert (s.settings.r, s.settings.w, s.settings.hint_window_s, s.settings.hint_max_bytes) \
        == (1, 3, 0, 0)
    assert boot().apply({"op": "set_config", "hint_window_s": 2.5}).settings.hint_window_s == 2.5


def test_finishes_clear_the_pending_ring():
    s = _with_n4()
    assert s.pending_ring is None and s.change is None and s.transfers() == []
    s = s.apply({"op": "leave", "id": "n4"})
    left = s.apply({"op": "finish_leave", "id": "n4", "change_epoch": s.change_epoch})
    assert left.pending_ring is None and left.change is None and "n4" not in left.members


def test_a_leave_becomes_a_removal_and_finishes_as_one():
    s = _with_n4().apply({"op": "leave", "id": "n4"})
    s = s.apply({"op": "remove", "id": "n4"})
    assert s.change == ("remove", "n4") and s.members["n4"].state == "leaving"
    assert s.pending_ring is not None and "n4" not in s.pending_ring.members
    done = s.apply({"op": "finish_leave", "id": "n4", "change_epoch": s.change_epoch})
    assert done.skipped == 0 and "n4" not in done.members and done.change is None
    assert done.ring == s.pending_ring and done.pending_ring is None


def test_removing_a_live_normal_member_drains_it_like_a_leave():
    s = _with_n4().apply({"op": "remove", "id": "n4"})
    assert s.change == ("remove", "n4") and s.change_epoch == s.epoch
    assert s.members["n4"].state == "leaving" and "n4" not in s.pending_ring.members
    assert s.apply({"op": "finish_leave", "id": "n4",
                    "change_epoch": s.change_epoch}).skipped == 0


def test_snapshot_roundtrip_keeps_every_field():
    fresh = ClusterState()
    again = ClusterState.from_dict(fresh.to_dict())
    assert again == fresh and again.ring is None and fresh.to_dict()["ring"] is None
    s = _joining().apply({"op": "grow", "rid": "r1"})  # one skipped entry, one request id
    d = s.to_dict()
    assert d["skipped"] == 1 and d["change"] == ["join", "n4"] and d["change_epoch"] == 2
    assert d["recent_rids"] == ["r1"]
    again = ClusterState.from_dict(d)
    assert (again.skipped, again.change, again.change_epoch, again.recent_rids) == \
        (1, ("join", "n4"), 2, ("r1",))
    done = ClusterState.from_dict(_with_n4().to_dict())
    assert done.change is None and done.to_dict()["change"] is None


def test_a_snapshot_from_before_the_optional_fields_still_loads():
    d = boot().to_dict()
    for k in ("change_epoch", "skipped", "recent_rids"):
        del d[k]
    s = ClusterState.from_dict(d)
    assert (s.change_epoch, s.skipped, s.recent_rids) == (0, 0, ())


def test_bootstrap_takes_the_seeds_and_settings_of_its_entry():
    s = ClusterState().apply(bootstrap_entry(SEEDS, Settings(n=1, r=1, w=1, hint_window_s=5.0,
                                                             hint_max_bytes=7)))
    assert s.skipped == 0 and s.settings == Settings(1, 1, 1, 5.0, 7)
    assert [(m.id, m.url, m.peer, m.number, m.state) for m in s.members.values()] == \
        [(d["id"], d["url"], d["peer"], i + 1, "normal") for i, d in enumerate(SEEDS)]
    assert s.member("n2") is s.members["n2"] and s.member("n9") is None
    assert s.next_number == 4


def test_a_joiner_is_recorded_with_its_addresses():
    m = _joining().members["n4"]
    assert (m.id, m.url, m.peer, m.number, m.state) == ("n4", "u4", "p4", 4, "joining")


def test_entries_without_a_request_id_leave_the_recent_ids_alone():
    s = boot().apply({"op": "set_config", "r": 1, "rid": "a"})
    assert s.apply({"op": "set_config", "r": 2}).recent_rids == ("a",)
    assert s.apply({"op": "grow"}).recent_rids == ("a",)


def test_leave_starts_a_change_at_its_own_epoch():
    s = _with_n4().apply({"op": "leave", "id": "n4"})
    assert s.change == ("leave", "n4") and s.change_epoch == s.epoch


# -- replacement of a member that lost its data directory --------------------------------


def _four(**kw) -> ClusterState:
    s = boot(**kw).apply({"op": "join", "id": "n4", "url": "http://h:8004", "peer": "h:9004"})
    return s.apply({"op": "finish_join", "id": "n4", "change_epoch": s.change_epoch})


def test_replace_retires_the_old_incarnation_like_a_removal_and_its_vote():
    s = _four()
    r = s.apply({"op": "replace", "id": "n3", "at_ms": 1000})
    assert r.change == ("remove", "n3") and r.members["n3"].state == "leaving"
    assert "n3" not in r.pending_ring.members and r.gainers()
    assert r.retired == ("n3",) and r.voters() == ("n1", "n2")
    assert r.acceptors == ("n1", "n2", "n3")  # ballots index this tuple: it stays
    done = r.apply({"op": "finish_leave", "id": "n3", "change_epoch": r.change_epoch})
    assert "n3" not in done.members and done.retired == ("n3",)
    # ...and the node joins again as a new member, still without a vote.
    back = done.apply({"op": "join", "id": "n3", "url": "http://h:8003", "peer": "h:9003"})
    assert back.members["n3"].state == "joining" and back.retired == ("n3",)
    assert ClusterState.from_dict(back.to_dict()) == back


def test_a_seed_can_leave_be_removed_or_be_replaced():
    s = _four()
    for op in ("leave", "remove", "replace"):
        validate(s, {"op": op, "id": "n3"})


def test_replace_that_would_leave_fewer_than_n_members_is_refused_with_a_hint():
    with pytest.raises(InvalidEntry) as e:
        validate(boot(), {"op": "replace", "id": "n3"})
    assert e.value.status == 409 and "add a member first" in e.value.detail


def test_replace_of_a_second_acceptor_that_would_leave_no_voting_majority_is_refused():
    s = _four(n=2, r=1, w=1).apply({"op": "replace", "id": "n3", "at_ms": 1})
    s = s.apply({"op": "finish_leave", "id": "n3", "change_epoch": s.change_epoch})
    with pytest.raises(InvalidEntry, match="fewer than a majority"):
        validate(s, {"op": "replace", "id": "n2"})
    with pytest.raises(InvalidEntry) as e:
        validate(s, {"op": "replace", "id": "n9"})
    assert e.value.status == 404


def _five_with_n4_leaving() -> ClusterState:
    """n1..n3 seeds, n4 and n5 joined; n4 is leaving."""
    s = _with_n4().apply({"op": "join", "id": "n5", "url": "u5", "peer": "p5"})
    s = s.apply({"op": "finish_join", "id": "n5", "change_epoch": s.change_epoch})
    return s.apply({"op": "leave", "id": "n4"})


@pytest.mark.parametrize("op", ["leave", "remove"])
def test_removing_a_dead_gainer_of_a_leave_abandons_it_and_removes_the_gainer(op):
    """Last session's stuck change: the leave waits for every gainer, so a dead gainer kept
    it open for ever, and removing the gainer was refused (409: a change in progress)."""
    s = _five_with_n4_leaving()
    if op == "remove":
        s = s.apply({"op": "remove", "id": "n4"})   # the leaver died too: a removal
    assert "n5" in s.gainers()
    validate(s, {"op": "remove", "id": "n5"})
    after = s.apply({"op": "remove", "id": "n5"})
    assert after.skipped == 0
    assert after.change == ("remove", "n5") and after.change_epoch == after.epoch
    assert after.members["n4"].state == "normal" and after.members["n5"].state == "leaving"
    assert after.ring == s.ring and set(after.pending_ring.members) == {"n1", "n2", "n3", "n4"}
    # the abandoned change's finish is refused; the removal finishes as any removal
    stale = after.apply({"op": "finish_leave", "id": "n4", "change_epoch": s.change_epoch})
    assert stale.skipped == after.skipped + 1
    done = after.apply({"op": "finish_leave", "id": "n5", "change_epoch": after.change_epoch})
    assert "n5" not in done.members and done.change is None
    # and the leave can be issued again
    again = done.apply({"op": "leave", "id": "n4"})
    assert again.change == ("leave", "n4") and again.skipped == 0


def _seven_with_n8_joining(n: int = 5):
    import dataclasses
    s = ClusterState().apply(bootstrap_entry(
        [{"id": f"n{i}", "url": f"http://h:{8000 + i}", "peer": f"h:{9000 + i}"}
         for i in range(7)], dataclasses.replace(Settings(), n=n, r=3, w=3)))
    return s.apply({"op": "join", "id": "n8", "url": "u8", "peer": "p8", "at_ms": 1000})


def test_removing_a_dead_gainer_of_a_join_abandons_the_join_and_removes_the_gainer():
    """Found by the system simulator (session 15, seeds 40005, 40020 and 33003 of
    --nodes 7 --n 5 with membership kinds): with N=5 of 7 members a join has a gainer besides
    the joiner; the join waits for its transfer, and removing it was refused with "retry when
    it finishes", which never comes. A removal that says it may (``abandons_join``, what
    ``Node.propose`` sends) abandons the join as a dead joiner's is abandoned, and the
    gainer's removal begins in the same entry."""
    s = _seven_with_n8_joining()
    number = s.members["n8"].number
    gainer = next(g for g in s.gainers() if g != "n8")
    entry = {"op": "remove", "id": gainer, "abandons_join": True, "at_ms": 2000}
    validate(s, entry)
    after = s.apply(entry)
    assert after.skipped == 0
    assert "n8" not in after.members and after.free_numbers.get(number) is not None
    assert after.change == ("remove", gainer) and after.members[gainer].state == "leaving"
    assert after.ring == s.ring and gainer not in after.pending_ring.members
    assert "n8" not in after.pending_ring.members
    # the abandoned join's finish is refused; the removal finishes as any removal
    stale = after.apply({"op": "finish_join", "id": "n8", "change_epoch": s.change_epoch})
    assert stale.skipped == after.skipped + 1 and "n8" not in stale.members
    done = after.apply({"op": "finish_leave", "id": gainer, "change_epoch": after.change_epoch})
    assert gainer not in done.members and done.change is None
    # and the joiner can join again
    again = done.apply({"op": "join", "id": "n8", "url": "u8", "peer": "p8", "at_ms": 3000})
    assert again.change == ("join", "n8") and again.skipped == 0


def test_a_removal_without_the_flag_keeps_the_older_meaning_for_a_gainer_of_a_join():
    """An entry an older node wrote (no ``abandons_join``) is refused, as it was, so an old
    log replays to the same state; the 409 says the operator's way out, and that way works:
    remove the joiner (the join is abandoned), then the gainer."""
    s = _seven_with_n8_joining()
    gainer = next(g for g in s.gainers() if g != "n8")
    with pytest.raises(InvalidEntry) as refused:
        validate(s, {"op": "remove", "id": gainer, "merge": True})
    assert refused.value.status == 409
    assert "abandon the join first (remove n8 with force" in refused.value.detail
    assert s.apply({"op": "remove", "id": gainer}).members == s.members
    s = s.apply({"op": "remove", "id": "n8"})
    assert s.change is None and "n8" not in s.members
    s = s.apply({"op": "remove", "id": gainer})
    assert s.change == ("remove", gainer) and s.skipped == 0


def test_a_join_is_not_abandoned_for_a_removal_of_a_member_that_gains_nothing_in_it():
    """Only a gainer's removal abandons a join: any other member's is refused (409, a
    change in progress) and the join goes on."""
    s = _seven_with_n8_joining()
    bystander = next(m for m in sorted(s.members) if m not in s.gainers() and m != "n8")
    with pytest.raises(InvalidEntry) as refused:
        validate(s, {"op": "remove", "id": bystander, "abandons_join": True})
    assert refused.value.status == 409 and "in progress" in refused.value.detail
    assert s.apply({"op": "remove", "id": bystander, "abandons_join": True}).change == ("join", "n8")


def test_anti_entropy_and_tombstone_settings_come_from_bootstrap_and_set_config():
    s = boot(anti_entropy_interval_s=0.0, anti_entropy_rate=7, tombstone_grace_s=60.0)
    assert (s.settings.anti_entropy_interval_s, s.settings.anti_entropy_rate,
            s.settings.tombstone_grace_s) == (0.0, 7, 60.0)
    s = s.apply({"op": "set_config", "anti_entropy_interval_s": 30, "anti_entropy_rate": 500,
                 "tombstone_grace_s": 86400})
    assert s.skipped == 0 and (s.settings.anti_entropy_interval_s, s.settings.anti_entropy_rate,
                               s.settings.tombstone_grace_s) == (30, 500, 86400)
    assert ClusterState.from_dict(s.to_dict()).settings == s.settings
    # a snapshot from before these settings loads with the defaults
    d = s.to_dict()
    for k in ("anti_entropy_interval_s", "anti_entropy_rate", "tombstone_grace_s"):
        del d["settings"][k]
    assert ClusterState.from_dict(d).settings.tombstone_grace_s == 864000.0


@pytest.mark.parametrize("entry,detail", [
    ({"anti_entropy_interval_s": -1}, "anti_entropy_interval_s=-1 must be a number >= 0"),
    ({"anti_entropy_rate": 0}, "anti_entropy_rate=0 must be an integer >= 1"),
    ({"anti_entropy_rate": 2.5}, "anti_entropy_rate=2.5 must be an integer >= 1"),
    ({"tombstone_grace_s": 0}, "tombstone_grace_s=0 must be a number > 0"),
    ({"tombstone_grace_s": "1"}, "tombstone_grace_s='1' must be a number > 0"),
])
def test_bad_anti_entropy_or_tombstone_settings_are_refused(entry, detail):
    s = boot()
    with pytest.raises(InvalidEntry) as e:
        validate(s, {"op": "set_config", **entry})
    assert (e.value.status, e.value.detail) == (400, detail)
    assert s.apply({"op": "set_config", **entry}).settings == s.settings


def test_a_state_saved_before_the_optional_fields_existed_loads_with_their_defaults():
    """Snapshots written by older versions lack the fields added since (retired members,
    the R/W change's epoch, reusable numbers, ...): they load as the defaults."""
    import dataclasses
    s = _four(n=2, r=1, w=1).apply({"op": "replace", "id": "n3", "at_ms": 1})
    s = s.apply({"op": "set_config", "r": 2})
    assert s.retired and s.config_epoch and s.rw_in_effect and s.change_epoch
    later = ("retired", "change_epoch", "rw_in_effect", "config_epoch", "free_numbers",
             "skipped", "recent_rids", "last_exit_ms")
    old = {k: v for k, v in s.to_dict().items() if k not in later}
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(ClusterState) if f.name in later}
    assert ClusterState.from_dict(old) == dataclasses.replace(s, **defaults)


def test_finish_config_refusals_say_why():
    s = boot(r=1, w=3)
    with pytest.raises(InvalidEntry) as e:
        validate(s, {"op": "finish_config", "change_epoch": 1})
    assert (e.value.status, e.value.code) == (409, "conflict")
    assert e.value.detail == "no change of the R/W defaults is settling"
    s = s.apply({"op": "set_config", "r": 3, "w": 1})  # epoch 2
    for named in (1, 2.0, "2", None):
        with pytest.raises(InvalidEntry) as e:
            validate(s, {"op": "finish_config", "change_epoch": named})
        assert (e.value.status, e.value.code) == (409, "conflict")
        assert e.value.detail == (f"finish_config names the change at epoch {named!r}; "
                                  "the one settling began at epoch 2")


def test_replacing_a_member_outside_the_metadata_group_retires_no_vote():
    s = _four(n=2, r=1, w=1).apply({"op": "replace", "id": "n4", "at_ms": 1})
    assert s.change == ("remove", "n4") and s.retired == () and s.voters() == ("n1", "n2", "n3")


def test_with_five_acceptors_a_third_replacement_would_leave_no_voting_majority():
    seeds = [{"id": f"n{i}", "url": f"http://h:{8000 + i}", "peer": f"h:{9000 + i}"}
             for i in range(1, 6)]
    s = ClusterState().apply(bootstrap_entry(seeds, Settings(n=2, r=1, w=1)))
    for mid in ("n5", "n4"):  # 5 -> 4 -> 3 voters: still a majority of 5
        s = s.apply({"op": "replace", "id": mid, "at_ms": 1})
        s = s.apply({"op": "finish_leave", "id": mid, "change_epoch": s.change_epoch})
    with pytest.raises(InvalidEntry) as e:
        validate(s, {"op": "replace", "id": "n3"})
    assert (e.value.status, e.value.code) == (409, "conflict")
    assert e.value.detail == ("cannot replace n3: only 2 of the metadata group "
                              "['n1', 'n2', 'n3', 'n4', 'n5'] would still vote, fewer than a majority")


def test_two_dead_members_can_both_be_removed():
    """Two members died. Removing one makes the other a gainer of that removal; removing the
    dead gainer used to abandon the first removal, whose member was then a dead gainer of
    the second: whichever the operator re-issued, the change waited on a dead member (sim
    seeds 9001, 9016, 9023). Now the second removal merges into the first (entries as
    ``Node.propose`` writes them, with ``"merge": true``)."""
    s = _five_with_n4_leaving().apply({"op": "remove", "id": "n4"})   # n4 died
    assert "n5" in s.gainers()
    s = s.apply({"op": "remove", "id": "n5", "merge": True})          # n5 died too
    seen = [s]
    for victim in ("n4", "n5", "n4", "n5"):                            # the operator re-issues
        s = s.apply({"op": "remove", "id": victim, "merge": True})
        seen.append(s)
    waits = [(x.change, x.gainers()) for x in seen]
    assert any(not {"n4", "n5"} & set(g) for _c, g in waits), \
        f"every change in progress waits on a dead gainer: {waits}"
    done = s.apply({"op": "finish_leave", "id": s.change[1], "change_epoch": s.change_epoch})
    assert done.skipped == s.skipped and sorted(done.members) == ["n1", "n2", "n3"]
