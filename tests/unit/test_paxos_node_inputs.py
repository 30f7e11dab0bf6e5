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



def _election_ticks(node, limit=60):
    """The ticks (1-based) at which ``node`` starts an election, with nobody answering."""
    out, ballot = [], node.ballot
    for t in range(1, limit + 1):
        node.tick()
        _drain(node)
        if node.ballot != ballot:
            out.append(t)
            ballot = node.ballot
    return out


def test_first_election_ticks_sets_only_the_first_election():
    """The first seed of a bootstrap campaigns at its first tick; unanswered, it campaigns
    again after the usual randomized back-off, as a node without the setting does."""
    def node(**kw):
        return MetaLogNode("a", ("a", "b", "c"), random.Random(5), persisted=AcceptorState(),
                           election_ticks=10, heartbeat_ticks=2, **kw)

    fast, usual = _election_ticks(node(first_election_ticks=1)), _election_ticks(node())
    assert fast[0] == 1 and usual[0] >= 10
    for ticks in (fast, usual):
        assert len(ticks) >= 3 and all(10 <= b - a < 20 for a, b in zip(ticks, ticks[1:]))
