"""Cluster identity at the Paxos level (``core/paxos/identity.py``), below the runtime.

The wiped only-seed: acceptor ``a`` of cluster X loses its disk and bootstraps a cluster Y
of its own under the same id, with an empty acceptor state. X's members still send to
``a``. Here the pure ``MetaLogNode``s of both clusters share one network; each message
carries its sender's cluster (what ``node/metalog.py`` puts on the envelope)."""

from __future__ import annotations

import random

import pytest

from dynamopy.core import cluster_identity
from dynamopy.core.paxos import (Accept, AcceptorState, Ballot, CatchupRequest, Commit,
                                 Heartbeat, MetaLogNode, Prepare, finish_ready)
from dynamopy.core.paxos.node import MetaLogNode as _Node


def bootstrap(tokens: dict[str, str]) -> dict:
    """A bootstrap entry as ``core.membership.bootstrap_entry`` builds it (the part read)."""
    members = [{"id": i, "url": f"http://{i}", "peer": i, "token": t} for i, t in tokens.items()]
    return {"op": "bootstrap", "members": members,
            "cluster": cluster_identity.cluster_id(cluster_identity.seed_tokens(members))}


X_TOKENS = {"a": "ta1", "b": "tb1", "c": "tc1"}
X0 = bootstrap(X_TOKENS)
Y0 = bootstrap({"a": "ta2"})  # the wiped a's new store


def node(me, group, token, identity=True, state=True):
    return MetaLogNode(me, group, random.Random(me + token), leader_lease=False,
                       persisted=AcceptorState() if state else None, token=token,
                       identity=cluster_identity.identity() if identity else None)


class Net:
    """Nodes by (cluster name, id); ``links``: which (name, name) pairs deliver."""

    def __init__(self):
        self.nodes: dict[str, MetaLogNode] = {}
        self.up: set[str] = set()
        self.cut: set[frozenset] = set()
        self.learned: dict[str, dict[int, object]] = {}

    def add(self, name, n):
        self.nodes[name] = n
        self.up.add(name)
        self.learned[name] = {}

    def route(self, name, to_id):
        """The node a message to ``to_id`` reaches: the live one with that id."""
        for other, n in self.nodes.items():
            if n.id == to_id and other in self.up and frozenset((name, other)) not in self.cut:
                return other
        return None

    def run(self, ticks=200, until=lambda: False):
        for _ in range(ticks):
            for name in sorted(self.up):
                self.nodes[name].tick()
            for _ in range(20):
                moved = False
                for name in sorted(self.up):
                    n = self.nodes[name]
                    while n.has_ready():
                        rd = n.ready()
                        sent = []
                        finish_ready(n, rd, install=lambda s: None,
                                     apply=lambda slot, v, name=name: self.learned[name].__setitem__(slot, v),
                                     send=lambda msgs: sent.extend(msgs))
                        tag = n.cluster
                        for to, msg in sent:
                            dst = self.route(name, to)
                            if dst is not None:
                                self.nodes[dst].step(n.id, msg, tag)
                                moved = True
                if not moved:
                    break
            if until():
                return True
        return until()

    def leader(self, names):
        return next((x for x in names if self.nodes[x].role.name == "LEADER"), None)

    def choose(self, names, value, slot):
        assert self.run(400, lambda: self.leader(names) is not None), "no leader"
        self.nodes[self.leader(names)].propose(value)
        assert self.run(400, lambda: all(slot in self.learned[x] for x in names)), \
            f"slot {slot} not learned by {names}"


def wiped_seed_scenario(y_bootstrapped: bool) -> Net:
    """X = {a, b, c} chooses its bootstrap, then "v" at slot 1 with a and b (c cut off).
    a is wiped and starts as the only seed of Y (an empty acceptor state; Y's slot 0
    chosen or not yet). b goes down; c reconnects and tries to get "w" chosen."""
    net = Net()
    for i, t in X_TOKENS.items():
        net.add(i, node(i, ("a", "b", "c"), t))
    net.choose(["a", "b", "c"], X0, 0)
    net.cut |= {frozenset(("c", "a")), frozenset(("c", "b"))}
    net.run(40)  # c, if it led, loses its quorum
    net.choose(["a", "b"], "v", 1)
    net.up.discard("a")                       # a's disk is wiped
    net.add("a'", node("a", ("a",), "ta2"))  # it bootstraps alone under the same id
    net.cut |= {frozenset(("a'", "b")), frozenset(("a'", "c"))}  # the others paused meanwhile
    if y_bootstrapped:
        net.choose(["a'"], Y0, 0)
    net.up.discard("b")
    net.cut.clear()
    c = net.nodes["c"]
    c.propose("w")
    net.run(600, lambda: 1 in net.learned["c"])
    return net


