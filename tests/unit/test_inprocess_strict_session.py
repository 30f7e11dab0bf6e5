"""A strict session read stays strict when it widens: the replicas it asks after stale first
replies are home replicas only, never a fallback holding a hint (a sloppy session read may
use that hint). Four production nodes in one process over the in-memory seams, virtual time."""

import pytest

from dynamopy.core.records import Record
from dynamopy.node.errors import StaleSession
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

IDS = ["n1", "n2", "n3", "n4"]


def test_a_strict_session_read_never_answers_from_a_fallbacks_hint():
    async def main():
        async with InProcessCluster(IDS, seed=31) as c:
            key = b"k"
            v1, _ = await c.coordinator("n1").write(key, value=b"old", content_type="text/plain",
                                                    deleted=False, w=3)
            state = c.node("n1").state
            token = state.ring.token(key)
            walk = list(state.ring.walk_token(token))
            (a, b, home3), fallback = walk[:3], walk[3]
            newer = Record(v1 + 1_000_000, value=b"new")
            # the only copy of the newer version: a hint for b on the fallback
            await c.node(fallback).replica.put(token, key, newer, hint_for=b)
            await c.crash(b)
            await until(lambda: not c.node(a).detector.is_up(b), 10, f"{a} sees {b} down")
            with pytest.raises(StaleSession) as strict:
                await c.coordinator(a).read_after(key, r=1, sloppy=False, after=newer.version)
            sloppy = await c.coordinator(a).read_after(key, r=1, after=newer.version)
            return strict.value, sloppy, newer, v1

    strict, sloppy, newer, v1 = run_virtual(main())
    assert strict.extra == {"after": newer.version, "newest": v1}  # home replicas only
    assert sloppy == newer                  # a sloppy session read may use the hint
