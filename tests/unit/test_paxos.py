"""Multi-Paxos metadata log: acceptor rules, leader scenarios, restart, snapshot
catch-up, the Ready contract, and a Hypothesis agreement property over random message
schedules."""

from __future__ import annotations

import functools
import os
import random
from collections import deque

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynamopy.core.paxos import (
    NOOP, Accept, Accepted, Acceptor, AcceptorState, Ballot, Heartbeat, MetaLogNode, Nack,
    Prepare, Promise, Ready, Role, Snapshot, finish_ready,
)
from dynamopy.sim.invariants import check_chosen_unique

B1, B2, B3 = Ballot(1, 0), Ballot(1, 1), Ballot(2, 0)
# Seeded schedules in test_no_two_values_chosen_seeded_schedules; mutation testing
# (dynamopy.benchlib.mutation) runs fewer per mutant.
SCHEDULES = int(os.environ.get("DYNAMOPY_PAXOS_SCHEDULES", "1500"))


# -- acceptor rules ---------------------------------------------------------------------


def test_acceptor_promises_higher_and_nacks_lower():
    a = Acceptor()
    assert isinstance(a.on_prepare(B2, 0), Promise)
    r = a.on_prepare(B1, 0)
    assert r == Nack(B1, B2)
    assert isinstance(a.on_prepare(B2, 0), Promise)  # a retransmitted prepare: same answer
    assert a.promised == B2


def test_acceptor_accepts_at_or_above_promise_only():
    a = Acceptor()
    a.on_prepare(B2, 0)
    assert a.on_accept(B1, [(0, "x")], 0) == Nack(B1, B2)
    assert a.on_accept(B2, [(0, "y"), (1, "z")], 0) == Accepted(B2, (0, 1), 0)
    assert a.on_accept(B3, [(0, "w")], 0) == Accepted(B3, (0,), 0)  # a higher accept also promises
    assert a.promised == B3
    assert a.accepted == {0: (B3, "w"), 1: (B2, "z")}


def test_promise_reports_accepted_values_from_slot():
    a = Acceptor()
    a.on_accept(B1, [(0, "x"), (3, "y")], 0)
    p = a.on_prepare(B2, 1)
    assert p.accepted == ((3, B1, "y"),)
    assert p.compacted_below == 0


def test_acceptor_update_round_trips_to_state():
    a = Acceptor()
    a.on_prepare(B1, 0)
    a.on_accept(B2, [(0, "x"), (1, "y")], 0)
    upd = a.take_update()
    assert upd.promised == B2 and [s for s, _, _ in upd.accepted] == [0, 1]
    assert a.take_update() is None  # taken: nothing pending
    a.compact(1)
    st_ = AcceptorState().apply(upd).apply(a.take_update())
    assert st_ == AcceptorState(B2, {1: (B2, "y")}, 1)
    assert Acceptor(st_).state() == st_


def test_compacted_slots_are_not_accepted_again():
    a = Acceptor()
    a.on_accept(B1, [(0, "x"), (1, "y")], 0)
    a.compact(1)
    assert a.on_accept(B2, [(0, "other"), (1, "y")], 2) == Accepted(B2, (1,), 2)
    assert a.on_prepare(B3, 0).compacted_below == 1


# -- a small synchronous cluster harness ----------------------------------------------


