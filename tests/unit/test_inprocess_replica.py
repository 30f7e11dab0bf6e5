"""The replica acks a write only once it is synced: a crash before the sync loses the write
(and it was never acked), a crash after the ack keeps it. Production nodes over the
in-memory seams; the in-memory disk loses on a crash exactly what was not synced."""

import asyncio

import pytest

from dynamopy.core.records import Record
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster
from dynamopy.storage.layout import data_key

IDS = ["n1", "n2", "n3"]


def test_an_acked_put_survives_a_crash_and_an_unacked_one_was_never_acked():
    async def main():
        async with InProcessCluster(IDS, seed=3) as c:
            replica = c.node("n1").replica
            acked = Record(10**15, value=b"acked")
            assert await replica.put(7, b"a", acked) == acked.version
            # Crash with a second put submitted but its batch not yet synced.
            pending = asyncio.ensure_future(replica.put(8, b"b", Record(10**15, value=b"lost")))
            await asyncio.sleep(0)   # the put is queued in the group committer
            lost = await c.crash("n1")
            with pytest.raises(Exception):
                await pending        # never acknowledged
            node = await c.start("n1")
            return lost, node.store.get(7, b"a"), node.store.get(8, b"b")

    lost, kept, gone = run_virtual(main())
    assert kept is not None and kept.value == b"acked"
    assert gone is None


def test_the_put_is_acked_only_after_the_synced_batch():
    """The ack comes after a sync of the disk, not merely after the write is visible."""
    async def main():
        async with InProcessCluster(IDS, seed=4) as c:
            disk = c.disks["n1"]
            syncs = disk.syncs
            await c.node("n1").replica.put(9, b"c", Record(10**15, value=b"x"))
            return disk.syncs - syncs, dict(disk.durable)

    synced, durable = run_virtual(main())
    assert synced >= 1
    assert any(b"c" in k for k in durable)  # on the disk, not only in memory


def test_a_slow_disk_delays_the_ack_batches_what_arrives_meanwhile_and_a_crash_ends_the_sync():
    """The in-memory disk's slow-disk fault (``sync_delay_ms``): a put is acked only once its
    sync has taken that long (not visible, not durable before); puts arriving while a sync
    waits share the next synced batch; a crash during the wait ends it at once and loses
    only writes that were never acked."""
    async def main():
        loop = asyncio.get_running_loop()
        async with InProcessCluster(IDS, seed=5) as c:
            disk, replica, store = c.disks["n1"], c.node("n1").replica, c.node("n1").store
            disk.sync_delay_ms = 800
            t0 = loop.time()
            first = asyncio.ensure_future(replica.put(7, b"a", Record(10**15, value=b"slow")))
            await asyncio.sleep(0.4)
            during = (first.done(), store.get(7, b"a"), data_key(7, b"a") in disk.durable)
            queued = [asyncio.ensure_future(replica.put(20 + i, b"q%d" % i, Record(10**15, value=b"q")))
                      for i in range(5)]
            await first
            acked_after = loop.time() - t0
            syncs = disk.syncs
            await asyncio.gather(*queued)
            batched = disk.syncs - syncs
            lost = asyncio.ensure_future(replica.put(8, b"b", Record(10**15, value=b"lost")))
            await asyncio.sleep(0.1)
            t1 = loop.time()
            await c.crash("n1")
            crash_took = loop.time() - t1
            with pytest.raises(Exception):
                await lost
            disk.sync_delay_ms = 0
            node = await c.start("n1")
            return during, acked_after, batched, crash_took, node.store.get(7, b"a"), node.store.get(8, b"b")

    during, acked_after, batched, crash_took, kept, gone = run_virtual(main())
    assert during == (False, None, False)       # mid-sync: no ack, not visible, not durable
    assert acked_after >= 0.8
    assert batched == 1                          # the five queued puts: one synced batch
    assert crash_took < 0.1                      # the crash does not wait for the slow sync
    assert kept is not None and kept.value == b"slow"
    assert gone is None


