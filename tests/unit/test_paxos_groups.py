"""The metadata group as part of the log: which group decides which slot (alpha rule),
re-admission of an acceptor that lost its state, and votes counted per slot's group."""

from __future__ import annotations

import random

import pytest

from dynamopy.core.paxos import Accept, Accepted, AcceptorState, Ballot, MetaLogNode, Prepare, Promise
from dynamopy.core.paxos.acceptor import Acceptor
from dynamopy.core.paxos.groups import GroupSchedule, Reconfig
from dynamopy.core.paxos.messages import decode, encode


def test_a_change_decides_slots_alpha_after_its_own():
    s = GroupSchedule.initial(("a", "b", "c"), alpha=4)
    s = s.with_change(10, ("a", "b", "d"))
    assert s.at(13) == ("a", "b", "c") and s.at(14) == ("a", "b", "d")
    s = s.with_change(12, ("d",))
    assert s.at(15) == ("a", "b", "d") and s.at(16) == ("d",)
    assert s.groups_between(13, 17) == [("a", "b", "c"), ("a", "b", "d"), ("d",)]
    assert s.pruned(15).at(15) == ("a", "b", "d") and s.pruned(15).at(16) == ("d",)
    with pytest.raises(ValueError):
        s.with_change(5, ("x",))  # out of slot order


def test_a_readmitted_acceptor_votes_only_from_its_slot_and_says_so():
    a = Acceptor.readmitted(20)
    upd = a.take_update()
    assert upd is not None and upd.votes_from == 20  # persisted before any vote
    assert AcceptorState().apply(upd).votes_from == 20
    reply = a.on_accept(Ballot(3, 1), ((19, "old"), (20, "new")), 0)
    assert isinstance(reply, Accepted) and reply.slots == (20,)
    promise = a.on_prepare(Ballot(4, 1), 0)
    assert promise.votes_from == 20 and decode(encode(promise)) == promise


def _rule(alpha=2):
    def group_of(v, latest=None):
        return tuple(v["group"]) if isinstance(v, dict) and v.get("op") == "set_group" else None

    def schedule_of(data):
        pairs = [(0, ("a", "b", "c"))]
        for slot, v in enumerate(data):
            if group_of(v):
                pairs.append((slot + alpha, group_of(v)))
        return pairs

    def readmits(v):
        return v.get("readmit", {}) if isinstance(v, dict) else {}
    return Reconfig(alpha, group_of, schedule_of, readmits)


def test_a_wiped_member_is_readmitted_only_by_a_change_naming_its_new_incarnation():
    """c lost its state (no acceptor) and came back as incarnation "c.2". Changes that keep
    it in the group, or leave it out and add it back, do not make it vote again (they may
    predate the wipe); one naming "c.2" does, from that change's slot + alpha."""
    rc = _rule(alpha=2)
    log = [(0, {"op": "set_group", "group": ["a", "b", "d"]}),
           (1, {"op": "set_group", "group": ["a", "b", "c"]}),
           (2, {"op": "set_group", "group": ["a", "b", "c"], "readmit": {"c": "c.1"}})]

    def build(entries):
        return MetaLogNode("c", ("a", "b", "c"), random.Random(0), log=entries, reconfig=rc,
                           ballot_id=2, incarnation="c.2")
    assert not build(log).is_acceptor
    log += [(3, "x"), (4, {"op": "set_group", "group": ["a", "b", "c"], "readmit": {"c": "c.2"}})]
    c = build(log)
    assert c.is_acceptor and c.acceptor_state().votes_from == 6
    c.step("a", Accept(Ballot(9, 0), ((5, "y"), (6, "z"))))
    rd = c.ready()
    assert rd.persist.votes_from == 6 and [s for s, _, _ in rd.persist.accepted] == [6]


def test_a_leader_opens_a_slot_only_with_a_majority_of_that_slots_group():
    """The group changes to {a, d, e} from slot 2: a leads with promises from b and c, but
    may fill slot 2 only once d or e promised too."""
    rc = _rule(alpha=2)
    log = [(0, {"op": "set_group", "group": ["a", "d", "e"]})]
    a = MetaLogNode("a", ("a", "b", "c"), random.Random(1), persisted=AcceptorState(), log=log,
                    reconfig=rc, ballot_id=0, election_ticks=4, heartbeat_ticks=1)
    for _ in range(10):
        a.tick()
    rd = a.ready()
    prepares = {to for to, m in rd.messages if isinstance(m, Prepare)}
    assert prepares >= {"b", "c", "d", "e"}  # the window spans both groups
    ballot = next(m.ballot for _, m in rd.messages if isinstance(m, Prepare))
    a.advance(rd)
    a.step("b", Promise(ballot, 1, (), 0))
    a.propose({"rid": "v1"})
    a.propose({"rid": "v2"})
    rd = a.ready()
    accepts = [(to, m) for to, m in rd.messages if isinstance(m, Accept)]
    assert a.role.value == "leader"
    assert {s for _, m in accepts for s, _ in m.entries} == {1}  # slot 1 only: old group
    assert {to for to, _ in accepts} == {"b", "c"}  # (and a itself, through its loopback)
    a.advance(rd)
    a.step("d", Promise(ballot, 1, (), 0))
    rd = a.ready()
    to_slot2 = {to for to, m in rd.messages
                if isinstance(m, Accept) and (2, {"rid": "v2"}) in m.entries}
    assert to_slot2 == {"d", "e"}  # the new group (a votes through its loopback)


