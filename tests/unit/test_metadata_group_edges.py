"""core/metadata_group.py, the edges the mutation run (issue 18) found untested: which log
values are group changes, malformed re-admissions, snapshots from before group changes, the
Reconfig the node hands its Paxos core, zone spreading over several picks, a full group
without re-admission, and the 409 rule for spares and explicit groups."""

import pytest

from dynamopy.core import metadata_group as mg
from dynamopy.core.membership import ClusterState
from dynamopy.core.paxos.groups import GroupSchedule
from tests.unit.test_metadata_group import _cluster


def test_only_set_group_entries_change_the_group_and_a_filler_slot_is_none():
    """The Paxos core asks ``group_of`` about every learned slot, NOOP fillers (None)
    included; an entry of another operation never changes the group, whatever it carries."""
    latest = ("n1", "n2", "n3")
    assert mg.group_of(None, latest) is None
    assert mg.group_of({"op": "join", "group": ["n4"], "from_group": list(latest)},
                       latest) is None
    assert mg.group_of({"op": "set_group", "group": ["n4"], "from_group": list(latest)},
                       latest) == ("n4",)
    assert mg.readmits(None) == {}
    assert mg.readmits({"op": "noop"}) == {}


def test_a_readmission_with_a_malformed_token_readmits_nobody_in_the_state_or_the_core():
    """The Paxos core re-admits a wiped acceptor only when the token equals its incarnation
    (a string); the membership state must not show it voting again for any other token."""
    s = _cluster().apply({"op": "replace", "id": "n3"})
    assert s.retired == ("n3",)
    change = {"op": "set_group", "group": ["n1", "n2", "n3"], "from_group": ["n1", "n2", "n3"],
              "readmit": {"n3": 7}}
    assert mg.readmits(change) == {}
    after = s.apply(change)
    assert after.acceptors == ("n1", "n2", "n3") and after.retired == ("n3",)
    assert "n3" not in after.voters()


def test_a_snapshot_from_before_group_changes_is_decided_by_its_acceptors_from_slot_0():
    """A node installing a snapshot written before group changes existed (no
    ``group_schedule``) takes the acceptors as the group of every slot."""
    old = _cluster().to_dict()
    del old["group_schedule"]
    old["acceptors"] = ["n3", "n1", "n2"]
    pairs = mg.schedule_of(old)
    assert pairs == [(0, ("n1", "n2", "n3"))]
    sched = GroupSchedule.from_pairs(pairs, mg.ALPHA)
    assert sched.at(0) == sched.at(old["epoch"] + 5) == ("n1", "n2", "n3")
    assert ClusterState.from_dict(old).schedule_pairs() == pairs


def test_the_reconfig_the_node_runs_with_reads_group_changes_as_the_state_does():
    rc = mg.reconfig()
    s = _cluster()
    change = {"op": "set_group", "group": ["n2", "n3", "n4"], "from_group": list(s.acceptors),
              "readmit": {"n4": "tok"}}
    group = rc.group_of(change, tuple(s.acceptors))
    assert group == s.apply(change).acceptors == ("n2", "n3", "n4")
    assert rc.readmits(change) == {"n4": "tok"}
    sched = GroupSchedule.from_pairs(rc.schedule_of(s.to_dict()), rc.alpha)
    sched = sched.with_change(s.epoch, group)
    # The alpha rule with ALPHA = 1: the change decides the very next slot.
    assert sched.at(s.epoch) == ("n1", "n2", "n3") and sched.at(s.epoch + 1) == group


def test_two_picks_spread_over_two_new_zones():
    """Refilling two seats: after the first pick's zone is covered, the second prefers a
    zone still uncovered over a lower-numbered member in the first pick's zone."""
    s = _cluster(k=6, zones=["a", "a", "a", "b", "b", "c"])
    assert mg.plan_group(s, {"n1", "n4", "n5", "n6"}, {"n2", "n3"}) == ("n1", "n4", "n6")


def test_a_full_group_does_not_take_back_a_retired_member():
    """A retired member back as a normal member is re-admitted only when nobody else can
    take its seat: a live spare fills it first and the group stays at the target size."""
    s = _cluster(k=4).apply({"op": "replace", "id": "n3"})
    s = s.apply({"op": "finish_leave", "id": "n3", "change_epoch": s.change_epoch})
    s = s.apply({"op": "join", "id": "n3", "url": "u3", "peer": "p3"})
    s = s.apply({"op": "finish_join", "id": "n3", "change_epoch": s.change_epoch})
    assert s.retired == ("n3",) and s.acceptors == ("n1", "n2", "n3")
    assert mg.plan_group(s, {"n1", "n2", "n3", "n4"}, set()) == ("n1", "n2", "n4")


def test_plan_never_moves_to_a_group_with_two_live_members_of_five():
    s = _cluster(k=6)
    s = s.apply({"op": "set_group", "group": ["n1", "n2", "n3", "n4", "n5"],
                 "from_group": ["n1", "n2", "n3"], "size": 5})
    # n5 down for long: n6 can take its seat, but with n2-n4 down (not for long yet) the
    # new group would have 2 live members of 5.
    assert mg.plan_group(s, {"n1", "n6"}, {"n5"}) is None
    assert mg.plan_group(s, {"n1", "n2", "n6"}, {"n5"}) == ("n1", "n2", "n3", "n4", "n6")


def test_a_dead_spare_cannot_take_a_leaving_group_members_seat():
    s = _cluster(k=4)
    problem = mg.change_problem(s, {"n1", "n2"}, leaving="n1")   # n4 normal but down
    assert problem is not None and problem[:2] == (409, "conflict")
    assert mg.change_problem(s, {"n1", "n2", "n4"}, leaving="n1") is None


@pytest.mark.parametrize("new_group, live, ok", [
    (["n3", "n4", "n5"], {"n1", "n2", "n3", "n4", "n5"}, True),
    (["n1", "n2", "n4"], {"n1", "n2"}, True),            # exactly a majority live
    (["n1", "n4", "n5"], {"n1", "n2", "n3"}, False),
    (["n1", "n9", "n8"], {"n1", "n2", "n3", "n9", "n8"}, False),  # not members
])
def test_an_explicit_group_needs_a_live_majority_of_normal_members(new_group, live, ok):
    problem = mg.change_problem(_cluster(), live, new_group=new_group)
    assert (problem is None) == ok
    if not ok:
        assert problem[:2] == (409, "conflict")


def test_a_leaving_member_does_not_count_as_live_in_an_explicit_group():
    s = _cluster().apply({"op": "leave", "id": "n4"})
    live = set(s.members) - {"n5"}
    assert mg.change_problem(s, live, new_group=["n1", "n4", "n5"])[:2] == (409, "conflict")
    assert mg.change_problem(s, live, new_group=["n1", "n2", "n5"]) is None
