"""Quorum reads and writes through the production coordinator over the in-memory seams
(``dynamopy.sim.inprocess``): what a client sees when replicas are down, stale, or stand in
for others. Production nodes in one process, virtual time, deterministic."""

import asyncio

import pytest

from dynamopy.core.records import Record
from dynamopy.node.errors import QuorumUnavailable
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

IDS = ["n1", "n2", "n3"]


def _metric(node, name: str, **labels) -> float:
    """A sample of the node's ``/metrics`` (0 when absent)."""
    return node.metrics.registry.get_sample_value(name, labels) or 0.0


async def _write(c, at: str, key: bytes, value: bytes, w: int = 2) -> int:
    version, _acks = await c.coordinator(at).write(key, value=value, content_type="text/plain",
                                                   deleted=False, w=w)
    return version


def test_a_write_acked_at_w2_is_readable_after_its_coordinator_crashes():
    """Value, content type and deletion all survive (a delete reads back as a tombstone)."""
    async def main():
        async with InProcessCluster(IDS, seed=31) as c:
            version = await _write(c, "n1", b"k", b"v")
            gone, _ = await c.coordinator("n1").write(b"d", value=b"", content_type="x/y",
                                                      deleted=True, w=2)
            await c.crash("n1")
            await until(lambda: not c.node("n2").detector.is_up("n1"), 10, "n2 sees n1 down")
            return (version, await c.coordinator("n2").read(b"k", r=2),
                    gone, await c.coordinator("n2").read(b"d", r=2))

    version, got, gone, tomb = run_virtual(main())
    assert got is not None and (got.version, got.value, got.content_type, got.deleted) == (
        version, b"v", "text/plain", False)
    assert tomb is not None and (tomb.version, tomb.deleted, tomb.content_type) == (
        gone, True, "x/y")


def test_a_write_answers_at_w_acks_without_waiting_for_a_slow_replica():
    from dynamopy.sim.transport import DEFAULT_DELAY_S, MemoryNetwork

    def delay(src, dst, method):
        return 0.5 if (dst, method) == ("n3", "put") else DEFAULT_DELAY_S

    async def main():
        async with InProcessCluster(IDS, seed=30, network=MemoryNetwork(delay)) as c:
            version, acks = await c.coordinator("n1").write(
                b"k", value=b"v", content_type="text/plain", deleted=False, w=2)
            token = c.node("n1").state.ring.token(b"k")
            missing = c.node("n3").store.get(token, b"k")
            await until(lambda: c.node("n3").store.get(token, b"k") is not None, 5,
                        "the slow replica gets it too")
            return acks, missing

    acks, missing = run_virtual(main())
    assert acks == 2 and missing is None


def test_a_read_with_r_replicas_unreachable_fails_with_the_count_and_is_counted():
    async def main():
        async with InProcessCluster(IDS, seed=32) as c:
            await _write(c, "n1", b"k", b"v", w=3)
            for m in ("n2", "n3"):
                await c.crash(m)
            await until(lambda: not c.node("n1").detector.is_up("n2")
                        and not c.node("n1").detector.is_up("n3"), 10, "n1 sees them down")
            before = _metric(c.node("n1"), "dynamopy_quorum_failures_total", kind="read")
            with pytest.raises(QuorumUnavailable) as e:
                await c.coordinator("n1").read(b"k", r=2)
            one = await c.coordinator("n1").read(b"k", r=1)   # its own copy is enough for R=1
            after = _metric(c.node("n1"), "dynamopy_quorum_failures_total", kind="read")
            return e.value, before, after, one

    err, before, after, one = run_virtual(main())
    assert err.extra == {"replies": 1, "required": 2}
    assert err.detail.startswith("only 1 of the required 2 replicas answered the read within")
    assert after == before + 1
    assert one is not None and one.value == b"v"


