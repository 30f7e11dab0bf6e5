"""Anti-entropy over the in-memory seams: production nodes, virtual time, seeded."""

from dynamopy.core.membership import Settings
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

IDS = ["n1", "n2", "n3"]


def records(node) -> dict:
    return {(t, k): (r.version, r.deleted) for t, k, r in node.store.scan(0, 2**32)}


def test_a_replica_cut_off_during_writes_and_deletes_converges_without_reads_or_hints():
    async def main():
        c = InProcessCluster(IDS, seed=11, anti_entropy_interval_s=1.0,
                             anti_entropy_rate=100_000)
        c.settings = Settings(n=3, r=2, w=2, hint_window_s=0.0,  # no hints: only AE heals
                              anti_entropy_interval_s=1.0, anti_entropy_rate=100_000)
        await c.start_all()
        try:
            co = c.coordinator("n1")
            for i in range(40):
                await co.write(b"old%d" % i, value=b"v", content_type="text/plain",
                               deleted=False, w=3)
            c.network.isolate("n3")
            await until(lambda: not c.node("n1").detector.is_up("n3"), 10, "n1 sees n3 down")
            for i in range(60):
                await co.write(b"new%d" % i, value=b"w", content_type="text/plain",
                               deleted=False, w=2)
            for i in range(20):
                await co.write(b"old%d" % i, value=b"", content_type="text/plain",
                               deleted=True, w=2)
            behind = len(records(c.node("n3")))
            hints = sum(count for m in IDS
                        for count, _b in c.node(m).store.hint_stats().values())
            c.network.heal()
            await until(lambda: records(c.node("n3")) == records(c.node("n1"))
                        == records(c.node("n2")), 30, "n3 level with n1 and n2")
            views = [c.node(m).anti_entropy.view() for m in IDS]
            return behind, hints, records(c.node("n3")), views
        finally:
            await c.stop_all()

    behind, hints, final, views = run_virtual(main())
    assert behind == 40 and hints == 0      # n3 missed 80 writes; no hint could heal it
    assert len(final) == 100
    assert sum(v["keys_repaired"] for v in views) >= 80
    assert len({v["tree_root"] for v in views}) == 1


def test_a_w1_write_only_on_a_source_that_missed_a_join_reaches_the_new_replicas():
    """Issue 12 item 4(a), in process: a W=1 write lives only on n3 (cut off from n1 and
    n2 when it was written, no hints); n3 is down (crashed) during n4's join, so the
    transfer skips it; when n3 restarts it replays its log, learns the join from its peers,
    no longer replicates the key, and must hand it to the key's new replicas before it
    drops it."""
    import random

    from dynamopy.node.runtime import Node
    from dynamopy.sim.clock import NodeClock
    from dynamopy.sim.inprocess import memory_config
    from dynamopy.sim.storage import MemoryDisk
    from ring import Ring

    new_ring = Ring.build(IDS).add("n4")
    key = next(k for k in (b"only%d" % i for i in range(500))
               if "n3" not in new_ring.preference_list(k, 3))
    after = new_ring.preference_list(key, 3)

    async def main():
        c = InProcessCluster(IDS, seed=12, anti_entropy_interval_s=3600.0)
        c.settings = Settings(n=3, r=2, w=2, hint_window_s=0.0, anti_entropy_interval_s=3600.0)
        await c.start_all()
        try:
            token = c.node("n1").state.ring.token(key)
            c.network.partition([["n1", "n2"], ["n3"]])
            await until(lambda: not c.node("n3").detector.is_up("n1")
                        and not c.node("n3").detector.is_up("n2"), 10, "n3 sees them down")
            version, _ = await c.coordinator("n3").write(
                key, value=b"only-on-n3", content_type="text/plain", deleted=False, w=1)
            only_n3 = [m for m in IDS if c.node(m).store.get(token, key) is not None]
            await c.crash("n3")  # the acked write is synced: it survives the crash
            c.network.heal()
            await until(lambda: not c.node("n1").detector.is_up("n3"), 10, "n1 sees n3 down")
            # n4 joins while n3 is cut off
            cfg = memory_config("n4", IDS, anti_entropy_interval_s=3600.0)
            c.configs["n4"], c.disks["n4"], c.clocks["n4"] = cfg, MemoryDisk(), NodeClock()
            n4 = Node(cfg, transport=c.network.transport("n4"), storage=c.disks["n4"],
                      clock=c.clocks["n4"], rng=random.Random("12/n4"))
            c.nodes["n4"] = n4
            await n4.start()
            await n4.metalog.adopt_acceptors(IDS, {m: m for m in IDS})
            await c.node("n1").propose({"op": "join", "id": "n4", "url": "mem://n4",
                                        "peer": "n4"})
            await until(lambda: (c.node("n1").state.member("n4") or None) is not None
                        and c.node("n1").state.member("n4").state == "normal", 60,
                        "n4 is normal")
            missed = n4.store.get(token, key)
            await c.start("n3")
            await until(lambda: all((c.node(m).store.get(token, key) or None) is not None
                                    for m in after), 60, "the key reaches its new replicas")
            await until(lambda: c.node("n3").store.get(token, key) is None, 30,
                        "n3 drops it after the hand-off")
            return only_n3, missed, [c.node(m).store.get(token, key).version for m in after], \
                version
        finally:
            await c.stop_all()

    only_n3, missed, versions, version = run_virtual(main())
    assert only_n3 == ["n3"] and missed is None
    assert versions == [version] * 3