def test_a_late_promise_from_an_acceptor_that_compacted_a_slot_stops_the_leader_proposing_it():
    """Found by `dynamopy sim --seed 271 --reconfigs 4`: a leader of a one-member group leads
    at once; when its window reaches the next group, a promise says slot 11 is compacted
    (chosen, forgotten). The leader must learn slot 11, not fill it with a NOOP."""
    from dynamopy.core.paxos.proposer import Proposer
    groups = lambda slot: ("n4",) if slot < 11 else ("n0", "n1", "n4")  # noqa: E731
    p = Proposer(max_inflight=32, max_queue=8)
    b = Ballot(4, 4)
    p.start_candidacy(b, 8)
    p.on_promise("n4", Promise(b, 8, (), 0))
    assert p.covered(8, groups(8))
    p.become_leader(min_next=8)
    p.submit("x")
    assert p.open_slots(groups, 20, lambda s: False) == [(8, "x")]
    p.on_promise("n0", Promise(b, 8, (), 12))  # slot 11 is chosen: n0 compacted it
    p.submit("y")
    assert p.open_slots(groups, 20, lambda s: s in (8, 9, 10)) == [(12, "y")]


def _schedules():
    """A few schedules built the way a node builds them (alpha 1..3, up to three changes,
    a group coming back after another)."""
    A, B, C = ("a", "b", "c"), ("a", "b", "d"), ("d",)
    for alpha in (1, 2, 3):
        s = GroupSchedule.initial(A, alpha)
        yield s
        for chosen, g in ((2, B), (5, C), (6, A)):
            s = s.with_change(chosen, g)
            yield s


def test_groups_between_lists_each_group_deciding_a_slot_in_the_range_once_in_slot_order():
    for s in _schedules():
        for lo in range(0, 12):
            for hi in range(lo + 1, 13):
                expected: list = []
                for slot in range(lo, hi):
                    if s.at(slot) not in expected:
                        expected.append(s.at(slot))
                assert s.groups_between(lo, hi) == expected, (s, lo, hi)


def test_pruning_keeps_every_group_from_its_slot_on_and_forgets_the_rest():
    for s in _schedules():
        for below in range(0, 12):
            p = s.pruned(below)
            assert all(p.at(slot) == s.at(slot) for slot in range(below, 16)), (s, below)
            # only what decides slots from `below` on is left: the group of `below` (as
            # the group from slot 0) and the changes after it
            assert p.changes == ((0, s.at(below)),) + tuple(c for c in s.changes if c[0] > below)
            assert p.alpha == s.alpha
            assert GroupSchedule.from_pairs(p.to_pairs(), s.alpha) == p  # a snapshot's copy


def test_a_change_is_recorded_once_and_in_slot_order():
    s = GroupSchedule.initial(("a", "b", "c"), alpha=2).with_change(3, ("a", "b", "d"))
    for chosen in (0, 2, 3):  # takes effect at or before slot 5, the last change's
        with pytest.raises(ValueError,
                           match="^group changes must be recorded in slot order, each slot once$"):
            s.with_change(chosen, ("x",))
    assert s.with_change(4, ("x",)).changes == ((0, ("a", "b", "c")), (5, ("a", "b", "d")),
                                                (6, ("x",)))


def test_a_schedule_from_a_snapshots_pairs_is_sorted_and_starts_at_slot_zero():
    s = GroupSchedule.from_pairs([[7, ["d"]], [0, ["a", "b", "c"]], ["4", ("a", "b", "d")]], 3)
    assert s == GroupSchedule(3, ((0, ("a", "b", "c")), (4, ("a", "b", "d")), (7, ("d",))))
    assert s.to_pairs() == [[0, ["a", "b", "c"]], [4, ["a", "b", "d"]], [7, ["d"]]]
    for pairs in ([], [(1, ["a"])]):
        with pytest.raises(ValueError, match="^a schedule starts with the group of slot 0$"):
            GroupSchedule.from_pairs(pairs, 3)


ABD = {"op": "set_group", "group": ["a", "b", "d"]}
D = {"op": "set_group", "group": ["d"]}