@pytest.mark.parametrize("y_bootstrapped", [True, False])
def test_a_wiped_seed_in_a_cluster_of_its_own_never_votes_in_the_real_one(y_bootstrapped):
    net = wiped_seed_scenario(y_bootstrapped)
    assert net.learned["c"].get(1) in (None, "v"), "slot 1 of X chosen twice"
    assert net.nodes["c"].role.name != "LEADER"  # a' never promised: no majority for c
    if y_bootstrapped:
        assert net.nodes["a'"].cluster == Y0["cluster"] != X0["cluster"]
        assert net.nodes["a'"].is_acceptor  # it still votes in Y, its own cluster


def test_the_unsafe_variant_without_the_identity_check_chooses_two_values(monkeypatch):
    """The check switched off: a' promises and accepts c's messages with its empty state,
    and X's slot 1 gets a second value: the scenario above is strong enough to catch it."""
    monkeypatch.setattr(_Node, "_admits", lambda self, sender, msg, cluster: True)
    net = wiped_seed_scenario(y_bootstrapped=True)
    assert net.learned["b"][1] == "v" and net.learned["c"].get(1) == "w"


def test_a_seed_store_not_named_by_slot_0_stops_voting_once_it_learns_it():
    """Rule 5: a wiped seed that has not bootstrapped learns X's log (X's commits reach
    it: it is listed there). Its empty state is not the one slot 0 names: it drops its
    acceptor and proposer. A seed whose token slot 0 names keeps its vote."""
    wiped = node("a", ("a", "b", "c"), "ta2")
    kept = node("b", ("a", "b", "c"), "tb1")
    for n in (wiped, kept):
        assert n.is_acceptor and not n.cluster_known
        n.step("c", Commit(((0, X0),), 1), X0["cluster"])  # learning: allowed when tagged
        assert n.cluster_known and n.cluster == X0["cluster"]
    assert not wiped.is_acceptor and wiped.disowned
    assert kept.is_acceptor and not kept.disowned
    wiped.step("c", Prepare(Ballot(5, 2), 1), X0["cluster"])
    assert not [m for _, m in wiped.ready().messages if type(m).__name__ == "Promise"]


def test_rule_5_holds_for_a_node_rebuilt_from_a_snapshot():
    data = {"cluster": X0["cluster"], "seed_tokens": X_TOKENS}
    from dynamopy.core.paxos import Snapshot
    wiped = MetaLogNode("a", ("a", "b", "c"), random.Random(0), persisted=AcceptorState(),
                        snapshot=Snapshot(5, data), token="ta2",
                        identity=cluster_identity.identity())
    assert wiped.cluster == X0["cluster"] and not wiped.is_acceptor


def test_messages_of_another_or_no_cluster_are_refused_but_the_log_is_served_to_anyone():
    x = node("b", ("a", "b", "c"), "tb1")
    x.step("c", Commit(((0, X0),), 1), X0["cluster"])
    rd = x.ready(); x.advance(rd)
    for tag in (None, Y0["cluster"]):  # untagged (a seed before any bootstrap) or Y
        x.step("a", Prepare(Ballot(9, 0), 1), tag)
        x.step("a", Accept(Ballot(9, 0), ((1, "w"),)), tag)
    rd = x.ready()
    assert not rd.messages and x.acceptor_state().promised < Ballot(9, 0)
    x.advance(rd)
    x.step("a", CatchupRequest(0), None)  # a joiner knows no cluster yet: served
    rd = x.ready()
    assert [type(m).__name__ for _, m in rd.messages] == ["CatchupReply"]
    x.advance(rd)
    x.step("a", Prepare(Ballot(9, 0), 1), X0["cluster"])  # its own cluster: answered
    assert [type(m).__name__ for _, m in x.ready().messages] == ["Promise"]


