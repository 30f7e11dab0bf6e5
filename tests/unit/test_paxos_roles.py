"""The Paxos roles one at a time (acceptor, proposer, learner, Ready): each rule their
docstrings state, checked directly and exactly (the cluster scenarios and the agreement
property in ``test_paxos.py`` check them together)."""

from __future__ import annotations

import pytest

from dynamopy.core.paxos import (
    NOOP, Accepted, Acceptor, AcceptorState, AcceptorUpdate, Ballot, CatchupReply, Nack,
    PaxosSafetyError, Promise, Ready, Role, Snapshot,
)
from dynamopy.core.paxos.learner import Learner, same_value
from dynamopy.core.paxos.proposer import Proposer

B1, B2, B3 = Ballot(1, 0), Ballot(1, 1), Ballot(2, 0)


# -- durable acceptor state ---------------------------------------------------------------


def test_state_apply_keeps_the_highest_promise_and_compaction():
    st = AcceptorState().apply(AcceptorUpdate(promised=B3, compacted_below=5))
    assert st.apply(AcceptorUpdate(promised=B1, compacted_below=2)) == AcceptorState(B3, {}, 5)
    assert st.apply(AcceptorUpdate()) == st  # None fields change nothing


def test_state_apply_stores_entries_in_order_and_drops_compacted_slots():
    st = AcceptorState().apply(AcceptorUpdate(accepted=((3, B1, "x"), (4, B1, "y"), (3, B2, "z"))))
    assert st.accepted == {3: (B2, "z"), 4: (B1, "y")}  # a later entry for a slot replaces
    assert st.apply(AcceptorUpdate(compacted_below=4)).accepted == {4: (B1, "y")}
    # entries of the same update below its compaction are dropped too
    assert AcceptorState().apply(AcceptorUpdate(accepted=((1, B1, "a"), (2, B1, "b")),
                                                compacted_below=2)).accepted == {2: (B1, "b")}
    assert st.apply(AcceptorUpdate(promised=B2)).accepted == st.accepted


def test_restored_acceptor_starts_from_the_state():
    st = AcceptorState(B2, {7: (B2, "v")}, 7)
    a = Acceptor(st)
    assert (a.promised, a.accepted, a.compacted_below) == (B2, {7: (B2, "v")}, 7)
    assert not a.dirty and a.take_update() is None
    assert a.on_prepare(B1, 0) == Nack(B1, B2)


# -- acceptor rules -------------------------------------------------------------------------


def test_promise_lists_accepted_values_sorted_from_the_later_of_from_slot_and_compaction():
    a = Acceptor()
    a.on_accept(B1, [(5, "e"), (2, "b"), (3, "c")], 0)
    assert a.on_prepare(B2, 0) == Promise(B2, 0, ((2, B1, "b"), (3, B1, "c"), (5, B1, "e")), 0)
    assert a.on_prepare(B2, 3).accepted == ((3, B1, "c"), (5, B1, "e"))  # from_slot inclusive
    a.compact(4)
    assert a.on_prepare(B3, 1) == Promise(B3, 1, ((5, B1, "e"),), 4)


def test_an_equal_ballot_is_accepted_and_a_lower_one_nacked_with_the_promise():
    a = Acceptor()
    a.on_prepare(B2, 0)
    assert a.on_accept(B2, [(0, "x")], 9) == Accepted(B2, (0,), 9)  # echoes chosen_below
    assert a.on_prepare(B1, 0) == Nack(B1, B2)
    assert a.on_accept(B1, [(1, "y")], 0) == Nack(B1, B2)
    assert 1 not in a.accepted


def test_only_changes_are_pending_and_a_retransmitted_accept_needs_no_sync():
    a = Acceptor()
    assert not a.dirty and a.take_update() is None
    a.on_prepare(B1, 0)
    assert a.dirty
    assert a.take_update() == AcceptorUpdate(promised=B1, accepted=(), compacted_below=None)
    a.on_prepare(B1, 0)  # the same promise again: nothing to persist
    assert not a.dirty
    a.on_accept(B1, [(1, "y"), (0, "x")], 0)
    assert a.take_update() == AcceptorUpdate(promised=None, accepted=((0, B1, "x"), (1, B1, "y")))
    a.on_accept(B1, [(0, "x")], 0)  # retransmission
    assert a.take_update() is None
    a.on_accept(B1, [(0, "other")], 0)  # same ballot, new value (a new leader's re-proposal)
    a.on_accept(B2, [(1, "y")], 0)  # same value, higher ballot
    assert a.take_update() == AcceptorUpdate(promised=B2, accepted=((0, B1, "other"), (1, B2, "y")))


def test_compaction_is_pending_once_and_drops_pending_slots_below_it():
    a = Acceptor()
    a.on_accept(B1, [(0, "x"), (1, "y"), (2, "z")], 0)
    a.compact(2)
    assert a.accepted == {2: (B1, "z")}
    assert a.take_update() == AcceptorUpdate(promised=B1, accepted=((2, B1, "z"),), compacted_below=2)
    a.compact(2)  # not above the current frontier: nothing changes
    a.compact(1)
    assert not a.dirty and a.compacted_below == 2
    assert a.on_accept(B1, [(1, "late"), (2, "z"), (3, "w")], 5) == Accepted(B1, (2, 3), 5)
    assert a.state() == AcceptorState(B1, {2: (B1, "z"), 3: (B1, "w")}, 2)


# -- proposer -----------------------------------------------------------------------------


G3 = ("a", "b", "c")


def fixed(slot):
    """Every slot decided by the same three acceptors (plain Multi-Paxos)."""
    return G3


def never(slot):
    return False


def _leader(p, ballot, voters=("a", "b"), from_slot=0, min_next=0, group=G3):
    """Run ``p`` through phase 1: promises from ``voters``, then leader."""
    p.start_candidacy(ballot, from_slot)
    for v in voters:
        p.on_promise(v, Promise(ballot, from_slot, (), 0))
    assert p.covered(from_slot, group)
    p.become_leader(min_next)


