"""Range transfer over the in-memory seams: a joining node pulls each gained range from every
reachable old replica (issue 18: a write acknowledged by W of N old replicas may be missing
from any single one of them). Production nodes in one process, virtual time."""

import asyncio
import random

from dynamopy.core.records import Record
from dynamopy.node import transfer
from dynamopy.node.runtime import Node
from dynamopy.sim.clock import NodeClock, run_virtual
from dynamopy.sim.inprocess import InProcessCluster, memory_config, until
from dynamopy.sim.storage import MemoryDisk
from ring import Ring

IDS = ["n1", "n2", "n3"]
QUIET = dict(anti_entropy_interval_s=3600.0)  # no anti-entropy: only the transfer moves data


async def join(c: InProcessCluster, new: str, seed: int, **config) -> Node:
    """Start ``new`` on a fresh disk and have the cluster propose its join."""
    cfg = memory_config(new, c.ids, **{**QUIET, **config})
    c.configs[new], c.disks[new], c.clocks[new] = cfg, MemoryDisk(), NodeClock()
    node = Node(cfg, transport=c.network.transport(new), storage=c.disks[new],
                clock=c.clocks[new], rng=random.Random(f"{seed}/{new}"))
    c.nodes[new] = node
    await node.start()
    await node.metalog.adopt_acceptors(c.ids, {m: m for m in c.ids})
    await c.node(c.ids[0]).propose({"op": "join", "id": new, "url": f"mem://{new}",
                                    "peer": new})
    return node


def test_a_joiner_pulls_from_every_old_replica_and_a_removal_restores_n_copies():
    """For each of the three old replicas of keys n4 gains, one key's newest write misses
    exactly that replica (a W=2 write while it was cut off, no hints); one more key lies in
    the first range n4 gains (where every source's pull starts). After the join each of them
    is on n4: no single source had them all."""
    new_ring = Ring.build(IDS).add("n4")
    old_ring = Ring.build(IDS)
    keys = {}  # old replica that misses the key -> key
    for i in range(2000):
        key = b"j%d" % i
        if "n4" in new_ring.preference_list(key, 3):
            keys.setdefault(old_ring.preference_list(key, 3)[0], key)
        if len(keys) == 3:
            break
    # and a key in the first range n4 gains: the first range every one of its sources serves
    first = next(m for m in old_ring.moves(new_ring, 3) if "n4" in m.gained)
    first_key = next(k for k in (b"f%d" % i for i in range(100_000))
                     if first.start <= old_ring.token(k) < first.end)

    async def main():
        c = InProcessCluster(IDS, seed=41, **QUIET)
        await c.start_all()
        try:
            token = c.node("n1").state.ring.token
            versions = {}
            for missing, key in sorted(keys.items()):
                # a W=2 write that missed one replica (as if cut off, with no hints)
                version, _ = await c.coordinator(missing).write(
                    key, value=b"v", content_type="text/plain", deleted=False, w=3)
                versions[key] = version + 1_000_000
                for m in IDS:
                    if m != missing:
                        await c.node(m).replica.put(token(key), key,
                                                    Record(versions[key], value=b"v2"))
            stale = {m: c.node(m).store.get(token(k), k).version for m, k in keys.items()}
            versions[first_key], _ = await c.coordinator("n1").write(
                first_key, value=b"f", content_type="text/plain", deleted=False, w=3)
            n4 = await join(c, "n4", 41)
            await until(lambda: (c.node("n1").state.member("n4") or None) is not None
                        and c.node("n1").state.member("n4").state == "normal", 30,
                        "n4 is normal")
            got = {k: n4.store.get(token(k), k) for k in versions}
            # Then n4 dies and is removed: the lowest-numbered live member drives the removal
            # (asking the gainers whether they are done), and every key is on three live
            # replicas again.
            await c.crash("n4")
            await until(lambda: not c.node("n1").detector.is_up("n4"), 10, "n1 sees n4 down")
            await c.node("n2").propose({"op": "remove", "id": "n4"})
            await until(lambda: c.node("n1").state.member("n4") is None
                        and c.node("n1").state.change is None, 30, "n4 is removed")
            ring = c.node("n1").state.ring
            copies = {k: sorted(c.node(m).store.get(token(k), k).version
                                for m in ring.preference_list(k, 3)) for k in versions}
            return versions, stale, got, copies
        finally:
            await c.stop_all()

    versions, stale, got, copies = run_virtual(main())
    assert len(versions) == 4 and all(stale[m] < versions[k] for m, k in keys.items())
    assert {k: (r.version if r else None) for k, r in got.items()} == versions
    assert copies == {k: [v] * 3 for k, v in versions.items()}