def test_a_failed_write_is_not_acked_by_the_coordinators_own_hint_and_still_converges():
    """N=3 on three nodes, n3 down: no fallback is left, so the write to n3 fails and the
    coordinator keeps a hint for it, which never counts toward W. W=3 fails with 2 acks;
    W=2 succeeds; once n3 is back both writes reach it and the hints are deleted."""
    async def main():
        async with InProcessCluster(IDS, seed=33) as c:
            token = c.node("n1").state.ring.token(b"k")
            c.network.isolate("n3")
            await until(lambda: not c.node("n1").detector.is_up("n3"), 10, "n1 sees n3 down")
            with pytest.raises(QuorumUnavailable) as e:
                await _write(c, "n1", b"k", b"v1", w=3)
            failures = _metric(c.node("n1"), "dynamopy_quorum_failures_total", kind="write")
            version = await _write(c, "n1", b"k", b"v2", w=2)
            await until(lambda: c.node("n1").store.hint_stats().get("n3", (0, 0))[0] >= 1, 5,
                        "n1 keeps a hint for n3")
            hinted = c.node("n1").store.hint_stats()["n3"][0]
            c.network.heal()
            await until(lambda: (c.node("n3").store.get(token, b"k") or Record(0)).version
                        == version, 30, "the hint reaches n3")
            await until(lambda: not c.node("n1").store.hint_stats().get("n3", (0, 0))[0], 10,
                        "n1 deletes the delivered hints")
            # finished background calls (hint keeping included) are let go: no leak per write
            await until(lambda: not c.coordinator("n1")._background, 5, "background let go")
            return e.value, hinted, c.node("n3").store.get(token, b"k"), failures

    err, hinted, on_n3, failures = run_virtual(main())
    assert err.extra == {"acks": 2, "required": 3} and failures == 1
    assert err.detail == ("only 2 of the required 3 replicas acknowledged the write within "
                          "2.0s; it may still be stored on some replicas")
    assert hinted >= 1
    assert on_n3.value == b"v2"


def _sloppy_key(state) -> tuple[bytes, list[str], str]:
    """A key, its three home replicas and its first fallback."""
    walk = list(state.ring.walk_token(state.ring.token(b"s0")))
    return b"s0", walk[:3], walk[3]


def test_a_sloppy_read_counts_the_write_a_fallback_holds_as_a_hint():
    """Home replicas a, b, c; fallback d. b is cut off during a W=3 write coordinated by d,
    so d keeps b's copy as a hint (not as its own data). Then c is cut off too: a read at R=2
    has a and d (standing in for b) and must find the value in d's hint, whether d is asked
    over the network or coordinates itself; a strict read (no fallbacks) fails. Once b is
    back, d's hint reaches it."""
    async def main():
        async with InProcessCluster(["n1", "n2", "n3", "n4"], seed=34) as c:
            key, (a, b, cc), d = _sloppy_key(c.node("n1").state)
            token = c.node(a).state.ring.token(key)
            c.network.isolate(b)
            await until(lambda: not c.node(d).detector.is_up(b), 10, f"{d} sees {b} down")
            version = await _write(c, d, key, b"v", w=3)
            held = (c.node(d).store.get(token, key),
                    c.node(d).store.hint_stats().get(b, (0, 0))[0])
            c.network.partition([[a, d], [b], [cc]])
            for at in (a, d):
                await until(lambda at=at: not c.node(at).detector.is_up(cc), 10, "c down")
            via_remote = await c.coordinator(a).read(key, r=2)
            via_local = await c.coordinator(d).read(key, r=2)
            with pytest.raises(QuorumUnavailable):
                await c.coordinator(a).read(key, r=2, sloppy=False)
            session = await c.coordinator(a).read_after(key, r=2, after=version)
            with pytest.raises(QuorumUnavailable):
                await c.coordinator(a).read_after(key, r=2, after=version, sloppy=False)
            # A newer version only d holds (a hint for b): a session read that saw it finds
            # it through the fallback when a's own copy is older.
            newer = Record(version + 1_000_000, value=b"newer")
            await c.node(d).replica.put(token, key, newer, hint_for=b)
            wider = await c.coordinator(a).read_after(key, r=1, after=newer.version)
            c.network.heal()
            await until(lambda: (c.node(b).store.get(token, key) or Record(0)).version
                        == newer.version, 30, f"d's hints reach {b}")
            return version, held, via_remote, via_local, session, wider, newer

    version, held, via_remote, via_local, session, wider, newer = run_virtual(main())
    assert held == (None, 1)
    assert via_remote is not None and via_remote.version == version
    assert via_local is not None and via_local.version == version
    assert session is not None and session.version == version
    assert wider == newer