def test_a_new_proposer_is_a_follower_that_never_ran():
    p = Proposer(4, 8)
    assert p.role is Role.FOLLOWER and p.ballot == Ballot(0, -1)
    assert not p.covered(0, G3) and p.promises == {} and p.inflight == {}
    assert p.submit("v") is True  # queued for a future leader ...
    assert p.open_slots(fixed, 100, never) == []  # ... but a follower proposes nothing
    assert p.on_accepted("a", Accepted(Ballot(0, -1), (0,), 0), fixed) == []
    assert p.resend(fixed) == {}


def test_new_values_never_go_below_the_compacted_frontier():
    """Promises may report accepted values only below another acceptor's compaction:
    those slots are chosen; new values start at the frontier, not after them."""
    p = Proposer(8, 8)
    p.start_candidacy(B3, 0)
    p.on_promise("a", Promise(B3, 0, ((1, B1, "x"),), 0))
    p.on_promise("b", Promise(B3, 0, (), 5))
    assert p.covered(0, G3)
    p.become_leader(0)
    assert p.compacted == 5 and p.next_slot == 5
    assert p.submit("new")
    assert p.open_slots(fixed, 100, never) == [(5, "new")]
    # a compaction reported after leadership began (a late promise) is skipped too
    q = Proposer(8, 8)
    _leader(q, B3)
    assert q.open_slots(fixed, 100, never) == []  # nothing to propose yet
    q.on_promise("c", Promise(B3, 0, (), 4))
    assert q.submit("late")
    assert q.open_slots(fixed, 100, never) == [(4, "late")]


@pytest.mark.parametrize("n, quorum", [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)])
def test_a_majority_of_promises_makes_a_candidate_leader(n, quorum):
    group = tuple(f"a{i}" for i in range(n))
    p = Proposer(4, 8)
    p.start_candidacy(B1, 0)
    p.step_down()
    p.on_promise("a0", Promise(B1, 0, (), 0))  # late, for the ballot it ran: not a candidate now
    assert p.promises == {} and not p.covered(0, group)
    p.start_candidacy(B2, 0)
    assert p.role is Role.CANDIDATE
    p.on_promise("a0", Promise(B1, 0, (), 0))  # another ballot's promise: ignored
    p.on_promise("x", Promise(B2, 0, (), 0))  # not in the slot's group: does not count
    assert not p.covered(0, group)
    covered = []
    for i in range(quorum):
        p.on_promise(f"a{i}", Promise(B2, 0, (), 0))
        p.on_promise("a0", Promise(B2, 0, (), 0))  # a duplicate counts once
        covered.append(p.covered(0, group))
    assert covered == [False] * (quorum - 1) + [True]
    assert set(p.promises) == {"x", *group[:quorum]}
    p.become_leader(0)
    assert p.role is Role.LEADER


def test_a_new_groups_slots_wait_for_promises_from_that_group():
    """With the group changing at slot 3, slots 3.. open only once a majority of the new
    group has promised, and a promise counts only from its ``votes_from`` slot on."""
    new = ("c", "d", "e")

    def group_at(slot):
        return G3 if slot < 3 else new

    p = Proposer(8, 8)
    _leader(p, B1)  # a and b: a majority of the old group, none of the new one
    for v in ("p", "q", "r", "s"):
        assert p.submit(v)
    assert p.open_slots(group_at, 100, never) == [(0, "p"), (1, "q"), (2, "r")]
    p.on_promise("d", Promise(B1, 0, (), 0))
    p.on_promise("e", Promise(B1, 0, (), 0, votes_from=4))  # counts from slot 4 only
    assert not p.covered(3, new) and p.covered(4, new)
    assert p.open_slots(group_at, 100, never) == []  # slot 3 waits: no gap is skipped
    p.on_promise("c", Promise(B1, 0, (), 0))
    assert p.open_slots(group_at, 100, never) == [(3, "s")]


def test_new_leader_reproposes_the_highest_ballot_values_and_fills_gaps_with_noop():
    p = Proposer(8, 8)
    p.start_candidacy(B3, 2)
    p.on_promise("a", Promise(B3, 2, ((2, B1, "old"), (3, B1, "x"), (5, B1, "y")), 0))
    p.on_promise("b", Promise(B3, 2, ((2, B2, "new"),), 0))
    assert p.submit("queued")
    p.become_leader(0)
    assert p.compacted == 0 and p.role is Role.LEADER
    out = p.open_slots(fixed, 100, never)
    assert out == [(2, "new"), (3, "x"), (4, NOOP), (5, "y"), (6, "queued")]
    assert p.next_slot == 7


def test_new_leader_skips_compacted_and_known_slots_and_starts_new_values_above_min_next():
    p = Proposer(8, 8)
    p.start_candidacy(B3, 1)
    p.on_promise("a", Promise(B3, 1, ((1, B1, "gone"), (4, B1, "v")), 3))
    p.on_promise("b", Promise(B3, 1, (), 2))
    assert p.submit("queued")
    p.become_leader(7)
    assert p.compacted == 3  # the largest compaction reported
    known = lambda s: s == 5  # noqa: E731
    assert p.open_slots(fixed, 4, known) == [(3, NOOP)]  # only slots below the limit
    assert p.open_slots(fixed, 100, known) == [(4, "v"), (6, NOOP), (7, "queued")]
    assert p.next_slot == 8


def test_submit_skips_duplicates_bounds_the_queue_and_the_window():
    p = Proposer(2, 3)
    assert p.submit("p") and not p.submit("p")  # follower: queued once
    assert p.submit("q") and p.submit("r") and not p.submit("s")  # queue full
    assert list(p.queue) == ["p", "q", "r"]
    _leader(p, B1)
    assert p.open_slots(fixed, 100, never) == [(0, "p"), (1, "q")]  # at most max_inflight
    assert not p.submit("p")  # in flight already
    assert p.submit("t")
    assert p.open_slots(fixed, 100, never) == []  # window full: waits
    assert list(p.queue) == ["r", "t"]


