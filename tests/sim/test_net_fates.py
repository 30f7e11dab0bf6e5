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


def test_the_in_memory_transport_honours_the_fates():
    """With ``NetFates`` as its ``delay_s``: a lost request is the caller's timeout and never
    reaches the handler; a one-way cut stops only the group's requests; a delay window
    shows in the call's (virtual) duration."""
    import asyncio

    import pytest

    from dynamopy.peer.errors import PeerTimeout
    from dynamopy.sim.clock import run_virtual
    from dynamopy.sim.transport import MemoryNetwork

    state = {"now": FaultState()}
    delivered = []

    async def main():
        net = MemoryNetwork(delay_s=NetFates(random.Random(3), lambda: state["now"]))
        a, b = net.transport("a"), net.transport("b")

        async def handler(method, payload, peer_id):
            delivered.append((peer_id, payload))
            return payload

        await a.serve(handler, {})
        await b.serve(handler, {})
        loop = asyncio.get_running_loop()
        assert await a.call("b", "echo", 1, 0.5) == 1
        state["now"] = _with(Fault(FaultKind.ONE_WAY, 0, 10, group=("a",)))
        t0 = loop.time()
        with pytest.raises(PeerTimeout):
            await a.call("b", "echo", 2, 0.5)
        assert loop.time() - t0 == pytest.approx(0.5, abs=1e-3)
        assert await b.call("a", "echo", 3, 0.5) == 3
        state["now"] = _with(Fault(FaultKind.DELAY, 0, 10, ms=200))
        t0 = loop.time()
        assert await a.call("b", "echo", 4, 0.5) == 4 and 0.2 < loop.time() - t0 < 0.21
        await asyncio.sleep(10)  # a lost request stays lost
        await a.close()
        await b.close()

    run_virtual(main())
    assert delivered == [("a", 1), ("b", 3), ("a", 4)]
