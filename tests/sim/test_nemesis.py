"""The nemesis schedule generator: deterministic per seed, keeps its rules over many
seeds and parameter sets, and the rule checker catches schedules that break them."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest

from dynamopy.sim.nemesis import (
    ALL_KINDS, CHANGES, Action, Fault, FaultKind, NemesisParams, Schedule, generate, parse_kinds,
    rule_violations,
)

FIVE = NemesisParams(nodes=("n0", "n1", "n2", "n3", "n4"), spares=("n5", "n6"), fixed=("n0", "n1", "n2"))
PARAMS = {
    "five-n3w2": FIVE,
    "seven-n5w3": NemesisParams(nodes=tuple(f"n{i}" for i in range(7)), spares=("n7",), replication_n=5,
                                write_quorum=3, faults=20, changes=3, duration_ms=20_000),
    "three-n3w1-busy": NemesisParams(nodes=("a", "b", "c"), spares=("d",), write_quorum=1, faults=30,
                                     max_window_ms=6000),
    "short-windows": replace(FIVE, faults=40, min_window_ms=10, max_window_ms=100, settle_ms=500),
}


def _gen(seed: int, params: NemesisParams = FIVE) -> Schedule:
    return generate(random.Random(seed), params)


def test_same_seed_same_schedule_and_trace():
    for seed in range(20):
        a, b = _gen(seed), _gen(seed)
        assert a == b and a.events == b.events and a.describe() == b.describe()
    assert len({_gen(s).faults for s in range(20)}) == 20


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_rules_hold_over_many_seeds(name):
    params = PARAMS[name]
    for seed in range(200 if params.faults <= 20 else 80):  # ~3,000 windows placed per set
        s = _gen(seed, params)
        assert rule_violations(s) == [], (seed, s.describe())
        # The liveness phase starts with nothing broken: every window's end is an event by then.
        starts = Counter(e.fault for e in s.events if e.action is Action.START)
        ends = Counter(e.fault for e in s.events if e.action is Action.END)
        assert all(ends[f] == (0 if f.kind in CHANGES else 1) for f in starts)
        assert all(e.t_ms <= params.duration_ms for e in s.events)
        assert s.events[-1].action is Action.HEAL_ALL and s.events[-1].t_ms == params.duration_ms
        assert max(len(s.down_at(e.t_ms)) for e in s.events) <= params.max_down


def test_events_are_in_time_order_with_ends_before_starts():
    for seed in range(50):
        evs = _gen(seed, PARAMS["short-windows"]).events
        keys = [(e.t_ms, e.action is not Action.END) for e in evs[:-1]]
        assert keys == sorted(keys)
        for f in {e.fault for e in evs if e.fault is not None and e.fault.end_ms is not None}:
            i = evs.index(next(e for e in evs if e.fault == f and e.action is Action.START))
            j = evs.index(next(e for e in evs if e.fault == f and e.action is Action.END))
            assert i < j


def test_every_kind_shows_up_across_seeds():
    seen = Counter(f.kind for seed in range(100) for f in _gen(seed).faults)
    assert set(seen) == ALL_KINDS, set(ALL_KINDS) - set(seen)
    assert sum(_gen(s).skipped for s in range(100)) < sum(seen.values())  # most draws fit


def test_only_enabled_kinds_and_no_quorum_breaking_fault_when_nothing_may_go_down():
    only = replace(FIVE, kinds=parse_kinds("crash,loss"))
    assert {f.kind for s in range(50) for f in _gen(s, only).faults} == {FaultKind.CRASH, FaultKind.LOSS}
    strict = replace(FIVE, write_quorum=3)  # N = W: no node may be down
    kinds = {f.kind for s in range(100) for f in _gen(s, strict).faults}
    assert kinds.isdisjoint({FaultKind.CRASH, FaultKind.PAUSE, FaultKind.PARTITION, FaultKind.ONE_WAY,
                             FaultKind.REMOVE})
    assert FaultKind.LOSS in kinds and FaultKind.JOIN in kinds


def test_unavailability_runs_may_take_more_nodes_down():
    loose = replace(FIVE, unavailable=True, faults=30, kinds=parse_kinds("crash,pause,partition"))
    worst = max(len(s.down_at(e.t_ms)) for seed in range(50) for s in [_gen(seed, loose)] for e in s.events)
    assert worst > FIVE.max_down
    assert all(rule_violations(_gen(seed, loose)) == [] for seed in range(50))


def test_membership_changes_keep_enough_members_and_spread_out():
    for seed in range(100):
        s = _gen(seed, replace(FIVE, changes=4, settle_ms=1500))
        changes = [f for f in s.faults if f.kind in CHANGES]
        assert all(len(s.members_at(e.t_ms)) >= 3 for e in s.events)
        assert all(b.start_ms - a.start_ms >= 1500 for a, b in zip(changes, changes[1:]))
        joined = [f.node for f in changes if f.kind is FaultKind.JOIN]
        assert len(joined) == len(set(joined)) and set(joined) <= {"n5", "n6"}
        assert not any(f.node in ("n0", "n1", "n2") for f in changes if f.kind is not FaultKind.JOIN)


def test_rule_checker_catches_broken_schedules():
    p = replace(FIVE, fixed=())

    def bad(*faults: Fault) -> list[str]:
        return rule_violations(Schedule(p, tuple(faults)))

    crash = lambda node, a, b: Fault(FaultKind.CRASH, a, b, node=node)  # noqa: E731
    assert bad(crash("n1", 0, 100)) == []
    assert bad(crash("n1", 0, 500), crash("n2", 100, 200)) == ["2 nodes down at 100ms (n1,n2), more than 1"]
    assert bad(crash("n1", 0, 500), Fault(FaultKind.PARTITION, 300, 400, group=("n2",)))[-1].startswith(
        "2 nodes down at 300ms")
    assert bad(crash("n1", 9000, 10_001)) == ["crash [9000, 10001) is not healed by 10000ms"]
    assert bad(Fault(FaultKind.PAUSE, 0, 100, node="n1"), crash("n1", 50, 60)) == [
        "pause n1 [0, 100) and crash n1 [50, 60) overlap"]
    assert bad(Fault(FaultKind.LOSS, 0, 100, prob=0.1), Fault(FaultKind.LOSS, 99, 200, prob=0.2)) == [
        "loss [0, 100) and loss [99, 200) overlap"]
    assert bad(Fault(FaultKind.PARTITION, 0, 100, group=("n1",)), Fault(FaultKind.ONE_WAY, 100, 200, group=("n1",))) == []
    assert bad(Fault(FaultKind.REMOVE, 1000, node="n1"), crash("n1", 5000, 6000)) == [
        "crash hits n1, not a member throughout [5000, 6000)"]
    assert bad(Fault(FaultKind.REMOVE, 1000, node="n1"), crash("n2", 1500, 1600)) == [
        "2 nodes down at 1500ms (n1,n2), more than 1"]
    assert bad(Fault(FaultKind.LEAVE, 1000, node="n1"), Fault(FaultKind.LEAVE, 4000, node="n2"),
               Fault(FaultKind.LEAVE, 7000, node="n3")) == ["2 members at 7000ms, fewer than 3"]
    assert bad(Fault(FaultKind.JOIN, 1000, node="n5"), Fault(FaultKind.JOIN, 2000, node="n5")) == [
        "changes at 1000ms and 2000ms are closer than 2000ms", "join of n5, not a spare outside the cluster"]
    assert rule_violations(Schedule(FIVE, (Fault(FaultKind.LEAVE, 1000, node="n0"),))) == [
        "leave of n0, not a member that may go"]
    assert bad(Fault(FaultKind.JOIN, 9000, node="n5")) == [
        "change join n5 at 9000ms does not settle before healing"]
    assert bad(Fault(FaultKind.PARTITION, 0, 10, group=("n9",)))[0].startswith("partition group ('n9',) is not")
    off = Schedule(replace(p, kinds=frozenset({FaultKind.LOSS})), (crash("n1", 0, 10),))
    assert rule_violations(off) == ["kind crash is not enabled"]


def test_describe_reads_as_a_timeline():
    text = _gen(1).describe()
    lines = text.splitlines()
    assert lines[0].startswith("nemesis: ") and "max 1 down" in lines[0] and "heal at 10000ms" in lines[0]
    assert lines[-1] == "   10000ms heal all: every fault undone, liveness phase begins"
    every = "\n".join(_gen(s).describe() for s in range(30))
    for phrase in ("(unsynced writes lost)", "restart n", "pause n", "resume n", "message loss ", "% on",
                   "partition {", "one-way partition: {", "clock of n", "jumps back", "disk of n", "join n5",
                   "leave n", "remove n"):
        assert phrase in every, phrase


def test_parse_kinds():
    assert parse_kinds("all") == ALL_KINDS
    assert parse_kinds("crash, one-way,slow_disk") == {FaultKind.CRASH, FaultKind.ONE_WAY, FaultKind.SLOW_DISK}
    with pytest.raises(ValueError, match="unknown fault kind 'meteor'"):
        parse_kinds("crash,meteor")
    with pytest.raises(ValueError):
        generate(random.Random(0), replace(FIVE, write_quorum=4))


def test_a_slow_disk_slows_one_members_syncs_by_50ms_up_to_the_maximum():
    slow = replace(FIVE, kinds=parse_kinds("slow_disk"), faults=10, max_slow_disk_ms=2000)
    disks = [f for s in range(40) for f in _gen(s, slow).faults]
    assert disks and all(f.kind is FaultKind.SLOW_DISK and f.node and 50 <= f.ms <= 2000 for f in disks)
    assert max(f.ms for f in disks) > 1000  # slower than the request timeout, sometimes


WIPES = replace(FIVE, kinds=frozenset({FaultKind.CRASH, FaultKind.PAUSE, FaultKind.PARTITION, FaultKind.WIPE}),
                never_wiped=("n0",), changes=0, faults=10)


def test_a_wiped_node_counts_as_down_until_healing_and_wipes_are_budgeted():
    placed = 0
    for seed in range(100):
        s = _gen(seed, WIPES)
        assert rule_violations(s) == [], (seed, s.describe())
        wipes = [f for f in s.faults if f.kind is FaultKind.WIPE]
        assert len(wipes) <= 1 and all(w.node != "n0" for w in wipes)
        for w in wipes:
            placed += 1
            # after its restart the node is still down (its replacement may not be done):
            # nothing else is down at any event from the wipe to healing (N-W = 1)
            for e in s.events[:-1]:
                if w.start_ms <= e.t_ms < WIPES.duration_ms:
                    assert s.down_at(e.t_ms) == {w.node}, (seed, e.describe())
    assert placed >= 50   # most schedules get their wipe


def test_rule_checker_refuses_unsafe_wipes():
    wipe = Fault(FaultKind.WIPE, 1000, 2000, node="n3")
    crash_later = Fault(FaultKind.CRASH, 5000, 6000, node="n4")
    p = replace(WIPES, kinds=ALL_KINDS)
    assert rule_violations(Schedule(p, (wipe,))) == []
    assert "2 nodes down at 5000ms (n3,n4), more than 1" in rule_violations(Schedule(p, (wipe, crash_later)))
    second = Fault(FaultKind.WIPE, 3000, 4000, node="n2")
    assert "2 wipes, more than 1" in rule_violations(Schedule(replace(p, unavailable=True), (wipe, second)))
    assert any("never wiped" in v for v in rule_violations(Schedule(p, (Fault(FaultKind.WIPE, 0, 500, node="n0"),))))
    # A removal may share the run with a wipe (the replacement is a removal too): two dead
    # members' removals merge into one change since the removal deadlock was fixed.
    removal = Fault(FaultKind.REMOVE, 4000, node="n4")
    assert not any("removal" in v
                   for v in rule_violations(Schedule(replace(p, unavailable=True), (wipe, removal))))
    leave_after = Fault(FaultKind.LEAVE, 4000, node="n4")
    assert any("too close to the leave of n4" in v
               for v in rule_violations(Schedule(replace(p, unavailable=True), (wipe, leave_after))))
    three = replace(p, nodes=("n0", "n1", "n2"), spares=())
    assert any("too few members" in v for v in rule_violations(Schedule(three, (Fault(FaultKind.WIPE, 0, 500, node="n1"),))))
