"""Pings on three production nodes in one process on virtual time: a member that answers the
metadata log's messages is alive without a ping (node/runtime.py ``_metalog_reply``), and a
member that stops answering is still seen down by every node within the detector's time."""

from collections import Counter

from dynamopy.node.detector import SAMPLE_INTERVAL_S
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

IDS = ["n1", "n2", "n3"]


def _count_pings(node, counts: Counter) -> None:
    ping = node.detector._ping

    async def counted(member_id: str) -> None:
        counts[(node.id, member_id)] += 1
        await ping(member_id)

    node.detector._ping = counted


def test_the_metadata_leader_pings_its_followers_only_for_clock_samples_and_sees_a_crash():
    async def main():
        async with InProcessCluster(IDS, seed=3) as c:
            await c.wait_ready(IDS)
            leader = c.node("n1").metalog.leader
            await until(lambda: all(c.node(i).metalog.leader == leader for i in IDS), 10,
                        "every node follows one leader")
            counts: Counter = Counter()
            for i in IDS:
                _count_pings(c.node(i), counts)
            await c.node(leader).clock.sleep(10)
            followers = [i for i in IDS if i != leader]
            # The leader's heartbeats are answered every 0.1 s: its pings only keep the
            # followers' clock samples fresh (about 1 a second, not 4).
            for f in followers:
                assert counts[(leader, f)] <= 10 / SAMPLE_INTERVAL_S + 2, counts
                assert counts[(f, leader)] <= 10 / SAMPLE_INTERVAL_S + 2, counts
            # Followers exchange no metadata-log messages: they ping each other as before.
            a, b = followers
            assert counts[(a, b)] >= 30 and counts[(b, a)] >= 30, counts
            # A follower that crashes is seen down by the leader (whose pings to it were
            # skipped) and by the other follower within about a second.
            await c.crash(a)
            t0 = c.node(leader).clock.monotonic()
            await until(lambda: not c.node(leader).detector.is_up(a)
                        and not c.node(b).detector.is_up(a), 10, f"{a} seen down")
            return c.node(leader).clock.monotonic() - t0

    took = run_virtual(main())
    assert took <= 1.5, took
