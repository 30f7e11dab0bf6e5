"""node/defaults_change.py: requests are tracked by the epoch they took the defaults from, and
the leader finishes a change of the R/W defaults only once every member is past it."""

import asyncio
import types

from dynamopy.node.clock import SystemClock
from dynamopy.core.membership import ClusterState, Settings, bootstrap_entry
from dynamopy.node.defaults_change import DefaultsChange
from dynamopy.peer import PeerUnavailable

SEEDS = [{"id": f"n{i}", "url": f"u{i}", "peer": f"p{i}"} for i in (1, 2, 3)]
FLIPPED = ClusterState().apply(bootstrap_entry(SEEDS, Settings(r=1, w=3))).apply(
    {"op": "set_config", "r": 3, "w": 1})  # epoch 2, settling at (3, 3)


def test_the_drained_epoch_is_the_oldest_request_still_running():
    dc = DefaultsChange(me="n1", state=lambda: FLIPPED, clock=None, call_peer=None,
                        is_leader=lambda: False, propose=None)
    assert dc.drained_epoch() == 2
    with dc.track(1):
        with dc.track(2), dc.track(1):
            assert dc.drained_epoch() == 1
        assert dc.drained_epoch() == 1
    assert dc.drained_epoch() == 2 and dc._inflight == {}


ROUNDS = 30


class CountingClock(SystemClock):
    """The node clock for the loop under test, counting its polls: the test runs the leader's
    loop a number of rounds, not a stretch of wall-clock time."""

    def __init__(self) -> None:
        self.polls = 0
        self.done = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.polls += 1
        if self.polls > ROUNDS:
            self.done.set()
        await asyncio.sleep(0)


def run_leader(monkeypatch, drained: dict) -> list:
    """Run the leader's loop ROUNDS rounds; ``drained`` maps member -> reply (or None: down)."""
    proposed = []

    async def main():
        node = types.SimpleNamespace(state=FLIPPED)

        async def call_peer(member, method, payload, timeout_s=None):
            assert method == "defaults_drained"
            if drained[member] is None:
                raise PeerUnavailable(f"{member} down")
            return drained[member]

        async def propose(entry):
            proposed.append(entry)
            node.state = node.state.apply(entry)
            return node.state.epoch

        clock = CountingClock()
        dc = DefaultsChange(me="n1", state=lambda: node.state, clock=clock,
                            call_peer=call_peer, is_leader=lambda: True, propose=propose)
        task = asyncio.ensure_future(dc.run())
        async with asyncio.timeout(10):   # ROUNDS polls, or settled (the loop then idles)
            while not clock.done.is_set() and node.state.rw_in_effect is not None:
                await asyncio.sleep(0)
        task.cancel()

    asyncio.run(main())
    return proposed


def test_the_leader_finishes_the_change_once_every_member_is_past_it(monkeypatch):
    assert run_leader(monkeypatch, {"n2": 2, "n3": 5}) == [
        {"op": "finish_config", "change_epoch": 2}]


def test_a_member_that_lags_or_does_not_answer_holds_the_change(monkeypatch):
    assert run_leader(monkeypatch, {"n2": 2, "n3": 1}) == []  # still runs an old request
    assert run_leader(monkeypatch, {"n2": 2, "n3": None}) == []  # down: silence is no consent