def test_a_put_older_than_the_stored_version_keeps_it_and_answers_with_it():
    """Newest wins on the replica, and its answer names the version it holds (the coordinator
    then re-stamps the write above it instead of counting an ack)."""
    async def main():
        async with InProcessCluster(IDS, seed=6) as c:
            replica = c.node("n2").replica
            newer, older = Record(2 * 10**15, value=b"newer"), Record(10**15, value=b"older")
            first = await replica.put(5, b"k", newer)
            second = await replica.put(5, b"k", older)
            return first, second, c.node("n2").store.get(5, b"k")

    first, second, kept = run_virtual(main())
    assert (first, second) == (2 * 10**15, 2 * 10**15)
    assert kept.value == b"newer"


def test_repairs_planned_at_another_epoch_are_refused_with_the_current_one():
    from dynamopy.node.errors import StaleEpochError

    async def main():
        async with InProcessCluster(IDS, seed=7) as c:
            replica, epoch = c.node("n1").replica, c.node("n1").state.epoch
            item = (5, b"k", Record(10**15, value=b"r"))
            with pytest.raises(StaleEpochError) as e:
                await replica.apply_repairs(epoch - 1, [item])
            applied = await replica.apply_repairs(epoch, [item])
            return e.value.epoch, epoch, applied, c.node("n1").store.get(5, b"k")

    refused_at, epoch, applied, stored = run_virtual(main())
    assert refused_at == epoch
    assert applied == 1 and stored.value == b"r"


def test_a_replica_behind_the_coordinator_catches_up_before_it_acks():
    """n3 missed a metadata entry (cut off while it was chosen). The first write it gets
    after the partition heals carries the newer epoch: n3 learns the entry before it acks."""
    from dynamopy.sim.inprocess import until

    async def main():
        async with InProcessCluster(IDS, seed=8) as c:
            c.network.partition([["n1", "n2"], ["n3"]])
            await c.node("n1").propose({"op": "set_config", "hint_window_s": 100.0})
            await until(lambda: c.node("n2").state.epoch == c.node("n1").state.epoch, 10,
                        "n2 has the entry")
            behind = c.node("n3").state.epoch
            c.network.heal()
            await c.coordinator("n1").write(b"k", value=b"v", content_type="text/plain",
                                            deleted=False, w=3)
            return behind, c.node("n1").state.epoch, c.node("n3").state.epoch

    behind, epoch, after = run_virtual(main())
    assert behind < epoch == after


def test_a_replica_that_lost_its_data_or_lags_the_log_refuses_to_serve():
    """``not_caught_up`` (coordinators then ask another replica), saying why."""
    from dynamopy.peer import RemoteError

    async def main():
        async with InProcessCluster(IDS, seed=9) as c:
            replica, errors = c.node("n1").replica, []
            replica.replacing = lambda: True
            with pytest.raises(RemoteError) as e:
                replica.require_caught_up()
            errors.append(e.value)
            replica.replacing = lambda: False
            replica.catchup.note(c.node("n1").state.epoch + 5, "n2")   # n2 reports more log
            with pytest.raises(RemoteError) as e:
                replica.require_caught_up()
            errors.append(e.value)
            return [(err.code, str(err)) for err in errors]

    (lost, behind) = run_virtual(main())
    assert lost[0] == behind[0] == "not_caught_up"
    assert "n1 lost its data and is coming back as a replacement" in lost[1]
    assert "n1 is catching up with the metadata log" in behind[1]


def test_a_read_asks_a_replica_that_is_catching_up_again_shortly():
    """n3 missed an entry; a read at R=3 right after the partition heals gets not_caught_up
    from n3 first (a get is answered at once, it cannot wait), asks again, and succeeds."""
    from dynamopy.sim.inprocess import until

    async def main():
        async with InProcessCluster(IDS, seed=10) as c:
            version, _ = await c.coordinator("n1").write(
                b"k", value=b"v", content_type="text/plain", deleted=False, w=3)
            c.network.partition([["n1", "n2"], ["n3"]])
            await c.node("n1").propose({"op": "set_config", "hint_window_s": 100.0})
            await until(lambda: c.node("n2").state.epoch == c.node("n1").state.epoch, 10,
                        "n2 has the entry")
            c.network.heal()
            got = await c.coordinator("n1").read(b"k", r=3)
            return version, got

    version, got = run_virtual(main())
    assert got is not None and got.version == version