def test_a_write_during_a_join_reaches_the_joiner_before_its_transfer_does():
    """n4 is joining and its pulls are stuck (a slow link for xfer_pull): a write of a key it
    gains is sent to it too, so the transfer cannot miss it."""
    from dynamopy.sim.transport import DEFAULT_DELAY_S, MemoryNetwork

    def delay(src, dst, method):
        return 100.0 if method == "xfer_pull" else DEFAULT_DELAY_S

    key = next(k for k in (b"g%d" % i for i in range(2000))
               if "n4" in Ring.build(IDS).add("n4").preference_list(k, 3))

    async def main():
        c = InProcessCluster(IDS, seed=43, network=MemoryNetwork(delay), **QUIET)
        await c.start_all()
        try:
            n4 = await join(c, "n4", 43)
            await until(lambda: c.node("n1").state.change is not None
                        and n4.state.change is not None, 10, "the join is in progress")
            version, acks = await c.coordinator("n1").write(
                key, value=b"v", content_type="text/plain", deleted=False, w=2)
            token = c.node("n1").state.ring.token(key)
            await until(lambda: n4.store.get(token, key) is not None, 5, "n4 has the write")
            return acks, n4.store.get(token, key).version, version, n4.transfers.progress.done
        finally:
            await c.stop_all()

    acks, on_n4, version, pulled = run_virtual(main())
    assert not pulled                     # the transfer did not bring it
    assert acks >= 3 and on_n4 == version


def test_a_joiner_that_crashes_mid_transfer_resumes_where_it_stopped_and_loses_nothing(
        monkeypatch):
    """n4 pulls in batches of 40 records; its link to n3 is slow (2 s each way), so n1 and
    n2 have sent it everything when n3's first batch lands. n4 crashes then, and restarts on
    the same disk. The join finishes, every acknowledged write is on n4, and after the
    restart n4 pulls only what it had not pulled yet (the durable cursor per source: none
    from n1 and n2, the rest from n3), not the start of its ranges again."""
    from dynamopy.sim.transport import DEFAULT_DELAY_S, MemoryNetwork

    def delay(src, dst, method):
        return 2.0 if {src, dst} == {"n3", "n4"} and method == "xfer_pull" else DEFAULT_DELAY_S

    monkeypatch.setattr(transfer, "BATCH_KEYS", 40)  # a few batches of a few keys
    values = {b"r%d" % i: b"x" * 100 for i in range(100)}
    gained = [k for k in values if "n4" in Ring.build(IDS).add("n4").preference_list(k, 3)]

    async def main():
        c = InProcessCluster(IDS, seed=47, network=MemoryNetwork(delay), **QUIET)
        await c.start_all()
        try:
            versions = {}
            for key, value in values.items():
                versions[key], _ = await c.coordinator("n1").write(
                    key, value=value, content_type="text/plain", deleted=False, w=3)
            n4 = await join(c, "n4", 47)
            await until(lambda: n4.transfers.progress.keys_moved > 2 * len(gained), 30,
                        "n4 has all of n1's and n2's records and a batch of n3's")
            view = n4.node_view()["transfer"]  # what /node shows
            mine = [m for m in c.node("n1").state.transfers() if "n4" in m.gained]
            before = view["keys_moved"]
            assert view == {"change_epoch": c.node("n1").state.change_epoch,
                            "ranges_total": len(mine), "ranges_done": 0, "keys_moved": before,
                            "bytes_moved": view["bytes_moved"], "done": False,
                            "skipped_sources": []}
            assert 102 * before <= view["bytes_moved"] <= 103 * before  # keys of 2-3 bytes
            await c.crash("n4")
            assert c.node("n1").state.member("n4").state == "joining"
            n4 = await c.start("n4")
            await until(lambda: c.node("n1").state.member("n4").state == "normal", 60,
                        "the join finished")
            token = c.node("n1").state.ring.token
            on_n4 = {k: n4.store.get(token(k), k) for k in gained}
            return before, n4.transfers.progress.keys_moved, on_n4, versions
        finally:
            await c.stop_all()

    before, after, on_n4, versions = run_virtual(main())
    assert len(gained) > 40  # two batches or more per source
    assert {k: (r.version, r.value) if r else None for k, r in on_n4.items()} == {
        k: (versions[k], values[k]) for k in gained}
    # each of the 3 sources serves every gained key once; the restart pulled the rest only
    assert 0 < after <= 3 * len(gained) - before


