"""The fault-state reducer: what each nemesis event leaves in effect, and that replaying a
generated schedule agrees with the schedule's own view and ends healed."""

from __future__ import annotations

import random
from dataclasses import replace
from itertools import groupby

from dynamopy.sim.fault_state import FaultState
from dynamopy.sim.nemesis import Action, Fault, FaultKind, NemesisEvent, NemesisParams, generate

P = NemesisParams(nodes=("n0", "n1", "n2", "n3", "n4"), spares=("n5", "n6"), fixed=("n0", "n1", "n2"),
                  faults=20, changes=3, settle_ms=1500)


def _start(f: Fault) -> NemesisEvent:
    return NemesisEvent(f.start_ms, Action.START, f)


def _end(f: Fault) -> NemesisEvent:
    return NemesisEvent(f.end_ms, Action.END, f)


def test_replaying_a_schedule_matches_its_down_sets_and_ends_healed():
    for seed in range(60):
        s = generate(random.Random(seed), P)
        removes = [f for f in s.faults if f.kind is FaultKind.REMOVE]
        state = FaultState()
        for t, evs in groupby(s.events[:-1], key=lambda e: e.t_ms):
            for e in evs:
                state = state.apply(e)
            settling = {f.node for f in removes if f.start_ms <= t < f.start_ms + P.settle_ms}
            cut = set(state.partition.group) if state.partition else set()
            # a wiped node runs again after its window but counts as down until healing
            settling |= {f.node for f in s.faults if f.kind is FaultKind.WIPE and f.end_ms <= t} - (
                state.crashed | state.paused | cut)
            assert state.crashed | state.paused | cut == s.down_at(t) - settling, (seed, t)
        assert state.healed, (seed, state)  # every window closed before HEAL_ALL
        assert state.apply(s.events[-1]) == state
        assert state.joined == {f.node for f in s.faults if f.kind is FaultKind.JOIN}
        assert state.wiped == {f.node for f in s.faults if f.kind is FaultKind.WIPE}


def test_partitions_cut_links_both_ways_or_one_way():
    two_way = Fault(FaultKind.PARTITION, 0, 10, group=("a", "b"))
    st = FaultState().apply(_start(two_way))
    assert st.can_send("a", "b") and st.can_send("c", "d")
    assert not st.can_send("a", "c") and not st.can_send("c", "a")
    one_way = Fault(FaultKind.ONE_WAY, 20, 30, group=("a",))
    st = st.apply(_end(two_way)).apply(_start(one_way))
    assert not st.can_send("a", "c") and st.can_send("c", "a") and st.can_send("a", "a")
    assert st.apply(_end(one_way)).healed
    # An end of a partition that is no longer in effect changes nothing.
    assert st.apply(_end(two_way)).partition == one_way


def test_node_faults_and_their_undoing():
    crash = Fault(FaultKind.CRASH, 0, 10, node="a")
    jump = Fault(FaultKind.CLOCK_JUMP, 0, 10, node="b", ms=-7000)
    disk = Fault(FaultKind.SLOW_DISK, 0, 10, node="c", ms=40)
    pause = Fault(FaultKind.PAUSE, 0, 10, node="d")
    st = FaultState()
    for f in (crash, jump, disk, pause):
        st = st.apply(_start(f))
    assert not st.running("a") and not st.can_send("a", "b") and not st.can_send("b", "a")
    assert st.clock_offset_ms("b") == -7000 and st.sync_delay_ms("c") == 40 and st.paused == {"d"}
    assert st.running("d") and st.can_send("d", "b")  # paused: held, not cut
    for f in (crash, jump, disk, pause):
        st = st.apply(_end(f))
    assert st.healed and st.clock_offset_ms("b") == 0 and st.sync_delay_ms("c") == 0


def test_network_fates_and_heal_all_keeps_membership():
    st = FaultState()
    for f in (Fault(FaultKind.LOSS, 0, 10, prob=0.3), Fault(FaultKind.DUPLICATE, 0, 10, prob=0.1),
              Fault(FaultKind.REORDER, 0, 10, prob=0.2), Fault(FaultKind.DELAY, 0, 10, ms=250),
              Fault(FaultKind.CRASH, 0, 10, node="a"), Fault(FaultKind.CLOCK_JUMP, 0, 10, node="b", ms=900),
              Fault(FaultKind.PARTITION, 0, 10, group=("c",))):
        st = st.apply(_start(f))
    assert (st.loss, st.duplicate, st.reorder, st.extra_delay_ms) == (0.3, 0.1, 0.2, 250)
    for f in (Fault(FaultKind.JOIN, 1, node="x"), Fault(FaultKind.LEAVE, 2, node="y"),
              Fault(FaultKind.REMOVE, 3, node="z")):
        st = st.apply(_start(f))
    assert not st.running("z") and not st.healed
    healed = st.apply(NemesisEvent(10, Action.HEAL_ALL))
    assert healed.healed and healed == FaultState(joined={"x"}, left={"y"}, removed={"z"})
    assert healed.running("a") and healed.running("y") and not healed.running("z")
    assert replace(healed, loss=0.01).healed is False