def test_a_strict_write_uses_no_fallback():
    """sloppy=False: with b down the write goes to a and c only (d holds no hint), and W=3
    fails."""
    async def main():
        async with InProcessCluster(["n1", "n2", "n3", "n4"], seed=36) as c:
            key, (a, b, cc), d = _sloppy_key(c.node("n1").state)
            c.network.isolate(b)
            await until(lambda: not c.node(a).detector.is_up(b), 10, f"{a} sees {b} down")
            _version, acks = await c.coordinator(a).write(
                key, value=b"v", content_type="text/plain", deleted=False, w=2, sloppy=False)
            with pytest.raises(QuorumUnavailable):
                await c.coordinator(a).write(key, value=b"v", content_type="text/plain",
                                             deleted=False, w=3, sloppy=False)
            return acks, c.node(d).store.hint_stats()

    acks, hints_on_d = run_virtual(main())
    assert acks == 2 and not any(count for count, _b in hints_on_d.values())


def test_a_node_that_is_not_a_replica_reads_from_the_replicas():
    """R=1 through the one node outside the key's replica set: it asks a replica, not its own
    (empty) store."""
    async def main():
        async with InProcessCluster(["n1", "n2", "n3", "n4"], seed=37) as c:
            key, (a, _b, _c), d = _sloppy_key(c.node("n1").state)
            version = await _write(c, a, key, b"v", w=3)
            return version, await c.coordinator(d).read(key, r=1)

    version, got = run_virtual(main())
    assert got is not None and got.version == version


def test_read_repair_sends_the_newest_record_to_a_remote_stale_replica():
    async def main():
        async with InProcessCluster(IDS, seed=35) as c:
            v1 = await _write(c, "n1", b"k", b"old", w=3)
            token = c.node("n1").state.ring.token(b"k")
            newer = Record(v1 + 1_000_000, value=b"new")
            for i in ("n1", "n2"):
                await c.node(i).replica.put(token, b"k", newer)
            before = _metric(c.node("n1"), "dynamopy_read_repairs_total")
            got = await c.coordinator("n1").read(b"k", r=3)
            await until(lambda: c.node("n3").store.get(token, b"k") == newer, 5,
                        "read repair brings n3 up to date")
            return got, newer, before, _metric(c.node("n1"), "dynamopy_read_repairs_total")

    got, newer, before, after = run_virtual(main())
    assert got == newer
    assert after == before + 1