def test_a_source_down_for_less_than_the_grace_is_waited_for_not_skipped(monkeypatch):
    """n1 alone holds a write of a key n4 gains and n1 keeps (acknowledged by one replica,
    so no hand-off brings it later). n1 crashes before it answers n4's first pull and is back
    within the 5 s grace: n4 retries it meanwhile, pulls the write, and skips no source."""
    from dynamopy.sim.transport import DEFAULT_DELAY_S, MemoryNetwork

    def delay(src, dst, method):
        return 2.0 if {src, dst} == {"n1", "n4"} and method == "xfer_pull" else DEFAULT_DELAY_S

    new_ring = Ring.build(IDS).add("n4")
    key = next(k for k in (b"o%d" % i for i in range(2000))
               if {"n1", "n4"} <= set(new_ring.preference_list(k, 3)))

    async def main():
        c = InProcessCluster(IDS, seed=53, network=MemoryNetwork(delay), **QUIET)
        await c.start_all()
        try:
            token = c.node("n1").state.ring.token(key)
            await c.node("n1").replica.put(token, key, Record(10**15, value=b"only-n1"))
            n4 = await join(c, "n4", 53)
            await until(lambda: n4.state.change is not None and c.node("n1").state.change
                        is not None and n4.transfers.progress.change_epoch, 10, "n4 pulls")
            await c.crash("n1")   # n4's first pull from n1 is on its way (2 s): it fails
            await until(lambda: not n4.detector.is_up("n1"), 10, "n4 sees n1 down")
            await asyncio.sleep(3.0)
            assert n4.detector.down_for("n1") < 4
            await c.start("n1")
            await until(lambda: c.node("n2").state.member("n4").state == "normal", 60,
                        "the join finished")
            return n4.store.get(token, key), n4.transfers.progress.skipped_sources
        finally:
            await c.stop_all()

    got, skipped = run_virtual(main())
    assert got is not None and got.value == b"only-n1" and skipped == []


def test_a_join_skips_an_old_replica_that_stays_down_and_still_gets_every_acked_write():
    """n3 is down for good when n4 joins (its writes at W=2 are on n1 and n2 too): after 5 s
    n4 goes on without it, says so in its transfer view, and the join finishes with every
    write on n4."""
    keys = [k for k in (b"d%d" % i for i in range(60))
            if "n4" in Ring.build(IDS).add("n4").preference_list(k, 3)]

    async def main():
        c = InProcessCluster(IDS, seed=59, **QUIET)
        await c.start_all()
        try:
            versions = {}
            for key in keys:
                versions[key], _ = await c.coordinator("n1").write(
                    key, value=b"v", content_type="text/plain", deleted=False, w=3)
            await c.crash("n3")
            n4 = await join(c, "n4", 59)
            started = asyncio.get_running_loop().time()
            await until(lambda: c.node("n1").state.member("n4").state == "normal", 60,
                        "the join finished")
            token = c.node("n1").state.ring.token
            got = {k: (r.version if (r := n4.store.get(token(k), k)) else None) for k in keys}
            took = asyncio.get_running_loop().time() - started
            return got, versions, n4.transfers.progress.skipped_sources, took
        finally:
            await c.stop_all()

    got, versions, skipped, took = run_virtual(main())
    assert got == versions and skipped == ["n3"] and took >= 5