def test_a_value_is_chosen_by_a_majority_of_votes_under_the_leaders_ballot():
    p = Proposer(4, 8)
    _leader(p, B2)
    p.submit("v")
    p.submit("w")
    assert p.open_slots(fixed, 100, never) == [(0, "v"), (1, "w")]
    assert p.on_accepted("a", Accepted(B1, (0, 1), 0), fixed) == []  # another ballot's votes
    assert p.on_accepted("b", Accepted(B1, (0, 1), 0), fixed) == []  # never count
    assert p.on_accepted("a", Accepted(B2, (9, 0, 1), 0), fixed) == []  # 9: not in flight
    assert p.on_accepted("a", Accepted(B2, (0,), 0), fixed) == []  # the same voter twice
    assert p.resend(fixed) == {"b": [(0, "v"), (1, "w")], "c": [(0, "v"), (1, "w")]}
    assert p.on_accepted("b", Accepted(B2, (0,), 0), fixed) == [(0, "v")]
    assert p.resend(fixed) == {"b": [(1, "w")], "c": [(1, "w")]}
    assert p.on_accepted("c", Accepted(B2, (1, 0), 0), fixed) == [(1, "w")]  # 0 no longer in flight
    assert p.inflight == {} and p.resend(fixed) == {}
    p.step_down()
    assert p.on_accepted("b", Accepted(B2, (0,), 0), fixed) == []


def test_votes_count_only_from_the_slots_group():
    """The group changes at slot 1: a vote for slot 1 from an old member does not count."""
    new = ("c", "d", "e")

    def group_at(slot):
        return G3 if slot < 1 else new

    p = Proposer(4, 8)
    _leader(p, B2, voters=("a", "b", "d", "e"))
    p.submit("v")
    p.submit("w")
    assert p.open_slots(group_at, 100, never) == [(0, "v"), (1, "w")]
    assert p.resend(group_at) == {"a": [(0, "v")], "b": [(0, "v")], "c": [(0, "v"), (1, "w")],
                                  "d": [(1, "w")], "e": [(1, "w")]}
    assert p.on_accepted("a", Accepted(B2, (0, 1), 0), group_at) == []
    assert p.on_accepted("d", Accepted(B2, (0, 1), 0), group_at) == []  # 0: not d's; 1 counts
    assert p.on_accepted("b", Accepted(B2, (0, 1), 0), group_at) == [(0, "v")]  # 1: not theirs
    assert p.resend(group_at) == {"c": [(1, "w")], "e": [(1, "w")]}
    assert p.on_accepted("e", Accepted(B2, (1,), 0), group_at) == [(1, "w")]


def test_forget_chosen_frees_the_window_and_step_down_keeps_the_queue():
    p = Proposer(1, 8)
    _leader(p, B2)
    assert p.submit("v") and p.open_slots(fixed, 100, never) == [(0, "v")]
    assert p.submit("w") and p.open_slots(fixed, 100, never) == []  # window of one: full
    learned = lambda s: s == 0  # noqa: E731  (slot 0 learned some other way)
    p.forget_chosen(learned)
    assert p.inflight == {} and p.open_slots(fixed, 100, learned) == [(1, "w")]
    assert p.submit("x")
    p.step_down()
    assert p.role is Role.FOLLOWER and p.inflight == {} and p.promises == {}
    assert p.take_queue() == ["x"] and p.take_queue() == []


# -- learner ------------------------------------------------------------------------------


def test_restart_log_must_be_contiguous_from_the_snapshot():
    lr = Learner(Snapshot(3, "s"), [(3, "a"), (4, "b")])
    assert (lr.base, lr.chosen_below, lr.applied, lr.hint) == (3, 5, 5, 5)
    assert not lr.has_gap and lr.hint_from is None and lr.pending_snapshot is None
    with pytest.raises(ValueError, match=r"^restart log must be contiguous from 3: got slot 5, expected 4$"):
        Learner(Snapshot(3, "s"), [(3, "a"), (5, "b")])
    with pytest.raises(ValueError, match="from 0: got slot 1, expected 0"):
        Learner(None, [(1, "a")])


def test_learning_out_of_order_advances_the_frontier_only_when_contiguous():
    lr = Learner(None, ())
    assert lr.learn(1, "b") and lr.chosen_below == 0 and lr.hint == 2 and lr.has_gap
    assert lr.knows(1) and not lr.knows(0) and not lr.knows(2)
    assert lr.learn(0, "a") and lr.chosen_below == 2 and not lr.has_gap
    assert lr.knows(0)
    assert not lr.learn(0, "a")
    lr.note_hint(1, "x")
    lr.note_hint(2, "x")
    assert lr.hint == 2 and lr.hint_from is None  # not news
    lr.note_hint(5, "x")
    assert lr.hint == 5 and lr.hint_from == "x" and lr.has_gap
    with pytest.raises(PaxosSafetyError, match=r"slot 0: learned 'z' but already had 'a'"):
        lr.learn(0, "z")


def test_same_value_ignores_only_tuple_versus_list():
    assert same_value({"k": [("a", 1), {"n": (2,)}]}, {"k": [["a", 1], {"n": [2]}]})
    assert not same_value({"k": [1, 2]}, {"k": [1, 3]})
    assert not same_value([1, 2], [1, 2, 3])


def test_compact_keeps_the_snapshot_and_drops_older_entries():
    lr = Learner(None, [(0, "a"), (1, "b"), (2, "c")])
    with pytest.raises(ValueError, match=r"^snapshot.slot must equal upto$"):
        lr.compact(2, Snapshot(1, "s"))
    with pytest.raises(ValueError, match=r"^cannot compact to 4: only slots < 3 are applied$"):
        lr.compact(4, Snapshot(4, "s"))
    assert lr.compact(2, Snapshot(2, "ab"))
    assert lr.base == 2 and lr.log == {2: "c"} and lr.snapshot == Snapshot(2, "ab")
    assert not lr.compact(2, Snapshot(2, "ab")) and not lr.compact(1, Snapshot(1, "a"))
    assert lr.compact(3, Snapshot(3, "abc")) and lr.log == {}
    assert not lr.learn(1, "other")  # below the snapshot: forgotten, not a conflict
    assert lr.learn(3, "d") and lr.chosen_below == 4  # the snapshot's own slot is the next one


