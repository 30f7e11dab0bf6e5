"""The coordinator's own copy of a write when the commit it is catching up on moves the key
(``Coordinator._start_put`` -> ``_local_put_when_caught_up``), over the in-memory seams.

n1 planned the write while n4's join was in progress (its view: the key on n1, n2, n3 and
gaining n4, so W + 1 = 3 acks needed), but its peers had already committed ``finish_join``,
which took the key off n1. Its own replica first catches up, then refuses with
``stale_epoch`` (it no longer replicates the key). n4 is down, so the first round gets only
n2 and n3: the coordinator must learn the newer epoch from its own replica's refusal and
retry with the new ring (the key on n2, n3, n4: W = 2 acks), which succeeds. Before this
test no fast test reached that path (mutation survivors ``_start_put`` 27 and
``_local_put_when_caught_up`` 10 drop the epoch: the write then fails)."""

import asyncio

from dynamopy.core.placement import replicas
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until
from dynamopy.sim.transport import DEFAULT_DELAY_S, MemoryNetwork

SEEDS = ["n1", "n2", "n3"]


def test_the_coordinators_own_replica_reports_the_epoch_that_moved_the_key_and_the_write_retries():
    held = {"on": False}

    def delay(src, dst, method):
        # While held, n1's metadata-log messages (both ways) are late past their 1 s
        # timeout: n1 hears of new commits (peers' epochs on pings) but cannot learn them.
        if held["on"] and method == "paxos" and "n1" in (src, dst):
            return 5.0
        return DEFAULT_DELAY_S

    async def main():
        c = InProcessCluster(SEEDS, seed=4, joiners=["n4"], n=3, r=2, w=2,
                             network=MemoryNetwork(delay), anti_entropy_interval_s=3600.0)
        await c.start_all()
        n1 = c.node("n1")

        def hold_at_join(old, new):
            if new.change is not None and new.change[:2] == ("join", "n4"):
                held["on"] = True  # n1 learns the join, not its finish
        n1.observers.append(hold_at_join)
        try:
            await c.start("n4")
            await until(lambda: held["on"], 30, "n1 applied the join of n4")
            joined = n1.state
            await until(lambda: all(c.node(i).state.change is None and
                                    c.node(i).state.member("n4").state == "normal"
                                    for i in ("n2", "n3")), 30, "n2 and n3 applied finish_join")
            finished = c.node("n2").state
            key = next(k for k in (b"k%d" % i for i in range(2000))
                       if "n1" in _replicas(joined, k) and "n1" not in _replicas(finished, k))
            await c.crash("n4")
            await until(lambda: not n1.detector.is_up("n4"), 10, "n1 sees n4 down")
            await until(lambda: not n1.catchup.caught_up, 10, "n1 knows it is behind")
            assert n1.state.epoch == joined.epoch < finished.epoch
            # the write is planned at the join's epoch (as right after serving_state, with
            # the heartbeat of finish_join arriving in between); n1 catches up meanwhile
            write = asyncio.ensure_future(c.coordinator("n1").write(
                key, value=b"v", content_type="text/plain", deleted=False, w=2,
                caught_up=True))
            await asyncio.sleep(0.05)
            held["on"] = False
            version, acks = await write
            token = finished.ring.token(key)
            stored = {i: c.node(i).store.get(token, key) for i in ("n1", "n2", "n3")}
            return acks, version, stored, n1.state.epoch, finished.epoch
        finally:
            await c.stop_all()

    acks, version, stored, epoch, finished_epoch = run_virtual(main())
    assert acks >= 2 and epoch >= finished_epoch
    for i in ("n2", "n3"):
        assert stored[i] is not None and stored[i].version == version
    assert stored["n1"] is None  # no longer a replica: it refused its own copy


def _replicas(state, key: bytes) -> set:
    placed = replicas(state, state.ring.token(key))
    return set(placed.current) | set(placed.gaining)
