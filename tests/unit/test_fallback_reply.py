"""A fallback answers a sloppy write with the newest version it holds for the key (found in
review: it acked any hint, so a later acknowledged write could be hidden by an earlier one
with a larger version once the hints were delivered). Real Store, GroupCommitter, HintManager
and Replica; only the node around them is a stand-in."""

import asyncio
import types

from dynamopy.core.records import Record
from dynamopy.node.clock import SystemClock
from dynamopy.node.hints import HintManager
from dynamopy.node.metrics import Metrics
from dynamopy.node.replica import Replica
from dynamopy.storage import GroupCommitter, Store


def _fallback(tmp_path, grace=lambda: 864000.0):
    store = Store(str(tmp_path / "db"))
    node = types.SimpleNamespace(store=store, committer=GroupCommitter(store))
    state = types.SimpleNamespace(member=lambda _id: None, settings=types.SimpleNamespace(
        hint_window_s=3600.0, hint_max_bytes=1 << 30))
    common = dict(me="f", state=lambda: state, store=store, committer=node.committer,
                  clock=SystemClock(), metrics=Metrics(), note_epoch=None,
                  observe_version=lambda v: None)
    hints = HintManager(**common, detector=types.SimpleNamespace(down_for=lambda target: 0.0),
                        call_peer=None, stopping=lambda: False,
                        tombstone_grace_s=grace)
    return node, Replica(**common, catchup=None, poke_metalog=None, hints=hints)


def test_a_fallback_answers_with_the_newer_hint_it_already_holds(tmp_path):
    from dynamopy.core.versions import compose
    node, replica = _fallback(tmp_path)
    now_ms = SystemClock().wall_ms()

    def v(n):  # versions of now, ordered by n (a hint must be young enough to be stored)
        return compose(now_ms, n, 1)

    async def run():
        await node.committer.start()
        try:
            first = await replica.put(7, b"k", Record(v(900), value=b"first"), hint_for="home")
            later = await replica.put(7, b"k", Record(v(500), value=b"second"), hint_for="home")
            other = await replica.put(7, b"k", Record(v(600), value=b"x"), hint_for="other")
            await replica.put(8, b"own", Record(v(800), value=b"its own copy"))
            own = await replica.put(8, b"own", Record(v(700), value=b"y"), hint_for="home")
            return first, later, other, own
        finally:
            await node.committer.stop()
            node.store.close()

    first, later, other, own = asyncio.run(run())
    assert first == v(900)
    assert later == v(900), "the fallback must report the newer version so the write is re-stamped"
    assert other == v(600), "hints held for another member are a different replica's copy"
    assert own == v(800), "a record the fallback holds as a replica counts too"


def test_a_fallback_does_not_read_a_hint_older_than_the_tombstone_grace(tmp_path):
    """A sloppy read of an expired hint would be read-repaired onto the home replicas and
    bring back what a purged delete shadows; a young hint is read. (An expired hint is
    refused when offered, below; this one aged in storage: stored under a longer grace.)"""
    from dynamopy.core.versions import compose
    grace = [1e12]
    node, replica = _fallback(tmp_path, lambda: grace[0])
    now_ms = SystemClock().wall_ms()
    old, young = compose(now_ms - 900_000_000, 0, 1), compose(now_ms - 1_000, 0, 1)

    async def run():
        await node.committer.start()
        try:
            await replica.put(7, b"old", Record(old, value=b"x"), hint_for="home")
            await replica.put(8, b"young", Record(young, value=b"y"), hint_for="home")
            grace[0] = 864000.0
            return replica.get(7, b"old", "home"), replica.get(8, b"young", "home")
        finally:
            await node.committer.stop()
            node.store.close()

    got_old, got_young = asyncio.run(run())
    assert got_old is None                       # 10.4 days old, grace 10 days
    assert got_young is not None and got_young.version == young


def test_a_fallback_refuses_a_hint_that_is_expired_when_offered(tmp_path):
    """A hint that would be dropped before any delivery must not be acked (the ack would
    count toward W a copy that never reaches a replica): refused, counted as expired."""
    import pytest

    from dynamopy.core.versions import compose
    from dynamopy.node.hints import HintRefused
    node, replica = _fallback(tmp_path, lambda: 0.4)   # 90% of 0.4 s < the 500 ms bound
    now_ms = SystemClock().wall_ms()

    async def run():
        await node.committer.start()
        try:
            with pytest.raises(HintRefused, match="never be delivered"):
                await replica.put(7, b"k", Record(compose(now_ms - 10, 0, 1), value=b"v"),
                                  hint_for="home")
            return node.store.hint_stats()
        finally:
            await node.committer.stop()
            node.store.close()

    assert asyncio.run(run()).get("home", (0, 0))[0] == 0