async def _acked_keys_then_slow_disks(c, prefix: bytes, count: int = 150) -> dict:
    """Write ``count`` keys at W=3 and return their acknowledged versions; then make every
    synced batch of n1..n3 (so every drop step) take 20 ms."""
    acked = {}
    for i in range(count):
        key = prefix + b"%d" % i
        acked[key], _ = await c.coordinator(IDS[i % 3]).write(
            key, value=b"v", content_type="text/plain", deleted=False, w=3)
    for m in IDS:
        c.disks[m].sync_delay_ms = 20
    return acked


def _versions_on_replicas(c, keys) -> dict:
    """key -> the sorted versions its replicas in n1's ring hold (0: none)."""
    token, ring = c.node("n1").state.ring.token, c.node("n1").state.ring
    return {k: sorted((c.node(m).store.get(token(k), k) or Record(0)).version
                      for m in ring.preference_list(k, 3)) for k in keys}


def test_a_node_removed_while_old_owners_drop_its_ranges_gets_them_back_whole(monkeypatch):
    """n4 joins; while the old owners drop the ranges it took (a record per step, each a
    slow sync), n4 dies and is removed: the ranges go back to them, and the removal's
    transfer streams records into ranges their drops have not reached yet. Those records
    were queued after the drops, so they survive them: every key ends on its three replicas
    at its acknowledged version."""
    from dynamopy.storage import group_commit
    monkeypatch.setattr(group_commit, "DROP_CHUNK", 1)

    async def main():
        c = InProcessCluster(IDS, seed=43, **QUIET)
        await c.start_all()
        try:
            acked = await _acked_keys_then_slow_disks(c, b"d")
            await join(c, "n4", 43)
            dropping = lambda: [m for m in IDS if c.node(m).committer._drops]
            await until(lambda: dropping(), 60, "an old owner drops n4's ranges")
            during = dropping()
            await c.crash("n4")
            await c.node("n2").propose({"op": "remove", "id": "n4"})
            await until(lambda: c.node("n1").state.member("n4") is None
                        and c.node("n1").state.change is None, 60, "n4 is removed")
            await until(lambda: not dropping(), 60, "the drops are over")
            held = _versions_on_replicas(c, acked)
            counts = sum(c.node(m).store.key_count() for m in IDS)
            return during, acked, held, counts
        finally:
            for m in IDS:
                c.disks[m].sync_delay_ms = 0
            await c.stop_all()

    during, acked, held, counts = run_virtual(main())
    assert during  # the removal came while a drop ran
    assert held == {k: [v] * 3 for k, v in acked.items()}
    assert counts == 3 * len(acked)


def test_an_old_owner_that_crashes_mid_drop_drops_the_rest_after_its_restart(monkeypatch):
    """n4 joins; an old owner crashes while it drops the ranges n4 took (a record per slow
    step) and restarts: it drops the rest then (the replayed log says it lost them), and
    every key ends on exactly its three replicas at its acknowledged version."""
    from dynamopy.storage import group_commit
    monkeypatch.setattr(group_commit, "DROP_CHUNK", 1)

    async def main():
        c = InProcessCluster(IDS, seed=44, **QUIET)
        await c.start_all()
        try:
            acked = await _acked_keys_then_slow_disks(c, b"c")
            await join(c, "n4", 44)
            dropping = lambda: [m for m in IDS if c.node(m).committer._drops
                                and c.node(m).committer._drops[0].total > 0]
            await until(lambda: dropping(), 60, "an old owner is part way through its drop")
            victim = dropping()[0]
            await c.crash(victim)
            c.disks[victim].sync_delay_ms = 0
            await c.start(victim)
            await c.wait_ready([victim])
            everyone = IDS + ["n4"]
            await until(lambda: all(not c.node(m).committer._drops for m in everyone)
                        and sum(c.node(m).store.key_count() for m in everyone) == 3 * len(acked),
                        60, "every drop done, three copies of every key")
            held = _versions_on_replicas(c, acked)
            return acked, held
        finally:
            for m in IDS:
                c.disks[m].sync_delay_ms = 0
            await c.stop_all()

    acked, held = run_virtual(main())
    assert held == {k: [v] * 3 for k, v in acked.items()}
