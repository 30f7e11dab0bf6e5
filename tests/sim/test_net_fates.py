"""Message fates from the fault state: cut links and drawn losses never arrive, delays
follow the delay and reordering windows, and one seed gives one sequence of fates."""

from __future__ import annotations

import random

from dynamopy.sim.fault_state import FaultState
from dynamopy.sim.nemesis import Action, Fault, FaultKind, NemesisEvent
from dynamopy.sim.net_fates import LOST_S, NetFates


def _with(*faults: Fault) -> FaultState:
    st = FaultState()
    for f in faults:
        st = st.apply(NemesisEvent(f.start_ms, Action.START, f))
    return st


def _fates(st: FaultState, seed: int = 1) -> NetFates:
    return NetFates(random.Random(seed), lambda: st)


def test_a_healthy_network_delivers_with_small_jitter():
    f = _fates(FaultState())
    delays = [f("a", "b", "put") for _ in range(500)]
    assert all(0.0005 <= d <= 0.0025 for d in delays) and len(set(delays)) > 400 and f.lost == 0


def test_cut_links_and_drawn_losses_never_arrive():
    st = _with(Fault(FaultKind.ONE_WAY, 0, 10, group=("a",)), Fault(FaultKind.CRASH, 0, 10, node="c"))
    f = _fates(st)
    assert f("a", "b", "put") == LOST_S and f("b", "a", "put") < 1 and f("b", "c", "get") == LOST_S
    lossy = _fates(_with(Fault(FaultKind.LOSS, 0, 10, prob=0.3)))
    lost = sum(lossy("a", "b", "put") == LOST_S for _ in range(2000))
    assert 500 < lost < 700 and lossy.lost == lost and lossy.sent == 2000


def test_delay_and_reordering_windows():
    slow = _fates(_with(Fault(FaultKind.DELAY, 0, 10, ms=200)))
    assert all(0.2005 <= slow("a", "b", "x") <= 0.2025 for _ in range(100))
    reorder = _fates(_with(Fault(FaultKind.REORDER, 0, 10, prob=0.25)))
    far = sum(reorder("a", "b", "x") > 0.0025 for _ in range(2000))
    assert 400 < far < 600


def test_same_seed_same_fates():
    st = _with(Fault(FaultKind.LOSS, 0, 10, prob=0.2), Fault(FaultKind.REORDER, 0, 10, prob=0.2))
    a, b, c = _fates(st, 5), _fates(st, 5), _fates(st, 6)
    seq = [("a", "b", "put"), ("b", "c", "get")] * 50
    assert [a(*m) for m in seq] == [b(*m) for m in seq] != [c(*m) for m in seq]
