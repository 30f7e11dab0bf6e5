"""The coordinator over the in-memory seams: three production nodes in one process, virtual
time, no sockets (``dynamopy.sim.inprocess``)."""

import asyncio

import pytest

from dynamopy.core.records import Record
from dynamopy.node.errors import QuorumUnavailable
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

IDS = ["n1", "n2", "n3"]


def test_a_quorum_write_and_read_succeed_with_one_replica_down_and_fail_with_two():
    async def main():
        async with InProcessCluster(IDS, seed=1) as c:
            await c.crash("n3")
            co = c.coordinator("n1")
            await until(lambda: not c.node("n1").detector.is_up("n3"), 10, "n1 sees n3 down")
            version, _ = await co.write(b"k", value=b"v1", content_type="text/plain",
                                        deleted=False, w=2)
            got = await co.read(b"k", r=2)
            token = c.node("n1").state.ring.token(b"k")
            on_n2 = c.node("n2").store.get(token, b"k")
            await c.crash("n2")
            await until(lambda: not c.node("n1").detector.is_up("n2"), 10, "n1 sees n2 down")
            with pytest.raises(QuorumUnavailable):
                await co.write(b"k", value=b"v2", content_type="text/plain", deleted=False, w=2)
            return version, got, on_n2

    version, got, on_n2 = run_virtual(main())
    assert got is not None and got.value == b"v1" and got.version == version
    assert on_n2 is not None and on_n2.version == version  # the second ack is a real copy


def test_a_read_returns_the_newest_of_its_replies_when_a_stale_replica_answers_first():
    """n3 holds an older version; it coordinates the read, so its own (stale) copy is the
    first reply, and a fresh replica's is the second."""
    async def main():
        async with InProcessCluster(IDS, seed=2) as c:
            v1, _ = await c.coordinator("n1").write(
                b"k", value=b"old", content_type="text/plain", deleted=False, w=3)
            token = c.node("n1").state.ring.token(b"k")
            newer = Record(v1 + 1_000_000, value=b"new")
            for i in ("n1", "n2"):  # a write n3 missed
                await c.node(i).replica.put(token, b"k", newer)
            stale = c.node("n3").store.get(token, b"k")
            got = await c.coordinator("n3").read(b"k", r=2)
            assert got == newer, "the read must answer the newest of its R replies"
            await until(lambda: c.node("n3").store.get(token, b"k") == newer, 5,
                        "read repair brings n3 up to date")
            return stale, got, newer

    stale, got, newer = run_virtual(main())
    assert stale.value == b"old"
    assert got == newer
