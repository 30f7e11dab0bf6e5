"""``Replica.put_nowait`` over a real LevelDB store and group committer (commit thread): the
put's future resolves only after the synced batch holding its record returned, with the
version now stored (its own, or the newer one already there); a failed batch fails it."""

from __future__ import annotations

import asyncio
import threading
import types

import pytest

from dynamopy.core.records import Record
from dynamopy.node.clock import SystemClock
from dynamopy.node.metrics import Metrics
from dynamopy.node.replica import Replica
from dynamopy.storage.group_commit import GroupCommitter
from dynamopy.storage.store import Store


def test_a_put_resolves_only_after_its_synced_batch_with_the_version_stored(tmp_path):
    with Store(str(tmp_path / "db")) as store:
        real_apply = store.apply
        gate = threading.Event()      # the commit thread's apply waits for it
        synced: list[bool] = []
        fail = {"next": False}

        def apply(*args, **kwargs):
            gate.wait(10)
            if fail["next"]:
                fail["next"] = False
                raise OSError("disk on fire")
            result = real_apply(*args, **kwargs)
            synced.append(kwargs.get("sync", False))
            return result

        store.apply = apply

        async def main():
            committer = GroupCommitter(store)
            await committer.start()
            observed: list[int] = []
            replica = Replica(me="n1", state=lambda: None, store=store, committer=committer,
                              clock=SystemClock(), metrics=Metrics(), catchup=None,
                              poke_metalog=None, note_epoch=None, observe_version=observed.append,
                              hints=None)
            try:
                put = replica.put_nowait(7, b"k", Record(5, value=b"five"))
                seen_at_done: list = []
                put.add_done_callback(lambda f: seen_at_done.append(list(synced)))
                await asyncio.sleep(0.1)
                assert not put.done(), "acknowledged before its batch was synced"
                gate.set()
                assert await put == 5
                assert seen_at_done == [[True]]       # the synced apply had returned
                assert observed == [5]                # the node's clock saw the version
                # An older write is not applied: it answers the newer version stored.
                assert await replica.put_nowait(7, b"k", Record(3, value=b"three")) == 5
                assert store.get(7, b"k").value == b"five"
                # A newer one is.
                assert await replica.put_nowait(7, b"k", Record(9, value=b"nine")) == 9
                # A batch that fails fails the put (never an ack).
                fail["next"] = True
                with pytest.raises(OSError, match="disk on fire"):
                    await replica.put_nowait(7, b"k", Record(11, value=b"eleven"))
                assert store.get(7, b"k").version == 9
            finally:
                gate.set()
                await committer.stop()

        asyncio.run(asyncio.wait_for(main(), 20))


def test_a_cancelled_put_is_still_written():
    """Cancelling the put's future does not cancel the write (the committer still applies
    it and delivers nothing to the cancelled future)."""
    writes = []

    def write_into(token, key, record, sink):
        writes.append((token, key, record.version))
        asyncio.get_running_loop().call_soon(sink.set_result, [True])  # synced later
        return sink

    replica = Replica(me="n1", state=lambda: None, store=None,
                      committer=types.SimpleNamespace(write_into=write_into),
                      clock=SystemClock(), metrics=Metrics(), catchup=None, poke_metalog=None,
                      note_epoch=None, observe_version=lambda v: None, hints=None)

    async def main():
        put = replica.put_nowait(1, b"k", Record(4))
        put.cancel()
        await asyncio.sleep(0.01)
        return put

    put = asyncio.run(main())
    assert put.cancelled() and writes == [(1, b"k", 4)]