class Cluster:
    """Nodes plus what survives their crashes; messages go through a FIFO pool."""

    def __init__(self, acceptors=("a", "b", "c"), learners=("d",), seed=0, **kw):
        self.acceptors, self.ids, self.kw = tuple(acceptors), tuple(acceptors) + tuple(learners), kw
        self.rng = random.Random(seed)
        self.durable = {n: AcceptorState() for n in acceptors}
        self.values: dict[str, list] = {n: [] for n in self.ids}  # the app's applied log
        self.snap: dict[str, Snapshot | None] = {n: None for n in self.ids}
        self.installed: dict[str, list[Snapshot]] = {n: [] for n in self.ids}
        self.pool: deque = deque()
        self.nodes: dict[str, MetaLogNode] = {}
        self.block = lambda frm, to, msg: False
        for n in self.ids:
            self.start(n)

    def start(self, n):
        base = self.snap[n].slot if self.snap[n] else 0
        log = [(base + i, v) for i, v in enumerate(self.values[n][base:])]
        node = MetaLogNode(n, self.acceptors, random.Random(self.rng.random()),
                           persisted=self.durable.get(n), snapshot=self.snap[n], log=log, **self.kw)
        node.set_learners(self.ids)
        self.nodes[n] = node

    def crash(self, n):
        del self.nodes[n]

    def flush(self, n):
        node = self.nodes[n]
        rd = node.ready()
        if rd.persist:
            self.durable[n] = self.durable[n].apply(rd.persist)

        def install(snapshot):
            self.installed[n].append(snapshot)
            self.values[n] = list(snapshot.data)
            self.snap[n] = snapshot

        def apply(slot, v):
            assert slot == len(self.values[n])
            self.values[n].append(v)

        finish_ready(node, rd, install=install, apply=apply,
                     send=lambda msgs: self.pool.extend((n, to, m) for to, m in msgs))

    def deliver_all(self, limit=100_000):
        for n in list(self.nodes):
            self.flush(n)
        while self.pool and limit:
            limit -= 1
            frm, to, msg = self.pool.popleft()
            if to in self.nodes and not self.block(frm, to, msg):
                self.nodes[to].step(frm, msg)
                self.flush(to)

    def run(self, ticks):
        for _ in range(ticks):
            for node in self.nodes.values():
                node.tick()
            self.deliver_all()

    def run_only(self, ids, ticks):
        for _ in range(ticks):
            for n in ids:
                self.nodes[n].tick()
            self.deliver_all()

    def leaders(self):
        return [n for n, x in self.nodes.items() if x.role is Role.LEADER]

    def propose(self, n, value):
        self.nodes[n].propose(value)
        self.deliver_all()

    def compact(self, n):
        vals = self.values[n]
        snap = Snapshot(len(vals), tuple(vals))
        self.snap[n] = snap
        self.nodes[n].compact(len(vals), snap)
        self.flush(n)


def real(values):
    return [v for v in values if v is not NOOP]


# -- scenarios --------------------------------------------------------------------------


def test_single_leader_commits_in_order_everywhere():
    c = Cluster()
    c.run(40)
    assert len(c.leaders()) == 1
    for i in range(10):
        c.propose(c.ids[i % 4], {"rid": i})
    c.run(5)
    for n in c.ids:
        assert real(c.values[n]) == real(c.values["a"])
        assert [v["rid"] for v in real(c.values[n])] == list(range(10))


def test_single_acceptor_cluster():
    c = Cluster(acceptors=("a",), learners=("b", "c"))
    c.run(25)
    assert c.leaders() == ["a"]
    c.propose("c", {"rid": 1})
    c.run(3)
    assert all(real(c.values[n]) == [{"rid": 1}] for n in c.ids)


def test_leader_change_preserves_chosen_values():
    c = Cluster()
    c.run(40)
    (old,) = c.leaders()
    for i in range(5):
        c.propose("d", {"rid": i})
    before = list(c.values["d"])
    c.crash(old)
    c.run(60)
    (new,) = c.leaders()
    assert new != old
    c.propose("d", {"rid": "after"})
    c.run(3)
    assert c.values["d"][: len(before)] == before
    assert real(c.values["d"])[-1] == {"rid": "after"}


def test_value_accepted_by_a_bare_majority_survives_when_nobody_learned_it():
    """The leader's Accept reaches one other acceptor; every Accepted and Commit is
    lost and the leader dies. The value is chosen (2 of 3), so the next leader must
    find it in phase 1 and keep it at the same slot."""
    c = Cluster()
    c.run(40)
    (old,) = c.leaders()
    other = next(a for a in c.acceptors if a != old)
    slot = c.nodes[old].chosen_below
    c.block = lambda frm, to, msg: frm != old or not (isinstance(msg, Accept) and to == other)
    c.nodes[old].propose({"rid": "x"})
    c.deliver_all()
    assert c.durable[other].accepted[slot][1] == {"rid": "x"}
    assert all(len(c.values[n]) == slot for n in c.ids if n != old)  # nobody learned it
    c.crash(old)
    c.block = lambda frm, to, msg: False
    c.run(60)
    assert c.values["d"][slot] == {"rid": "x"}


def test_restart_resumes_without_redelivery():
    c = Cluster()
    c.run(40)
    for i in range(4):
        c.propose("d", {"rid": i})
    c.run(2)
    n = c.acceptors[0]
    before = list(c.values[n])
    c.crash(n)
    c.start(n)
    assert c.nodes[n].applied_slot == len(before)
    c.propose("d", {"rid": "late"})
    c.run(30)
    assert c.values[n][: len(before)] == before and real(c.values[n])[-1] == {"rid": "late"}