def test_before_slot_0_a_seed_votes_only_on_untagged_messages():
    s = node("b", ("a", "b", "c"), "tb1")
    s.step("a", Prepare(Ballot(3, 0), 0), X0["cluster"])  # a cluster's: never a vote here
    rd = s.ready()
    assert not rd.messages
    s.advance(rd)
    s.step("a", Prepare(Ballot(3, 0), 0), None)  # a fellow seed before the bootstrap
    assert [type(m).__name__ for _, m in s.ready().messages] == ["Promise"]


def test_a_legacy_log_without_identity_behaves_as_before():
    legacy0 = {"op": "bootstrap", "members": [{"id": i, "url": "", "peer": i} for i in "abc"]}
    x = node("b", ("a", "b", "c"), "tb1")
    x.step("c", Commit(((0, legacy0),), 1), None)
    rd = x.ready(); x.advance(rd)
    assert x.cluster_known and x.cluster is None and x.is_acceptor
    x.step("a", Prepare(Ballot(9, 0), 1), None)
    assert [type(m).__name__ for _, m in x.ready().messages] == ["Promise"]


def test_votes_made_before_slot_0_was_learned_never_leave_under_its_identity():
    """Rule 2: a promise to a fellow seed's untagged Prepare is queued; in the same round
    the node learns slot 0 (it is not named there: a wiped store). The queued promise is
    dropped, not sent tagged with the cluster it just learned."""
    s = node("a", ("a", "b", "c"), "ta2")
    s.step("b", Prepare(Ballot(3, 1), 0), None)
    s.step("c", Commit(((0, X0),), 1), X0["cluster"])
    kinds = [type(m).__name__ for _, m in s.ready().messages]
    assert "Promise" not in kinds and s.disowned


def test_a_tagged_heartbeat_before_slot_0_teaches_the_log_not_a_leader():
    """Rule 4: a node that does not know its cluster yet takes a cluster's heartbeat only as
    a hint that slots are chosen: it asks that sender for the log, and does not follow it
    (a leader of a cluster it may not belong to)."""
    s = node("b", ("a", "b", "x"), "tb1")
    s.step("c", Heartbeat(Ballot(7, 0), 3), X0["cluster"])
    asked, sent = set(), []
    for _ in range(60):
        s.tick()
        rd = s.ready()
        sent += rd.messages
        asked |= {to for to, m in rd.messages if type(m) is CatchupRequest}
        s.advance(rd)
    assert "c" in asked, "the heartbeat's sender was never asked for the log"
    assert s.leader != "c" and not s.cluster_known
    assert not any(type(m).__name__ == "HeartbeatAck" and to == "c" for to, m in sent)


@pytest.mark.parametrize("slot", [1, 5])
def test_a_node_rebuilt_from_any_snapshot_knows_its_cluster(slot):
    """Rule 1 from a snapshot: even one that compacted slot 0 alone (slot 1)."""
    from dynamopy.core.paxos import Snapshot
    data = {"cluster": X0["cluster"], "seed_tokens": X_TOKENS}
    kept = MetaLogNode("b", ("a", "b", "c"), random.Random(0), persisted=AcceptorState(),
                       snapshot=Snapshot(slot, data), token="tb1",
                       identity=cluster_identity.identity())
    assert kept.cluster_known and kept.cluster == X0["cluster"] and kept.is_acceptor


def test_requests_queued_before_slot_0_still_leave_once_it_is_learned():
    """Rule 2 keeps chosen values and requests: a learner's proposal forwarded to an
    acceptor in the round it learns slot 0 is still sent (only votes are dropped)."""
    d = node("d", ("a", "b", "c"), "td1", state=False)
    d.propose("v")
    d.step("c", Commit(((0, X0),), 1), X0["cluster"])
    assert d.cluster_known
    kinds = [type(m).__name__ for _, m in d.ready().messages]
    assert "Propose" in kinds


def test_a_seed_leading_before_slot_0_and_not_named_by_it_stops_leading():
    """Rule 5 on a leader: a wiped seed that elected itself (alone, untagged) and then
    learns a slot 0 that does not name its store drops its vote and its leadership."""
    a = node("a", ("a",), "ta2")
    for _ in range(100):
        a.tick()
        rd = a.ready()
        a.advance(rd)
        if a.role.name == "LEADER":
            break
    assert a.leader == "a"
    a.step("b", Commit(((0, X0),), 1), X0["cluster"])
    assert a.disowned and a.leader is None and a.role.name != "LEADER"
