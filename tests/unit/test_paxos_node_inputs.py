"""MetaLogNode inputs the role tests do not reach: a ballot id changed after construction
(the running node renumbers itself when the membership changes) and votes that arrive at a
node that no longer leads or no longer has acceptor state (a wiped disk)."""

from __future__ import annotations

import random

from dynamopy.core.paxos import (
    Accepted, AcceptorState, Ballot, Commit, MetaLogNode, Role,
)


def _drain(node):
    rd = node.ready()
    node.advance(rd)
    return rd


def _ticks_to_candidacy(node, limit=100):
    for _ in range(limit):
        node.tick()
        _drain(node)
        if node.role is Role.CANDIDATE:
            return
    raise AssertionError("never campaigned")


def test_a_node_campaigns_under_the_ballot_id_it_was_given_last():
    node = MetaLogNode("a", ("a", "b", "c"), random.Random(0), persisted=AcceptorState(),
                       election_ticks=4, heartbeat_ticks=1)
    node.set_ballot_id(7)
    _ticks_to_candidacy(node)
    assert node.ballot == Ballot(1, 7)  # not its index in the acceptor tuple (0)


def test_a_node_whose_ballot_id_is_unknown_never_campaigns():
    node = MetaLogNode("a", ("a", "b", "c"), random.Random(0), persisted=AcceptorState(),
                       election_ticks=4, heartbeat_ticks=1)
    node.set_ballot_id(-1)
    for _ in range(50):
        node.tick()
        assert not any(m.__class__.__name__ == "Prepare" for _, m in _drain(node).messages)
    assert node.role is Role.FOLLOWER and node.ballot == Ballot(0, -1)


def test_late_votes_reach_a_wiped_former_leader_and_are_ignored():
    """A leader whose disk was wiped restarts without acceptor state; the votes its old
    ballot collected may still arrive. They neither fail the node nor teach it anything."""
    wiped = MetaLogNode("a", ("a", "b", "c"), random.Random(0), election_ticks=4,
                        heartbeat_ticks=1)
    wiped.step("b", Accepted(Ballot(3, 0), (0, 1), 2))
    wiped.step("c", Accepted(Ballot(3, 0), (0,), 0))
    rd = _drain(wiped)
    assert rd.messages == () and rd.committed == () and rd.persist is None
    assert wiped.chosen_below == 0 and wiped.known_chosen_below == 0
    # it still learns what the group commits
    wiped.step("b", Commit(((0, {"rid": 1}),), 1))
    assert _drain(wiped).committed == ((0, {"rid": 1}),)