def test_lagging_learner_catches_up_from_a_snapshot():
    c = Cluster(learners=("d", "e"))
    c.run(40)
    c.crash("e")
    for i in range(20):
        c.propose("d", {"rid": i})
    c.run(2)
    for n in c.acceptors + ("d",):
        c.compact(n)
    for i in range(20, 23):
        c.propose("d", {"rid": i})
    c.start("e")  # empty store: must take a snapshot then the tail
    c.run(20)
    assert c.installed["e"], "expected a snapshot install"
    assert c.values["e"] == c.values["d"]


def test_catchup_after_missed_commits():
    c = Cluster()
    c.run(40)
    c.block = lambda frm, to, msg: to == "d"  # d misses everything for a while
    for i in range(5):
        c.propose("a", {"rid": i})
    c.block = lambda frm, to, msg: False
    c.run(10)
    assert c.values["d"] == c.values["a"] and len(real(c.values["d"])) == 5


def test_phase1_adopts_the_highest_ballot_value():
    """Slot s: a accepted v under a low ballot (alone); then b chose w under a higher
    ballot with c while a was cut off. When a leads again (quorum {a, c}, never told
    that s is chosen) its phase 1 sees (b1, v) and (b2, w) and must re-propose w."""
    c = Cluster(learners=(), leader_lease=False)
    c.run(40)
    a = c.leaders()[0]
    b, cc = [x for x in c.acceptors if x != a]
    slot = c.nodes[a].chosen_below
    c.block = lambda frm, to, msg: a in (frm, to)  # a is cut off entirely
    c.nodes[a].propose({"rid": "v"})               # accepted by a alone
    c.deliver_all()
    assert c.durable[a].accepted[slot][1] == {"rid": "v"}
    c.run_only((b, cc), 60)                        # b or c takes over
    (new,) = [x for x in (b, cc) if c.nodes[x].role is Role.LEADER]
    c.nodes[new].propose({"rid": "w"})
    c.run_only((b, cc), 5)
    assert c.values[new][slot] == {"rid": "w"}
    other = cc if new == b else b
    c.crash(new)
    # a hears only prepare/accept traffic from the survivor: it must find w via phase 1.
    c.block = lambda frm, to, msg: to == a and not isinstance(msg, (Promise, Accepted, Nack))
    c.run_only((a,), 100)
    assert c.nodes[a].role is Role.LEADER
    assert c.durable[other].accepted[slot][1] == {"rid": "w"}
    assert c.durable[a].accepted[slot][1] == {"rid": "w"}


# -- the Ready contract -----------------------------------------------------------------


def test_ready_contract_misuse_raises():
    n = MetaLogNode("a", ("a",), random.Random(0), persisted=AcceptorState())
    with pytest.raises(RuntimeError, match=r"^advance\(\) without ready\(\)$"):
        n.advance(Ready(None, None, (), ()))
    rd = n.ready()
    with pytest.raises(RuntimeError, match=r"^ready\(\) called again before advance\(\)$"):
        n.ready()
    for feed in (n.tick, lambda: n.step("b", Heartbeat(Ballot(1, 1), 0)), lambda: n.propose(1),
                 lambda: n.compact(0, Snapshot(0, None))):
        with pytest.raises(RuntimeError,
                           match=r"^call advance\(\) before feeding the node more input$"):
            feed()
    n.advance(rd)
    with pytest.raises(ValueError):
        n.propose(None)
    with pytest.raises(ValueError):
        MetaLogNode("x", ("a",), random.Random(0), persisted=AcceptorState())


def test_own_vote_is_in_the_same_ready_as_the_commit():
    """A single acceptor chooses with its own vote: the accept to persist and the
    committed entry come out together, so the caller syncs before applying."""
    n = MetaLogNode("a", ("a",), random.Random(0), persisted=AcceptorState())
    for _ in range(25):
        n.tick()
    n.advance(n.ready())
    assert n.role is Role.LEADER
    n.propose({"rid": 1})
    rd = n.ready()
    assert rd.persist is not None and rd.persist.accepted[-1][2] == {"rid": 1}
    assert rd.committed[-1][1] == {"rid": 1}


# -- agreement under arbitrary schedules ------------------------------------------------


