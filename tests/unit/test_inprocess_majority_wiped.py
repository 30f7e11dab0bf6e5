"""A majority of the metadata group loses its disks at once (README "Membership": what an
operator does then), over the in-memory seams: three seeds (the group {n1, n2, n3}) and a
fourth member n4; n1 and n2 crash and come back on empty data directories through the
production ``ensure_member``. Each is a replacement and must not vote, so only n3 votes:
the log stays stuck, safely, and ``GET /node`` shows it. When n1 is started again on its
own disk (kept, not wiped and not restored from a backup), the group has a majority again:
the log moves, n2's old incarnation is replaced and n2 joins again, and nothing
acknowledged is lost."""

import asyncio

from dynamopy.node.errors import MembershipError
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until
from dynamopy.sim.storage import MemoryDisk

SEEDS = ["n1", "n2", "n3"]
ALL = [*SEEDS, "n4"]
KEYS = [f"k{i}".encode() for i in range(20)]


def _normal(c, via, mid):
    m = c.node(via).state.member(mid)
    return m is not None and m.state == "normal"


def test_a_majority_of_the_group_wiped_leaves_the_log_stuck_and_safe_until_one_disk_is_back():
    async def main():
        c = InProcessCluster(SEEDS, seed=11, joiners=["n4"], anti_entropy_interval_s=3600.0)
        await c.start_all()
        await c.start("n4")  # a fourth member: a replacement leaves N = 3 members
        try:
            await until(lambda: all(_normal(c, i, "n4") for i in ALL), 30, "n4 joined")
            for key in KEYS:
                await c.coordinator("n4").write(key, value=b"v", content_type="text/plain",
                                                deleted=False, w=3)
            epoch = c.node("n3").state.epoch
            kept = {}
            for s in ("n1", "n2"):  # both lose their disks at once
                await c.crash(s)
                kept[s], c.disks[s] = c.disks[s], MemoryDisk()
                c.production_start.add(s)
                await c.start(s)
            await until(lambda: all(c.node(s).metalog.replacing and
                                    c.node(s).state.epoch == epoch for s in ("n1", "n2")),
                        30, "n1 and n2 learned the log as replacements")
            await asyncio.sleep(8)  # they propose `replace` (6 s timeout) again: in vain
            views = {s: c.node(s).node_view() for s in ALL}
            for s in ("n1", "n2"):
                meta = views[s]["metadata"]
                assert views[s]["ready"] is False and views[s]["keys"] == 0
                assert meta["voting"] is False and meta["replacing"] is True
                # what GET /ready adds after "coming back as a replacement; not possible yet"
                assert "did not commit" in c.node(s).metalog.replacement_blocked
            assert views["n3"]["metadata"]["voting"] is True
            for v in views.values():
                assert v["epoch"] == epoch  # nothing committed since the disks were lost
                assert v["metadata"]["leader"] is None
                assert v["metadata"]["acceptors"] == SEEDS
            with_one_voter = None
            try:
                await c.node("n3").propose({"op": "set_config", "anti_entropy_rate": 7})
            except MembershipError as e:
                with_one_voter = e.status
            assert with_one_voter == 503 and c.node("n3").state.epoch == epoch
            # n1's own disk, with its acceptor state, comes back: the log moves again
            await c.crash("n1")
            c.disks["n1"] = kept["n1"]
            await c.start("n1")
            await until(lambda: c.node("n3").state.epoch > epoch, 60, "the log commits again")
            await until(lambda: _normal(c, "n3", "n2") and not c.node("n2").metalog.replacing
                        and c.node("n2").is_ready, 120, "n2 came back as a replacement")
            assert c.node("n1").node_view()["metadata"]["voting"] is True
            log = [(e["op"], e.get("id")) for e in c.node("n3").log_entries(0)]
            assert ("replace", "n2") in log and ("replace", "n1") not in log
            for key in KEYS:
                got = await c.coordinator("n2").read(key, r=3)
                assert got is not None and got.value == b"v", key
        finally:
            await c.stop_all()
    run_virtual(main())