def test_serve_sends_the_snapshot_only_to_a_peer_behind_it_and_caps_entries():
    lr = Learner(Snapshot(2, "ab"), [(2, "c"), (3, "d"), (4, "e")])
    assert lr.serve(0, 2) == CatchupReply(0, Snapshot(2, "ab"), ((2, "c"), (3, "d")), 5)
    assert lr.serve(2, 10) == CatchupReply(2, None, ((2, "c"), (3, "d"), (4, "e")), 5)
    assert lr.serve(3, 1) == CatchupReply(3, None, ((3, "d"),), 5)
    assert lr.serve(5, 8) == CatchupReply(5, None, (), 5)


def test_install_adopts_only_a_snapshot_ahead_and_keeps_later_entries():
    lr = Learner(None, [(0, "a")])
    lr.learn(4, "e")
    lr.learn(6, "g")
    assert not lr.install(Snapshot(1, "a"))  # covers nothing new
    assert lr.install(Snapshot(4, "abcd"))
    assert (lr.base, lr.chosen_below, lr.hint) == (4, 5, 7)
    assert lr.log == {4: "e", 6: "g"} and lr.pending_snapshot == Snapshot(4, "abcd")
    assert lr.serve(0, 8).snapshot == Snapshot(4, "abcd")  # served on to peers behind it
    lr2 = Learner(None, ())
    assert lr2.install(Snapshot(3, "abc")) and lr2.hint == 3


def test_absorb_reports_progress_and_notes_the_hint():
    lr = Learner(None, ())
    assert lr.absorb(CatchupReply(0, None, ((0, "a"),), 3), "p")
    assert lr.chosen_below == 1 and lr.hint == 3 and lr.hint_from == "p"
    assert not lr.absorb(CatchupReply(0, None, ((0, "a"),), 3), "q")
    assert lr.absorb(CatchupReply(0, Snapshot(2, "ab"), (), 3), "q")
    assert lr.chosen_below == 2 and lr.pending_snapshot == Snapshot(2, "ab")


# -- Ready ----------------------------------------------------------------------------------


def test_ready_is_empty_only_with_nothing_in_any_field():
    assert Ready(None, None, (), ()).empty
    assert not Ready(Snapshot(1, "a"), None, (), ()).empty
    assert not Ready(None, AcceptorUpdate(), (), ()).empty
    assert not Ready(None, None, ((0, "a"),), ()).empty
    assert not Ready(None, None, (), (("b", Nack(B1, B2)),)).empty


# -- MetaLogNode: construction, status and the Ready contract --------------------------


def _node(node_id="a", acceptors=("a",), **kw):
    import random

    from dynamopy.core.paxos import AcceptorState, MetaLogNode
    if node_id in acceptors:
        # A listed acceptor votes only with a durable state (a fresh one at bootstrap).
        kw.setdefault("persisted", AcceptorState())
    return MetaLogNode(node_id, acceptors, random.Random(0), **kw)


@pytest.mark.parametrize("acceptors, kw, message", [
    ((), {}, "^acceptors must be a non-empty tuple of distinct ids$"),
    (("a", "a"), {}, "^acceptors must be a non-empty tuple of distinct ids$"),
    (("a",), {"heartbeat_ticks": 0}, r"^need 0 < heartbeat_ticks < election_ticks$"),
    (("a",), {"heartbeat_ticks": 10, "election_ticks": 10}, r"^need 0 < heartbeat_ticks < election_ticks$"),
    (("a",), {"reconfig": object()}, "^a reconfigurable log needs alpha >= 1 and a unique "
                                     "ballot_id per node$"),
    (("a",), {"reconfig": "alpha 0", "ballot_id": 1}, "^a reconfigurable log needs alpha >= 1 "
                                                      "and a unique ballot_id per node$"),
])
def test_bad_node_settings_are_refused_with_the_reason(acceptors, kw, message):
    from dynamopy.core.paxos.groups import Reconfig
    if kw.get("reconfig") == "alpha 0":
        kw["reconfig"] = Reconfig(0, lambda v, g: None, lambda d: [])
    with pytest.raises(ValueError, match=message):
        _node(acceptors=acceptors, **kw)
    _node(acceptors=("a",), heartbeat_ticks=9, election_ticks=10)  # the bounds themselves are fine
    _node(acceptors=("a",), reconfig=Reconfig(1, lambda v, g: None, lambda d: []), ballot_id=1)


def test_only_acceptors_keep_acceptor_state():
    with pytest.raises(ValueError, match="^only acceptors have persisted acceptor state$"):
        _node("x", ("a",), persisted=AcceptorState())
    learner = _node("x", ("a",))
    assert learner.acceptor_state() is None and learner.role is Role.FOLLOWER
    assert learner.ballot == Ballot(0, -1)
    acceptor = _node("a", ("a",))
    assert acceptor.role is Role.FOLLOWER and acceptor.ballot == Ballot(0, -1)


def test_a_restarted_acceptor_knows_its_compacted_slots_are_chosen():
    node = _node(persisted=AcceptorState(B2, {}, 5))
    assert node.known_chosen_below == 5 and node.chosen_below == 0
    assert node.acceptor_state() == AcceptorState(B2, {}, 5)