def run_schedule(pick, integer) -> None:
    """3 acceptors, 2 of which campaign and propose concurrently (a and b tick; c only
    answers; the leader lease is off so the two duel freely). ``pick(options)`` and
    ``integer(lo, hi)`` choose every delivery, drop, duplicate, tick, proposal and crash.
    Oracle: a value is chosen once a majority durably accepted it under one ballot; no
    slot may have two. Learners must agree too (and a learner raises if it ever learns
    two values for one slot)."""
    acc = ("a", "b", "c")
    seed = integer(0, 2**16)
    durable = {n: AcceptorState() for n in acc}
    applied = {n: [] for n in acc}
    nodes, pool, accepts = {}, [], []

    def boot(n):
        nodes[n] = MetaLogNode(n, acc, random.Random(f"{seed}-{n}-{len(accepts)}"),
                               persisted=durable[n], log=list(enumerate(applied[n])),
                               election_ticks=3, heartbeat_ticks=1, leader_lease=False)

    def flush(n):
        rd = nodes[n].ready()
        if rd.persist:
            durable[n] = durable[n].apply(rd.persist)
            accepts.extend((n, s, b, v) for s, b, v in rd.persist.accepted)

        def apply(s, v):
            assert s == len(applied[n])
            applied[n].append(v)

        finish_ready(nodes[n], rd, apply=apply,
                     send=lambda msgs: pool.extend((n, to, m) for to, m in msgs))

    for n in acc:
        boot(n)
    kinds = ["tick"] * 3 + ["deliver"] * 4 + ["drop", "dup", "propose", "propose", "crash"]
    counter = 0
    for _ in range(integer(10, 300)):
        kind = pick(kinds)
        if kind == "tick":
            n = pick("ab")
            for _ in range(integer(1, 3)):
                nodes[n].tick()
            flush(n)
        elif kind == "propose":
            n = pick("ab")
            counter += 1
            nodes[n].propose({"rid": f"{n}{counter}"})
            flush(n)
        elif kind == "crash":
            boot(pick(acc))  # everything not persisted is gone; old messages stay in flight
        elif pool:
            i = integer(0, len(pool) - 1)
            frm, to, msg = pool[i]
            if kind != "dup":
                pool.pop(i)
            if kind != "drop":
                nodes[to].step(frm, msg)
                flush(to)
        assert check_chosen_unique(accepts, 3) == []
    longest = max(applied.values(), key=len)
    for log in applied.values():
        assert log == longest[: len(log)]


@functools.lru_cache(maxsize=None)
def _between(lo: int, hi: int):
    """``st.integers(lo, hi)``, built once per range: a schedule draws thousands of times,
    and building a strategy per draw cost more than the Paxos steps themselves."""
    return st.integers(lo, hi)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_two_values_chosen_for_a_slot(data):
    def pick(opts):  # what sampled_from draws (an index; shrinks towards the first option)
        opts = list(opts)
        return opts[data.draw(_between(0, len(opts) - 1))]
    run_schedule(pick, lambda lo, hi: data.draw(_between(lo, hi)))


def test_no_two_values_chosen_seeded_schedules():
    """The same property over many cheap seeded schedules (breadth; Hypothesis shrinks)."""
    for seed in range(SCHEDULES):
        rng = random.Random(seed)
        try:
            run_schedule(lambda opts: rng.choice(list(opts)), rng.randint)
        except Exception as e:
            raise AssertionError(f"schedule seed {seed}: {e!r}") from e


def test_learner_tolerates_the_msgpack_round_trip_but_not_a_real_conflict():
    from dynamopy.core.paxos import PaxosSafetyError
    from dynamopy.core.paxos.learner import Learner

    lr = Learner(None, ())
    assert lr.learn(0, {"rid": "x", "ids": ("a", "b")})
    assert not lr.learn(0, {"rid": "x", "ids": ["a", "b"]})  # the decoded copy of the same value
    with pytest.raises(PaxosSafetyError):
        lr.learn(0, {"rid": "y"})


# -- a listed acceptor without durable state never votes --------------------------------


def test_listed_acceptor_without_durable_state_does_not_vote():
    """A node of the group rebuilt with ``persisted=None`` (its disk was wiped) answers no
    Prepare and no Accept, and never campaigns; with ``AcceptorState()`` it would."""
    amnesiac = MetaLogNode("c", ("a", "b", "c"), random.Random(0))
    assert not amnesiac.is_acceptor and amnesiac.in_group
    amnesiac.step("a", Prepare(Ballot(5, 0), 0))
    amnesiac.step("a", Accept(Ballot(5, 0), ((0, {"rid": "x"}),)))
    for _ in range(100):
        amnesiac.tick()
    rd = amnesiac.ready()
    assert rd.persist is None and amnesiac.role is Role.FOLLOWER
    assert not [m for _, m in rd.messages if isinstance(m, (Promise, Accepted, Prepare))]
    voter = MetaLogNode("c", ("a", "b", "c"), random.Random(0), persisted=AcceptorState())
    voter.step("a", Prepare(Ballot(5, 0), 0))
    assert any(isinstance(m, Promise) for _, m in voter.ready().messages)
