"""Read repair after a ring change: the repair of this node's own replica makes the check a
remote replica makes, so a key whose range this node lost while the read was in flight is
not written back into it; the other stale replica is still repaired. Three production nodes
over the in-memory seams, virtual time; the coordinator learns the new ring mid-read (its
state is replaced, as applying the log's entries would)."""

import asyncio

from dynamopy.core.records import Record
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until
from dynamopy.sim.transport import DEFAULT_DELAY_S, MemoryNetwork

IDS = ["n1", "n2", "n3"]


def test_a_read_does_not_repair_its_own_replica_of_a_range_it_lost_mid_read():
    def delay(src, dst, method):
        return 0.3 if (src, dst, method) == ("n1", "n2", "get") else DEFAULT_DELAY_S

    async def main():
        async with InProcessCluster(IDS, seed=38, network=MemoryNetwork(delay)) as c:
            n1 = c.node("n1")
            old = n1.state
            joined = old.apply({"op": "join", "id": "n4", "url": "u4", "peer": "p4"})
            new = joined.apply({"op": "finish_join", "id": "n4",
                                "change_epoch": joined.change_epoch})
            tok, pref = old.ring.token, old.ring.preference_list
            # n1 asks itself and n2 first; once n4 joined, n1 no longer holds the key, n3 does
            key = next(k for k in (b"k%d" % i for i in range(2000))
                       if [m for m in pref(k, 3) if m != "n1"] == ["n2", "n3"]
                       and "n1" not in new.ring.preference_list(k, 3)
                       and "n3" in new.ring.preference_list(k, 3))
            v, _ = await c.coordinator("n1").write(key, value=b"old", content_type="text/plain",
                                                   deleted=False, w=3)
            newest = Record(v + 1_000_000, value=b"n2's")
            await c.node("n2").replica.put(tok(key), key, newest)
            await c.coordinator("n1").read(key, r=2)   # n1 and n3 (speculation) decide
            await asyncio.sleep(0.15)
            n1.state = new                   # n1 learns the new ring before n2's reply
            await until(lambda: c.node("n3").store.get(tok(key), key) == newest, 5,
                        "n3 repaired with n2's late reply")
            await asyncio.sleep(0.5)
            return n1.store.get(tok(key), key), newest, new.epoch

    on_n1, newest, epoch = run_virtual(main())
    assert epoch > 0 and on_n1 is not None and on_n1 != newest  # not written into the lost range