def test_a_lone_acceptor_leads_after_its_election_timeout_and_delivers_in_order():
    node = _node(election_ticks=4, heartbeat_ticks=1)
    ticks = 0
    while node.role is not Role.LEADER:
        assert ticks < 100, "never became leader"
        node.tick()
        node.advance(node.ready())
        ticks += 1
    assert 4 <= ticks <= 7  # a random timeout in [election_ticks, 2 * election_ticks)
    assert node.ballot == Ballot(1, 0) and node.leader == "a"
    node.propose({"rid": 1})
    node.propose({"rid": 2})
    rd = node.ready()
    assert rd.committed == ((0, {"rid": 1}), (1, {"rid": 2}))  # no gap to fill: no NOOP
    assert node.chosen_below == 2 and node.applied_slot == 0
    node.advance(rd)
    assert node.applied_slot == 2
    assert not node.has_ready() and node.ready().empty


def test_has_ready_reports_each_kind_of_pending_effect_alone():
    from dynamopy.core.paxos import CatchupRequest, Commit

    learner = _node("x", ("a", "b", "c"))
    assert not learner.has_ready()
    learner.step("a", CatchupRequest(0))  # a reply to send, nothing else
    assert learner.has_ready()
    rd = learner.ready()
    assert rd.messages and not rd.committed and rd.persist is None and rd.snapshot is None
    learner.advance(rd)
    assert not learner.has_ready()
    learner.step("a", Commit(((0, {"rid": 1}),), 1))  # an entry to apply, nothing else
    assert learner.has_ready()
    rd = learner.ready()
    assert rd.committed == ((0, {"rid": 1}),) and not rd.messages
    learner.advance(rd)
    learner.step("a", CatchupReply(0, Snapshot(5, "s"), (), 5))  # a snapshot to install
    assert learner.has_ready() and learner.ready().snapshot == Snapshot(5, "s")

    acceptor = _node("a", ("a", "b", "c"), persisted=AcceptorState(B1, {0: (B1, "v")}, 0))
    acceptor.step("b", Commit(((0, "v"),), 1))
    acceptor.advance(acceptor.ready())
    acceptor.compact(1, Snapshot(1, "v"))  # only the acceptor's compaction to persist
    assert acceptor.has_ready()
    rd = acceptor.ready()
    assert rd.persist == AcceptorUpdate(compacted_below=1) and not rd.messages and not rd.committed


def test_a_proposal_is_forwarded_to_the_known_leader_at_most_twice():
    from dynamopy.core.paxos import Heartbeat, Propose

    node = _node("a", ("a", "b", "c"))
    node.step("b", Heartbeat(B2, 0))  # b leads
    node.advance(node.ready())
    node.step("x", Propose({"rid": 1}, 1))  # one hop so far: forward it
    rd = node.ready()
    assert rd.messages == (("b", Propose({"rid": 1}, 2)),)
    node.advance(rd)
    node.step("x", Propose({"rid": 2}, 2))  # two hops: kept here, never sent further
    rd = node.ready()
    assert rd.messages == ()
    node.advance(rd)


def _drain(node):
    rd = node.ready()
    node.advance(rd)
    return rd.messages


def test_values_queued_without_a_leader_go_to_the_first_leader_heard():
    from dynamopy.core.paxos import Heartbeat, Propose

    node = _node("a", ("a", "b", "c"))
    node.propose({"rid": 1})
    assert _drain(node) == ()  # no leader known: queued
    node.step("b", Heartbeat(B2, 0))
    assert ("b", Propose({"rid": 1}, 1)) in _drain(node)


def test_an_acceptor_nacks_a_heartbeat_below_its_promise_and_acks_one_at_it():
    from dynamopy.core.paxos import Heartbeat, HeartbeatAck, Prepare

    node = _node("a", ("a", "b", "c"))
    node.step("c", Prepare(B2, 0))
    _drain(node)
    node.step("b", Heartbeat(B1, 0))
    assert _drain(node) == (("b", Nack(B1, B2)),)
    assert node.leader is None
    node.step("c", Heartbeat(B2, 0))
    assert _drain(node) == (("c", HeartbeatAck(B2)),)
    assert node.leader == "c"


def test_a_follower_keeps_the_newest_leader_and_its_heartbeats_keep_it():
    from dynamopy.core.paxos import Heartbeat

    node = _node("x", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1)
    node.step("b", Heartbeat(B3, 0))
    node.step("a", Heartbeat(B1, 0))  # an older leader: ignored
    assert node.leader == "b" and node.leader_ballot == B3
    for _ in range(12):  # heartbeats under the same ballot keep the leader alive
        node.tick()
        assert node.leader == "b"
        node.step("b", Heartbeat(B3, 0))
        _drain(node)
    node.step("c", Heartbeat(Ballot(3, 2), 0))  # a newer one takes over
    assert node.leader == "c"
    for _ in range(4):  # silent for election_ticks: forgotten
        node.tick()
        _drain(node)
    assert node.leader is None
    node.step("a", Heartbeat(B1, 0))  # with none to follow, any live leader is heard
    assert node.leader == "a"


def test_only_a_nack_of_the_current_ballot_ends_a_candidacy():
    node = _node("a", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1, leader_lease=False)
    while node.role is not Role.CANDIDATE:
        node.tick()
        _drain(node)
    mine = node.ballot
    node.step("b", Nack(Ballot(0, 0), Ballot(9, 1)))  # a stale nack of an older ballot
    assert node.role is Role.CANDIDATE
    node.step("b", Nack(mine, Ballot(9, 1)))
    assert node.role is Role.FOLLOWER


def _lead(node, voter="b"):
    """Make ``node`` (an acceptor of three) leader: tick until it campaigns, then one
    promise from ``voter`` completes its majority."""
    while node.role is not Role.CANDIDATE:
        node.tick()
        _drain(node)
    node.step(voter, Promise(node.ballot, 0, (), 0))
    _drain(node)
    assert node.role is Role.LEADER


