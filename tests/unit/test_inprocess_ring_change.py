"""Quorum writes and reads while a ring change is in progress, over the in-memory seams:
writes also go to the member gaining a key and need one more ack for it, and a coordinator
that missed the change is refused by the replicas (``stale_epoch``), catches up, and retries.
Production nodes in one process, virtual time. n4's join is proposed but n4 never starts,
so the change stays in progress."""

import pytest

from dynamopy.node.errors import QuorumUnavailable
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until
from ring import Ring

IDS = ["n1", "n2", "n3"]
JOIN = {"op": "join", "id": "n4", "url": "mem://n4", "peer": "n4"}
GAINED = next(k for k in (b"g%d" % i for i in range(2000))
              if "n4" in Ring.build(IDS).add("n4").preference_list(k, 3))


async def _write(c, at, key, value, w, **kw):
    return await c.coordinator(at).write(key, value=value, content_type="text/plain",
                                         deleted=False, w=w, **kw)


def test_a_write_during_a_join_counts_the_gainer_and_needs_one_more_ack():
    async def main():
        async with InProcessCluster(IDS, seed=51) as c:
            await c.node("n1").propose(JOIN)
            await until(lambda: all(c.node(m).state.change is not None for m in IDS), 10,
                        "every node knows the join")
            version, acks = await _write(c, "n1", GAINED, b"v", w=2)
            with pytest.raises(QuorumUnavailable) as full:
                await _write(c, "n1", GAINED, b"v", w=3)
            c.network.isolate("n3")
            await until(lambda: not c.node("n1").detector.is_up("n3"), 10, "n1 sees n3 down")
            with pytest.raises(QuorumUnavailable) as down:
                await _write(c, "n1", GAINED, b"v", w=2)
            return acks, full.value, down.value

    acks, full, down = run_virtual(main())
    assert acks == 3                      # W=2 plus one for the gainer (n4, not running)
    assert full.extra == {"acks": 3, "required": 4}
    assert "(W=3 plus 1 for the ring change in progress)" in full.detail
    assert down.extra == {"acks": 2, "required": 3}


async def _missed_join(c):
    """n3 is cut off while n1 and n2 commit n4's join; the partition heals, and n3 has not
    heard of the join yet."""
    c.network.partition([["n1", "n2"], ["n3"]])
    await c.node("n1").propose(JOIN)
    await until(lambda: c.node("n2").state.change is not None, 10, "n2 knows the join")
    before = c.node("n3").state.epoch
    c.network.heal()
    return before


def test_a_read_by_a_coordinator_that_missed_a_join_catches_up_and_retries():
    async def main():
        async with InProcessCluster(IDS, seed=52) as c:
            version, _ = await _write(c, "n1", GAINED, b"v", w=3)
            before = await _missed_join(c)
            got = await c.coordinator("n3").read(GAINED, r=3)
            return before, c.node("n2").state.epoch, c.node("n3").state.epoch, got, version

    before, epoch, after, got, version = run_virtual(main())
    assert before < epoch == after        # n3 was behind, and the refusal made it catch up
    assert got is not None and got.version == version


def test_a_write_by_a_coordinator_that_missed_a_join_catches_up_and_includes_the_gainer():
    async def main():
        async with InProcessCluster(IDS, seed=53) as c:
            before = await _missed_join(c)
            version, acks = await _write(c, "n3", GAINED, b"v", w=2)
            return before, c.node("n2").state.epoch, c.node("n3").state.epoch, acks

    before, epoch, after, acks = run_virtual(main())
    assert before < epoch == after
    assert acks == 3                       # planned again on the new ring: W + 1


def test_a_write_during_a_join_keeps_a_hint_for_the_gainer_that_missed_it():
    """The gainer (n4, not running) is a target of the write under its own id: its failed
    call leaves the coordinator a hint for n4, so n4 gets the write once it is up."""
    async def main():
        async with InProcessCluster(IDS, seed=52) as c:
            await c.node("n1").propose(JOIN)
            await until(lambda: all(c.node(m).state.change is not None for m in IDS), 10,
                        "every node knows the join")
            version, _acks = await _write(c, "n1", GAINED, b"v", w=2)
            token = c.node("n1").state.ring.token(GAINED)
            store = c.node("n1").store
            await until(lambda: store.hint_lookup("n4", token, GAINED) is not None, 10,
                        "n1 keeps a hint for n4")
            return version, store.hint_lookup("n4", token, GAINED)

    version, hint = run_virtual(main())
    assert hint.version == version and hint.value == b"v"