def test_read_repair_waits_for_the_slow_reply_and_survives_a_failed_one():
    """R=2 at n1 with n1's calls to n2 slow (0.3 s): n1 and n3 (asked at the 0.1 s
    speculation) decide the read. Repair waits for n2's late reply: when it is the newest, n1
    and n3 get it; when n2's call fails instead, the stale n3 is still repaired."""
    from dynamopy.sim.transport import DEFAULT_DELAY_S, MemoryNetwork

    def delay(src, dst, method):
        return 0.3 if (src, dst, method) == ("n1", "n2", "get") else DEFAULT_DELAY_S

    async def main():
        async with InProcessCluster(IDS, seed=38, network=MemoryNetwork(delay)) as c:
            tok = c.node("n1").state.ring.token
            pref = c.node("n1").state.ring.preference_list
            # keys n1 reads from itself and n2 first (n2 before n3 in preference order)
            a, b = [k for k in (b"k%d" % i for i in range(100))
                    if [m for m in pref(k, 3) if m != "n1"] == ["n2", "n3"]][:2]
            v = await _write(c, "n1", a, b"old", w=3)
            newest_on_n2 = Record(v + 1_000_000, value=b"n2's")
            await c.node("n2").replica.put(tok(a), a, newest_on_n2)
            await c.coordinator("n1").read(a, r=2)
            await until(lambda: c.node("n1").store.get(tok(a), a) == newest_on_n2
                        and c.node("n3").store.get(tok(a), a) == newest_on_n2, 5,
                        "n1 and n3 repaired with n2's late reply")
            v = await _write(c, "n1", b, b"old", w=3)
            newest_on_n1 = Record(v + 1_000_000, value=b"n1's")
            await c.node("n1").replica.put(tok(b), b, newest_on_n1)
            read = asyncio.ensure_future(c.coordinator("n1").read(b, r=2))
            await asyncio.sleep(0.2)
            c.network.isolate("n2")            # n2's reply (due at 0.3 s) is lost
            got = await read
            await until(lambda: c.node("n3").store.get(tok(b), b) == newest_on_n1, 5,
                        "n3 repaired although n2's call failed")
            return got, newest_on_n1

    got, newest_on_n1 = run_virtual(main())
    assert got == newest_on_n1


def test_a_read_asks_the_next_replica_when_one_of_the_first_r_fails():
    """n2 has just crashed and n1 still believes it up, so n1's R=2 read asks itself and n2
    first; n2's failure starts the call to n3 at once, and the read succeeds."""
    async def main():
        async with InProcessCluster(IDS, seed=39) as c:
            pref = c.node("n1").state.ring.preference_list
            key = next(k for k in (b"k%d" % i for i in range(100))
                       if [m for m in pref(k, 3) if m != "n1"] == ["n2", "n3"])
            version = await _write(c, "n1", key, b"v", w=3)
            await c.crash("n2")
            up = c.node("n1").detector.is_up("n2")
            return up, version, await c.coordinator("n1").read(key, r=2)

    up, version, got = run_virtual(main())
    assert up                                   # the detector has not noticed yet
    assert got is not None and got.version == version


def test_a_clean_stop_right_after_a_write_keeps_the_coordinators_hint():
    """n1's W=2 write succeeds while its call to n3 is still on the wire (slow link); n3 is
    cut off then, so the call fails and n1 keeps a hint for n3 in the background. n1
    stopped at once (a clean stop waits for its background calls first)
    still has the hint after a restart."""
    from dynamopy.sim.transport import DEFAULT_DELAY_S, MemoryNetwork

    def delay(src, dst, method):
        return 0.5 if (src, dst, method) == ("n1", "n3", "put") else DEFAULT_DELAY_S

    async def main():
        async with InProcessCluster(IDS, seed=40, network=MemoryNetwork(delay)) as c:
            await _write(c, "n1", b"k", b"v", w=2)
            c.network.isolate("n3")
            await c.stop("n1")
            node = await c.start("n1")
            return node.store.hint_stats().get("n3", (0, 0))[0]

    assert run_virtual(main()) == 1


def test_a_local_replica_that_cannot_serve_is_a_failure_not_an_empty_reply():
    """n1's own replica refuses (it lost its data): an R=1 read at n1 must ask n2 rather than
    count n1's refusal as "no such key"."""
    async def main():
        async with InProcessCluster(IDS, seed=29) as c:
            version = await _write(c, "n1", b"k", b"v", w=3)
            c.node("n1").replica.replacing = lambda: True
            return version, await c.coordinator("n1").read(b"k", r=1)

    version, got = run_virtual(main())
    assert got is not None and got.version == version