def test_a_leader_that_hears_from_no_majority_for_election_ticks_steps_down():
    from dynamopy.core.paxos import HeartbeatAck

    node = _node("a", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1, leader_lease=False)
    _lead(node)
    for _ in range(12):  # b acks every heartbeat: a majority with a itself
        node.tick()
        node.step("b", HeartbeatAck(node.ballot))
        _drain(node)
        assert node.role is Role.LEADER
    for tick in range(1, 12):  # only acks of another ballot: they do not count
        node.tick()
        node.step("c", HeartbeatAck(Ballot(0, 2)))
        _drain(node)
        if node.role is not Role.LEADER:
            break
    assert node.role is Role.FOLLOWER and tick == 5  # acks older than election_ticks


def test_a_new_leader_keeps_its_lead_for_election_ticks_before_counting_acks():
    node = _node("a", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1, leader_lease=False)
    _lead(node)
    for tick in range(1, 12):  # nobody acks, but b's promise counts as contact
        node.tick()
        _drain(node)
        if node.role is not Role.LEADER:
            break
    assert tick == 5


def test_an_acceptor_forgets_accepted_values_below_an_installed_snapshot():
    from dynamopy.core.paxos import Accept, CatchupRequest

    node = _node("a", ("a", "b", "c"))
    node.step("b", Accept(B2, ((0, "x"), (1, "y"), (2, "z"))))
    _drain(node)
    node.step("c", CatchupReply(0, Snapshot(2, "xy"), ((2, "z"),), 5))
    rd = node.ready()
    assert rd.snapshot == Snapshot(2, "xy") and rd.persist.compacted_below == 2
    node.advance(rd)
    assert node.acceptor_state().accepted == {2: (B2, "z")}
    # slots 3 and 4 are still missing: keep pulling from the peer that just helped
    assert ("c", CatchupRequest(3)) in rd.messages


def test_with_five_acceptors_one_ack_is_not_a_majority():
    from dynamopy.core.paxos import HeartbeatAck

    node = _node("a", ("a", "b", "c", "d", "e"), election_ticks=4, heartbeat_ticks=1,
                 leader_lease=False)
    while node.role is not Role.CANDIDATE:
        node.tick()
        _drain(node)
    node.step("b", Promise(node.ballot, 0, (), 0))
    node.step("c", Promise(node.ballot, 0, (), 0))
    _drain(node)
    assert node.role is Role.LEADER
    for tick in range(1, 12):  # only b keeps acking: a and b are 2 of 5
        node.tick()
        node.step("b", HeartbeatAck(node.ballot))
        _drain(node)
        if node.role is not Role.LEADER:
            break
    assert node.role is Role.FOLLOWER and tick == 5


def test_a_learner_sends_its_proposal_to_an_acceptor_or_the_known_leader():
    from dynamopy.core.paxos import Heartbeat, Propose

    learner = _node("x", ("a", "b", "c"))
    learner.propose({"rid": 1})
    ((to, msg),) = _drain(learner)
    assert to in ("a", "b", "c") and msg == Propose({"rid": 1}, 1)
    learner.step("b", Heartbeat(B2, 0))
    learner.propose({"rid": 2})
    assert _drain(learner) == (("b", Propose({"rid": 2}, 1)),)


def test_a_new_leader_proposes_new_values_above_every_slot_it_knows_and_sends_at_once():
    from dynamopy.core.paxos import Accept, Commit

    node = _node("a", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1, leader_lease=False)
    node.step("b", Commit(((5, "x"),), 0))  # slot 5 learned out of order; 0..4 unknown
    _drain(node)
    while node.role is not Role.CANDIDATE:
        node.tick()
        _drain(node)
    node.step("b", Promise(node.ballot, 0, (), 0))
    fills = tuple((s, NOOP) for s in range(5))
    assert ("b", Accept(node.ballot, fills)) in _drain(node)  # phase 2 right away
    node.propose("new")
    assert ("c", Accept(node.ballot, ((6, "new"),))) in _drain(node)


def test_a_leader_beats_every_heartbeat_ticks():
    from dynamopy.core.paxos import Heartbeat

    node = _node("a", ("a", "b", "c"), election_ticks=6, heartbeat_ticks=2, leader_lease=False)
    _lead(node)
    from dynamopy.core.paxos import HeartbeatAck

    beats = []
    for tick in range(8):
        node.tick()
        node.step("b", HeartbeatAck(node.ballot))
        msgs = _drain(node)
        beats.append(any(isinstance(m, Heartbeat) for _, m in msgs))
    assert beats in ([True, False] * 4, [False, True] * 4)


def test_a_candidate_waits_election_ticks_before_trying_again():
    node = _node("a", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1, leader_lease=False)
    while node.role is not Role.CANDIDATE:
        node.tick()
        _drain(node)
    first = node.ballot
    for _ in range(3):  # no answers: the same candidacy, retransmitting
        node.tick()
        _drain(node)
        assert node.ballot == first
    node.step("b", Nack(first, Ballot(5, 1)))  # stepped down: waits again
    assert node.role is Role.FOLLOWER
    for _ in range(3):
        node.tick()
        _drain(node)
        assert node.role is Role.FOLLOWER


def test_none_is_refused_as_a_proposal():
    with pytest.raises(ValueError, match=r"^None is reserved for NOOP$"):
        _node().propose(None)


def test_a_candidate_resends_prepare_every_heartbeat_ticks_to_those_that_have_not_promised():
    from dynamopy.core.paxos import Prepare

    node = _node("a", ("a", "b", "c", "d", "e"), election_ticks=6, heartbeat_ticks=2,
                 leader_lease=False)
    while node.role is not Role.CANDIDATE:
        node.tick()
        _drain(node)
    node.step("b", Promise(node.ballot, 0, (), 0))
    _drain(node)
    sent = []
    for _ in range(4):  # 1 to 4 ticks into the candidacy
        node.tick()
        sent.append(sorted(to for to, m in _drain(node) if m == Prepare(node.ballot, 0)))
    assert sent == [[], ["c", "d", "e"]] * 2


