"""Session reads (``X-Dynamopy-After``) over the in-memory seams: a client that has seen a
version never reads an older one; when the first R replies are stale the coordinator asks more
replicas, and when none reachable has the version it answers ``stale_session``, never the
older value. Three production nodes in one process, virtual time."""

import pytest

from dynamopy.core.records import Record
from dynamopy.node.errors import StaleSession
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

IDS = ["n1", "n2", "n3"]


async def _stale_on_n3(c, key: bytes) -> tuple[int, Record]:
    """``key`` written to all three, then a newer version that only n1 and n2 hold (a write
    n3 missed); returns the token and the newer record."""
    v1, _ = await c.coordinator("n1").write(key, value=b"old", content_type="text/plain",
                                            deleted=False, w=3)
    token = c.node("n1").state.ring.token(key)
    newer = Record(v1 + 1_000_000, value=b"new")
    for i in ("n1", "n2"):
        await c.node(i).replica.put(token, key, newer)
    return token, newer


def test_a_session_read_through_the_stale_replica_asks_more_and_answers_the_newer_version():
    async def main():
        async with InProcessCluster(IDS, seed=21) as c:
            _token, newer = await _stale_on_n3(c, b"k")
            plain = await c.coordinator("n3").read(b"k", r=1)   # n3's own, stale copy
            got = await c.coordinator("n3").read_after(b"k", r=1, after=newer.version)
            return plain, got, newer

    plain, got, newer = run_virtual(main())
    assert plain.value == b"old"            # without the token R=1 answers the stale copy
    assert got == newer                     # with it, never older than what the client saw


def test_a_session_read_falls_back_to_fewer_replicas_when_all_n_cannot_answer():
    """n2 is down: a read of all 3 fails, so R=2 (n3 and n1) is tried and finds the version."""
    async def main():
        async with InProcessCluster(IDS, seed=22) as c:
            _token, newer = await _stale_on_n3(c, b"k")
            await c.crash("n2")
            await until(lambda: not c.node("n3").detector.is_up("n2"), 10, "n3 sees n2 down")
            got = await c.coordinator("n3").read_after(b"k", r=1, after=newer.version)
            return got, newer

    got, newer = run_virtual(main())
    assert got == newer


def test_a_session_read_no_replica_can_satisfy_is_stale_session_never_the_older_value():
    async def main():
        async with InProcessCluster(IDS, seed=23) as c:
            _token, newer = await _stale_on_n3(c, b"k")
            ahead = newer.version + 1_000_000     # a version no replica holds
            with pytest.raises(StaleSession) as e:
                await c.coordinator("n3").read_after(b"k", r=1, after=ahead)
            missing = await c.coordinator("n3").read_after(b"absent", r=2)
            plain = await c.coordinator("n3").read_after(b"k", r=2)
            with pytest.raises(StaleSession) as none:
                await c.coordinator("n3").read_after(b"absent", r=2, after=1)
            return e.value, newer, ahead, missing, plain, none.value

    err, newer, ahead, missing, plain, none = run_virtual(main())
    # the newest found is reported: the whole replica set was asked, not only n3's copy
    assert err.extra == {"after": ahead, "newest": newer.version}
    assert f"newest found is {newer.version}" in err.detail
    assert "retry, or drop X-Dynamopy-After to accept an older value" in err.detail
    assert missing is None                  # no token: a missing key is just missing
    assert plain == newer                   # no token: a plain read of R=2
    assert none.extra == {"after": 1, "newest": 0} and "newest found is none" in none.detail


def test_a_session_read_alone_with_its_replica_answers_what_it_holds_or_stale_session():
    """n2 and n3 are down: R=1 at n1 answers n1's copy when it is as new as the token (no
    wider read is needed), and stale_session naming that copy's version when it is not."""
    async def main():
        async with InProcessCluster(IDS, seed=24) as c:
            version, _ = await c.coordinator("n1").write(
                b"k", value=b"v", content_type="text/plain", deleted=False, w=3)
            for m in ("n2", "n3"):
                await c.crash(m)
            await until(lambda: not c.node("n1").detector.is_up("n2")
                        and not c.node("n1").detector.is_up("n3"), 10, "n1 sees them down")
            got = await c.coordinator("n1").read_after(b"k", r=1, after=version)
            with pytest.raises(StaleSession) as e:
                await c.coordinator("n1").read_after(b"k", r=1, after=version + 1)
            return version, got, e.value

    version, got, err = run_virtual(main())
    assert got is not None and got.version == version
    assert err.extra == {"after": version + 1, "newest": version}


def test_a_write_with_a_session_token_is_stamped_above_it_and_a_forged_one_is_refused():
    from dynamopy.node.errors import BadRequest

    async def main():
        async with InProcessCluster(IDS, seed=25) as c:
            co = c.coordinator("n1")
            seen, _ = await co.write(b"k", value=b"a", content_type="text/plain",
                                     deleted=False, w=2)
            later, _ = await co.write(b"k", value=b"b", content_type="text/plain",
                                      deleted=False, w=2, after=seen + 10**9)
            with pytest.raises(BadRequest):
                await co.write(b"k", value=b"c", content_type="text/plain", deleted=False,
                               w=2, after=(1 << 63) - 1)
            return seen, later

    seen, later = run_virtual(main())
    assert later > seen + 10**9