def test_a_member_learns_a_group_change_from_a_commit():
    """A change (slot 1) in a Commit whose last entry was already known still counts."""
    from dynamopy.core.paxos import Commit
    x = MetaLogNode("x", ("a", "b", "c"), random.Random(0), reconfig=_rule(alpha=2), ballot_id=9)
    x.step("a", Commit(((2, "z"),), 0))
    x.step("a", Commit(((0, "y"), (1, ABD), (2, "z")), 3))
    assert x.chosen_below == 3 and x.acceptors == ("a", "b", "d")
    assert x.schedule() == [[0, ["a", "b", "d"]]]  # the group of slot 2 on (pruned below)


def test_a_snapshot_brings_its_group_changes_installed_or_at_a_restart():
    """The snapshot covers slots 0-2 (a change at slot 1: from slot 3); slot 3 after it
    holds another change (from slot 5)."""
    from dynamopy.core.paxos import CatchupReply, Snapshot
    snap = Snapshot(3, ["y", ABD, "w"])
    want = [[0, ["a", "b", "d"]], [5, ["d"]]]  # pruned below the frontier, slot 4
    x = MetaLogNode("x", ("a", "b", "c"), random.Random(0), reconfig=_rule(alpha=2), ballot_id=9)
    x.step("a", CatchupReply(0, snap, ((3, D),), 4))
    assert x.chosen_below == 4 and x.schedule() == want
    assert x.acceptors == ("a", "b", "d") and x.group_of_slot(5) == ("d",)
    restarted = MetaLogNode("x", ("a", "b", "c"), random.Random(0), snapshot=snap,
                            log=[(3, D)], reconfig=_rule(alpha=2), ballot_id=9)
    assert restarted.schedule() == want and restarted.acceptors == ("a", "b", "d")


def test_a_readmitted_member_campaigns_under_its_ballot_id_and_can_lead():
    rc = _rule(alpha=2)
    log = [(0, {"op": "set_group", "group": ["a", "b", "c"], "readmit": {"c": "c.2"}})]
    c = MetaLogNode("c", ("a", "b", "c"), random.Random(0), log=log, reconfig=rc, ballot_id=7,
                    incarnation="c.2", election_ticks=4, heartbeat_ticks=1, leader_lease=False)
    while c.role.value != "candidate":
        c.tick()
        c.advance(c.ready())
    assert c.ballot.member == 7  # ballots stay unique across incarnations
    c.step("a", Promise(c.ballot, 1, (), 0))  # its own vote counts from slot 2 only:
    c.step("b", Promise(c.ballot, 1, (), 0))  # slot 1 needs both others
    c.advance(c.ready())
    c.propose({"rid": "v"})
    rd = c.ready()
    assert c.role.value == "leader"
    assert {to for to, m in rd.messages if isinstance(m, Accept)} >= {"a", "b"}


def test_a_change_counts_whatever_order_its_slot_is_learned_in():
    from dynamopy.core.paxos import Commit
    for first in ((2, "z"), (1, "y")):
        x = MetaLogNode("x", ("a", "b", "c"), random.Random(0), reconfig=_rule(alpha=2),
                        ballot_id=9)
        x.step("a", Commit((first,), 0))  # learned out of order: nothing is chosen below it
        x.step("a", Commit(((0, ABD), (1, "y"), (2, "z")), 3))
        assert x.acceptors == ("a", "b", "d"), first


def test_a_compare_and_set_change_applies_only_over_the_group_it_names():
    """The simulator's rule (sim/metalog_app.group_rule): a change naming ``from_group``
    applies only while that is the latest group; a retried duplicate does not undo a later
    change."""
    from dynamopy.core.paxos import Commit
    from dynamopy.sim.metalog_app import group_rule
    x = MetaLogNode("x", ("a", "b", "c"), random.Random(0), reconfig=group_rule(("a", "b", "c"), 1),
                    ballot_id=9)
    to_abd = {"op": "set_group", "group": ["a", "b", "d"], "from_group": ["a", "b", "c"]}
    to_d = {"op": "set_group", "group": ["d"], "from_group": ["a", "b", "d"]}
    x.step("a", Commit(((0, to_abd), (1, to_d), (2, to_abd)), 3))  # slot 2: a stale retry
    assert x.acceptors == ("d",) and x.schedule() == [[0, ["d"]]]


def test_a_leader_left_out_of_the_group_steps_down():
    from dynamopy.core.paxos import Commit
    a = MetaLogNode("a", ("a", "b", "c"), random.Random(0), persisted=AcceptorState(),
                    reconfig=_rule(alpha=1), ballot_id=0, election_ticks=4, heartbeat_ticks=1,
                    leader_lease=False)
    while a.role.value != "candidate":
        a.tick()
        a.advance(a.ready())
    a.step("b", Promise(a.ballot, 0, (), 0))
    assert a.role.value == "leader"
    a.advance(a.ready())
    a.step("b", Commit(((0, {"op": "set_group", "group": ["b", "c", "d"]}),), 1))
    assert a.role.value == "follower" and a.acceptors == ("b", "c", "d")