def test_anti_entropy_and_the_grace_are_cluster_settings_turned_on_through_the_log():
    """Bootstrapped with anti-entropy off (no trees), then ``set_config`` turns it on and
    sets the grace: every node takes both from the log, including one started with other
    flags; each builds its tree and a replica that missed writes converges."""
    import random

    from dynamopy.node.runtime import Node
    from dynamopy.sim.clock import NodeClock
    from dynamopy.sim.inprocess import memory_config
    from dynamopy.sim.storage import MemoryDisk

    async def main():
        c = InProcessCluster(IDS, seed=13, anti_entropy_interval_s=0.0)
        c.settings = Settings(n=3, r=2, w=2, hint_window_s=0.0, anti_entropy_interval_s=0.0)
        await c.start_all()
        try:
            off = [c.node(m).anti_entropy.built for m in IDS]
            # n4 joins with flags that disagree with the cluster's
            cfg = memory_config("n4", IDS, anti_entropy_interval_s=7.0,
                                anti_entropy_rate=5, tombstone_grace_s=99.0)
            c.configs["n4"], c.disks["n4"], c.clocks["n4"] = cfg, MemoryDisk(), NodeClock()
            n4 = Node(cfg, transport=c.network.transport("n4"), storage=c.disks["n4"],
                      clock=c.clocks["n4"], rng=random.Random("13/n4"))
            c.nodes["n4"] = n4
            await n4.start()
            await n4.metalog.adopt_acceptors(IDS, {m: m for m in IDS})
            await c.node("n1").propose({"op": "join", "id": "n4", "url": "mem://n4",
                                        "peer": "n4"})
            ids = IDS + ["n4"]
            await until(lambda: c.node("n1").state.change is None
                        and c.node("n1").state.member("n4") is not None, 60, "n4 joined")
            n4_before = (n4.anti_entropy.interval_s, n4.anti_entropy.purge.grace_s)
            co = c.coordinator("n1")
            c.network.isolate("n3")
            await until(lambda: not c.node("n1").detector.is_up("n3"), 10, "n1 sees n3 down")
            keys = [b"k%d" % i for i in range(40)]
            for key in keys:
                await co.write(key, value=b"v", content_type="text/plain", deleted=False, w=2)
            c.network.heal()
            await c.node("n1").propose({"op": "set_config", "anti_entropy_interval_s": 1.0,
                                        "anti_entropy_rate": 100_000,
                                        "tombstone_grace_s": 3600.0})
            await until(lambda: all(c.node(m).anti_entropy.built for m in ids), 20,
                        "every node built its tree")
            views = {m: (c.node(m).anti_entropy.interval_s, c.node(m).anti_entropy.rate_keys_s,
                         c.node(m).anti_entropy.purge.grace_s,
                         c.node(m).hints.tombstone_grace_s()) for m in ids}
            ring = c.node("n1").state.ring
            mine = [k for k in keys if "n3" in ring.preference_list(k, 3)]
            await until(lambda: all(c.node("n3").store.get(ring.token(k), k) is not None
                                    for k in mine), 30, "n3 level with its co-replicas")
            return off, n4_before, views, len(mine)
        finally:
            await c.stop_all()

    off, n4_before, views, healed = run_virtual(main())
    assert off == [False, False, False]                 # off at bootstrap: no tree
    assert n4_before == (0.0, 864000.0)                 # n4 took the cluster's, not its flags
    assert set(views.values()) == {(1.0, 100_000, 3600.0, 3600.0)}
    assert healed > 0


def test_a_grace_shortened_through_the_log_takes_effect_on_the_purge_schedule():
    """Session 15 (operator walk-through): the purge runs after an anti-entropy round at
    most every ``min(grace, 1 h)``. A cluster bootstrapped with the default 10-day grace
    had scheduled its next pass an hour after its first; ``config set
    tombstone_grace_s=20`` then left every node waiting out that hour (the README says a
    pass runs every grace when the grace is shorter): old tombstones were purged only
    after a restart. The schedule follows the grace in force."""
    async def main():
        c = InProcessCluster(IDS, seed=21, anti_entropy_interval_s=1.0,
                             anti_entropy_rate=100_000)
        c.settings = Settings(n=3, r=2, w=2, hint_window_s=0.0, anti_entropy_interval_s=1.0,
                              anti_entropy_rate=100_000)      # the default grace: 10 days
        await c.start_all()
        passes = {m: 0 for m in IDS}
        for m in IDS:
            purge = c.node(m).anti_entropy.purge

            def counted(m=m, run=purge.round):
                passes[m] += 1
                return run()
            purge.round = counted
        try:
            # every node ran its first pass under the 10-day grace (next one in an hour)
            await until(lambda: all(passes.values()), 30, "a first purge pass on every node")
            await c.node("n1").propose({"op": "set_config", "tombstone_grace_s": 20.0})
            await until(lambda: all(c.node(m).anti_entropy.purge.grace_s == 20.0
                                    for m in IDS), 10, "the new grace on every node")
            co = c.coordinator("n1")
            for i in range(10):
                await co.write(b"gone%d" % i, value=b"", content_type="text/plain",
                               deleted=True, w=3)
            await until(lambda: sum(c.node(m).anti_entropy.purge.purged for m in IDS) == 30,
                        120, "the tombstones purged within a few graces")
            return [c.node(m).store.get(c.node(m).state.ring.token(b"gone0"), b"gone0")
                    for m in IDS]
        finally:
            await c.stop_all()

    assert run_virtual(main()) == [None, None, None]
