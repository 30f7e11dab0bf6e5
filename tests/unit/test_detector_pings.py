"""The failure detector's pings (node/detector.py) on virtual time, with a scripted peer: a
peer that answers other calls is pinged less often, and is still seen down as soon as it stops
answering, its clock offset still measured."""

import asyncio
from types import SimpleNamespace

from dynamopy.node.detector import PING_INTERVAL_S, SAMPLE_INTERVAL_S, FailureDetector
from dynamopy.node.metrics import Metrics
from dynamopy.peer import PeerTimeout
from dynamopy.sim.clock import NodeClock, run_virtual


class Peer:
    """``call_peer`` for one scripted peer ``b``: answers pings (counted) with its clock while
    ``alive``; once not, every call times out after the caller's timeout."""

    def __init__(self, clock: NodeClock) -> None:
        self.clock, self.alive, self.pings = clock, True, 0
        self.detector: FailureDetector = None

    async def call_peer(self, member_id, method, payload, timeout_s=None):
        if method == "ping":
            self.pings += 1
        if not self.alive:
            await asyncio.sleep(timeout_s)
            self.detector.report_failure(member_id)
            raise PeerTimeout(f"{member_id}: timed out")
        await asyncio.sleep(0.001)
        self.detector.report_success(member_id)
        return {"epoch": 1, "id": member_id, "wall_ms": self.clock.wall_ms(),
                "clock_trusted": True}


def _detector():
    clock = NodeClock()
    members = {"a": object(), "b": object()}
    state = SimpleNamespace(members=members, epoch=1, member=members.get)
    peer = Peer(clock)
    peer.detector = FailureDetector(
        me="a", state=lambda: state, clock=clock, metrics=Metrics(), call_peer=peer.call_peer,
        note_epoch=lambda epoch, peer_id: None, max_clock_offset_ms=500,
        on_alive=lambda member: None)
    return clock, peer


async def _traffic(clock, peer, until_s: float, every_s: float = 0.05) -> None:
    """Replies to other calls (requests, metadata-log messages) from b, until ``until_s``."""
    while clock.monotonic() < until_s and peer.alive:
        peer.detector.report_success("b")
        await asyncio.sleep(every_s)


def test_an_idle_peer_is_pinged_every_interval():
    async def main():
        clock, peer = _detector()
        task = asyncio.ensure_future(peer.detector.run())
        await asyncio.sleep(10)
        task.cancel()
        assert peer.pings >= 10 / (PING_INTERVAL_S + 0.01) - 2
    run_virtual(main())


def test_a_peer_that_answers_other_calls_is_pinged_only_for_its_clock_sample():
    async def main():
        clock, peer = _detector()
        task = asyncio.ensure_future(peer.detector.run())
        await _traffic(clock, peer, until_s=10.0)
        task.cancel()
        assert peer.pings <= 10 / SAMPLE_INTERVAL_S + 2       # not 40
        assert peer.pings >= 10 / (SAMPLE_INTERVAL_S + PING_INTERVAL_S) - 1
        assert peer.detector.offset_ms("b") is not None       # its clock is still measured
        assert peer.detector.is_up("b")
    run_virtual(main())


def test_a_peer_that_stops_answering_after_traffic_is_seen_down_as_soon_as_an_idle_one():
    """The guard against skipping too much (e.g. never pinging a peer once it answered a
    request): with no more traffic, only pings can find it down."""
    async def main():
        clock, peer = _detector()
        task = asyncio.ensure_future(peer.detector.run())
        await _traffic(clock, peer, until_s=3.0)
        peer.alive = False
        stopped = clock.monotonic()
        while peer.detector.is_up("b") and clock.monotonic() < stopped + 10:
            await asyncio.sleep(0.01)
        task.cancel()
        # two pings in a row time out (0.5 s each), a round every 0.25 s: about 1.5 s
        assert clock.monotonic() - stopped <= 2 * (PING_INTERVAL_S + 0.5) + PING_INTERVAL_S
    run_virtual(main())


def test_clock_samples_stay_fresh_under_traffic_beyond_their_maximum_age():
    """Samples older than 10 s are stale (core/clock_offsets.py): a peer that only ever
    answers other calls must still be pinged, or the fence loses sight of its clock."""
    async def main():
        clock, peer = _detector()
        task = asyncio.ensure_future(peer.detector.run())
        await _traffic(clock, peer, until_s=25.0)
        task.cancel()
        assert peer.detector.offset_ms("b") is not None
        assert peer.detector.clock_ok
    run_virtual(main())