def test_a_leader_opens_queued_values_as_its_window_frees():
    from dynamopy.core.paxos import Accept

    node = _node("a", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1, leader_lease=False,
                 max_inflight=2)
    _lead(node)

    def opened(msgs):
        return [e for to, m in msgs if to == "b" and isinstance(m, Accept) for e in m.entries]
    for v in ("v0", "v1", "v2", "v3"):
        node.propose(v)
    assert opened(_drain(node)) == [(0, "v0"), (1, "v1")]  # two in flight, two wait
    node.step("b", Accepted(node.ballot, (0,), 0))  # slot 0 chosen: one slot frees
    assert opened(_drain(node)) == [(2, "v2")] and node.chosen_below == 1


@pytest.mark.parametrize("message", ["commit", "catchup reply", "old leader's heartbeat"])
def test_a_gap_is_caught_up_from_the_member_that_reported_it_among_others(message):
    """z (not among x's peers) says slots below 10 are chosen: x asks z about half the
    time, and its known peers otherwise."""
    from dynamopy.core.paxos import CatchupRequest, Commit, Heartbeat

    node = _node("x", ("a", "b", "c"), catchup_ticks=1)
    node.step("b", Heartbeat(B3, 0))  # b leads
    node.step("z", {"commit": Commit(((5, "v"),), 10),
                    "catchup reply": CatchupReply(0, None, (), 10),  # nothing new in it
                    "old leader's heartbeat": Heartbeat(B1, 10)}[message])
    targets = []
    for _ in range(40):
        node.tick()
        node.step("b", Heartbeat(B3, 0))
        targets += [to for to, m in _drain(node) if isinstance(m, CatchupRequest)]
    assert len(targets) == 40 and node.leader == "b"
    assert "z" in targets and set(targets) <= {"a", "b", "c", "z"}
    assert 10 <= targets.count("z") <= 30


def test_votes_for_another_ballot_do_not_keep_a_leader_in_office():
    node = _node("a", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1, leader_lease=False)
    _lead(node)
    for tick in range(1, 12):
        node.tick()
        node.step("c", Accepted(Ballot(0, 2), (), 0))  # an older ballot's vote
        _drain(node)
        if node.role is not Role.LEADER:
            break
    assert node.role is Role.FOLLOWER and tick == 5


def test_a_leader_catches_up_from_an_acceptor_whose_vote_reports_more_chosen():
    from dynamopy.core.paxos import CatchupRequest, HeartbeatAck

    node = _node("a", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1, leader_lease=False,
                 catchup_ticks=1)
    _lead(node)
    node.step("z", Accepted(node.ballot, (), 10))  # z knows slots below 10 are chosen
    targets = []
    for _ in range(40):
        node.tick()
        node.step("b", HeartbeatAck(node.ballot))
        targets += [to for to, m in _drain(node) if isinstance(m, CatchupRequest)]
    assert node.role is Role.LEADER and len(targets) == 40
    assert 10 <= targets.count("z") <= 30 and set(targets) <= {"b", "c", "z"}


def test_the_defaults_the_runtime_relies_on():
    """node/metalog.py passes only the election and heartbeat periods; the rest are the
    defaults: 32 values in flight, a queue of 1024, 256 entries per catch-up reply, a
    catch-up request every 3 ticks at most, and the leader lease on."""
    from dynamopy.core.paxos import (Accept, CatchupRequest, Commit, Heartbeat, MetaLogNode,
                                     Prepare)

    node = _node("a", ("a", "b", "c"))
    while node.role is not Role.CANDIDATE:
        node.tick()
        _drain(node)
    node.step("b", Promise(node.ballot, 0, (), 0))
    _drain(node)
    for i in range(32 + 1024 + 10):
        node.propose(i)
    opened = []
    while True:
        batch = [e for to, m in _drain(node) if to == "b" and isinstance(m, Accept)
                 for e in m.entries]
        if not batch:
            break
        assert len(batch) <= 32  # in flight at once
        opened += batch
        node.step("b", Accepted(node.ballot, tuple(s for s, _ in batch), 0))
    assert opened == [(i, i) for i in range(32 + 1024)]  # the last 10 found the queue full

    learner = _node("x", ("a", "b", "c"))
    learner.step("a", Commit(tuple((s, s) for s in range(300)), 300))
    _drain(learner)
    learner.step("y", CatchupRequest(0))
    ((_, reply),) = _drain(learner)
    assert reply.entries == tuple((s, s) for s in range(256))

    lagging = _node("x", ("a", "b", "c"))
    lagging.step("b", Heartbeat(B3, 300))  # b leads; slots below 300 are chosen
    asked = []
    for _ in range(9):
        lagging.tick()
        lagging.step("b", Heartbeat(B3, 300))
        asked.append(any(isinstance(m, CatchupRequest) for _, m in _drain(lagging)))
    assert asked == [True, False, False] * 3

    from dynamopy.core.paxos import HeartbeatAck
    import random  # and the periods a simulator gets: elections after 10-19 ticks,
    seen = {_ticks_to_candidacy(MetaLogNode("a", ("a", "b", "c"), random.Random(seed),
                                            persisted=AcceptorState()))
            for seed in range(80)}
    assert seen == set(range(10, 20))
    sim = _node("a", ("a", "b", "c"))  # heartbeats every 2
    _ticks_to_candidacy(sim)
    sim.step("b", Promise(sim.ballot, 0, (), 0))
    _drain(sim)
    beats = []
    for _ in range(6):
        sim.tick()
        sim.step("b", HeartbeatAck(sim.ballot))
        beats.append(any(isinstance(m, Heartbeat) for _, m in _drain(sim)))
    assert beats in ([True, False] * 3, [False, True] * 3)

    follower = _node("c", ("a", "b", "c"))
    follower.step("a", Heartbeat(B1, 0))
    _drain(follower)
    follower.step("b", Prepare(B3, 0))  # a live leader holds the lease: no promise
    assert _drain(follower) == ()


def test_a_new_leader_holds_the_lease_against_a_candidate_at_once():
    from dynamopy.core.paxos import Prepare

    node = _node("a", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1)
    _lead(node)  # leads from the promise it just got, before any further tick
    node.step("c", Prepare(Ballot(9, 2), 0))
    assert not any(isinstance(m, (Promise, Nack)) for _, m in _drain(node))
    assert node.role is Role.LEADER


def _ticks_to_candidacy(node, limit=100):
    for tick in range(1, limit):
        node.tick()
        _drain(node)
        if node.role is Role.CANDIDATE:
            return tick
    raise AssertionError("never campaigned")


def test_the_election_timeout_is_drawn_from_election_ticks_to_twice_that_less_one():
    import random

    from dynamopy.core.paxos import AcceptorState, MetaLogNode
    seen = {_ticks_to_candidacy(MetaLogNode("a", ("a", "b", "c"), random.Random(seed),
                                            persisted=AcceptorState(), election_ticks=4,
                                            heartbeat_ticks=1))
            for seed in range(60)}
    assert seen == {4, 5, 6, 7}


def test_a_candidate_runs_above_every_round_its_acceptor_promised():
    from dynamopy.core.paxos import Prepare
    node = _node("a", ("a", "b", "c"), persisted=AcceptorState(Ballot(5, 1), {}, 0),
                 election_ticks=4, heartbeat_ticks=1)
    _ticks_to_candidacy(node)
    assert node.ballot == Ballot(6, 0)


def test_a_live_leaders_heartbeat_ends_a_candidacy_and_a_newer_leaders_ends_a_lead():
    from dynamopy.core.paxos import Heartbeat
    node = _node("a", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1, leader_lease=False)
    _ticks_to_candidacy(node)
    node.step("b", Heartbeat(Ballot(node.ballot.round + 1, 1), 0))
    assert node.role is Role.FOLLOWER and node.leader == "b"

    node = _node("a", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1, leader_lease=False)
    _lead(node)
    node.step("c", Heartbeat(Ballot(node.ballot.round + 1, 2), 0))
    assert node.role is Role.FOLLOWER and node.leader == "c"


def test_a_leader_that_promises_a_higher_ballot_steps_down():
    from dynamopy.core.paxos import Prepare
    node = _node("a", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1, leader_lease=False)
    _lead(node)
    node.step("c", Prepare(Ballot(node.ballot.round + 1, 2), 0))
    assert any(isinstance(m, Promise) for _, m in _drain(node))
    assert node.role is Role.FOLLOWER and node.leader is None


def test_promising_a_candidate_does_not_move_a_followers_election_time():
    """Only a live leader delays a follower's own candidacy; a promise does not."""
    from dynamopy.core.paxos import Prepare
    plain = _node("c", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1, leader_lease=False)
    promising = _node("c", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1,
                      leader_lease=False)
    promising.tick()
    _drain(promising)
    promising.step("b", Prepare(Ballot(1, 1), 0))
    assert any(isinstance(m, Promise) for _, m in _drain(promising))
    assert _ticks_to_candidacy(promising) + 1 == _ticks_to_candidacy(plain)


def test_the_lease_lasts_election_ticks_and_never_blocks_the_leader_itself():
    from dynamopy.core.paxos import Heartbeat, Prepare

    def answers(node):
        return [(to, m) for to, m in _drain(node) if isinstance(m, (Promise, Nack))]
    node = _node("c", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1)
    node.step("a", Heartbeat(B1, 0))  # a leads, heard at tick 0
    _drain(node)
    node.step("a", Prepare(Ballot(2, 0), 0))  # the leader itself may always run again
    assert answers(node) == [("a", Promise(Ballot(2, 0), 0, (), 0))]
    for _ in range(3):
        node.tick()
        _drain(node)
    node.step("b", Prepare(Ballot(9, 1), 0))  # 3 ticks since: within the lease
    assert answers(node) == []
    node.tick()
    _drain(node)
    node.step("b", Prepare(Ballot(9, 1), 0))  # 4 ticks: the lease is over
    assert answers(node) == [("b", Promise(Ballot(9, 1), 0, (), 0))]


def test_a_member_without_a_leader_polls_a_peer_every_election_ticks():
    from dynamopy.core.paxos import CatchupRequest
    node = _node("x", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1)
    asked = []
    for _ in range(12):
        node.tick()
        asked.append(any(isinstance(m, CatchupRequest) for _, m in _drain(node)))
    assert asked == [True, False, False, False] * 3


def test_a_candidate_catches_up_from_a_promise_that_reports_compacted_slots():
    from dynamopy.core.paxos import CatchupRequest
    node = _node("a", ("a", "b", "c"), election_ticks=4, heartbeat_ticks=1, leader_lease=False,
                 catchup_ticks=1)
    _ticks_to_candidacy(node)
    node.step("z", Promise(node.ballot, 0, (), 10))  # z compacted (so chose) slots below 10
    targets = []
    for _ in range(40):
        node.tick()
        targets += [to for to, m in _drain(node) if isinstance(m, CatchupRequest)]
    assert len(targets) == 40 and 10 <= targets.count("z") <= 30


def test_a_member_that_never_campaigned_ignores_promises():
    for node in (_node("x", ("a", "b", "c")), _node("c", ("a", "b", "c"))):
        node.step("a", Promise(B1, 0, (), 10))
        assert node.known_chosen_below == 0 and _drain(node) == ()


def test_a_leader_resends_unvoted_entries_every_heartbeat():
    from dynamopy.core.paxos import Accept, HeartbeatAck
    node = _node("a", ("a", "b", "c"), election_ticks=6, heartbeat_ticks=1, leader_lease=False)
    _lead(node)
    node.propose("v")
    _drain(node)
    node.tick()
    node.step("b", HeartbeatAck(node.ballot))
    sent = [(to, m) for to, m in _drain(node) if isinstance(m, Accept)]
    assert sorted(sent) == [("b", Accept(node.ballot, ((0, "v"),))),
                            ("c", Accept(node.ballot, ((0, "v"),)))]
