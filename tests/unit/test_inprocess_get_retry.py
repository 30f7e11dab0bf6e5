"""A read's replica that answers ``not_caught_up`` (still applying the metadata log) is asked
again shortly; its answer counts only once it gives one (in-process, virtual time).

The refusals are arranged: n3's replica answers ``not_caught_up`` for the test key a given
number of times (the error its ``require_caught_up`` raises, at the same point of the inline
``get`` handler), so which reply comes first never depends on timing."""

import pytest

from dynamopy.core.records import Record
from dynamopy.node.errors import NOT_CAUGHT_UP, QuorumUnavailable, StaleEpochError
from dynamopy.peer import RemoteError
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

IDS = ["n1", "n2", "n3"]


def _refuse_gets(replica, key: bytes, times: float) -> list:
    """Make ``replica`` answer ``not_caught_up`` to the next ``times`` gets of ``key``;
    return the list the refusals are counted in."""
    real_get, refused = replica.get, []

    def get(token, k, hint_for=None):
        if k == key and len(refused) < times:
            refused.append(k)
            raise RemoteError(NOT_CAUGHT_UP, f"{replica.me} is catching up (test)")
        return real_get(token, k, hint_for)

    replica.get = get
    return refused


async def _newest_only_on_n3(c: InProcessCluster) -> tuple[Record, Record]:
    old_version, _ = await c.coordinator("n1").write(
        b"k", value=b"old", content_type="text/plain", deleted=False, w=3)
    token = c.node("n1").state.ring.token(b"k")
    newer = Record(old_version + 1_000_000, value=b"new")
    await c.node("n3").replica.put(token, b"k", newer)  # a write n1 and n2 missed
    return c.node("n1").store.get(token, b"k"), newer


def test_a_read_waits_for_the_newest_copy_from_a_replica_that_was_catching_up():
    """n3 alone holds the newest version and answers not_caught_up twice (the first ask and
    the first retry); the read at R=3 asks again and answers with n3's version, not with
    the older copies of the replicas that answered at once."""
    async def main():
        async with InProcessCluster(IDS, seed=21) as c:
            old, newer = await _newest_only_on_n3(c)
            refused = _refuse_gets(c.node("n3").replica, b"k", 2)
            got = await c.coordinator("n1").read(b"k", r=3)
            return old, newer, got, len(refused)

    old, newer, got, refused = run_virtual(main())
    assert old.value == b"old" and refused == 2
    assert got == newer


def test_a_replica_that_never_catches_up_is_not_counted_as_a_reply():
    """n3 answers not_caught_up to every ask: after the retries its call fails, so a read at
    R=3 is a quorum failure (n3 is never counted as a replica without the key), while R=2
    is answered by n1 and n2."""
    async def main():
        async with InProcessCluster(IDS, seed=22) as c:
            old, _newer = await _newest_only_on_n3(c)
            refused = _refuse_gets(c.node("n3").replica, b"k", float("inf"))
            with pytest.raises(QuorumUnavailable) as e:
                await c.coordinator("n1").read(b"k", r=3)
            got = await c.coordinator("n1").read(b"k", r=2)
            return old, got, len(refused), e.value

    old, got, refused, err = run_virtual(main())
    assert refused >= 4  # the first ask and the retries
    assert "only 2 of the required 3 replicas answered" in str(err)
    assert got == old


def _refuse_ring_after_catching_up(replica, refused: list, key: bytes, times: float) -> list:
    """After its ``not_caught_up`` answers (``refused``), make ``replica`` answer the next
    ``times`` home-replica gets of ``key`` with ``stale_epoch`` at its own epoch (as when it
    has just learned a ring change the coordinator has not), and return their count."""
    real_check, stale = replica.check_epoch, []

    def check_epoch(epoch, token):
        if refused and len(stale) < times and token == replica.state().ring.token(key):
            stale.append(epoch)
            raise StaleEpochError(replica.state().epoch)
        return real_check(epoch, token)

    replica.check_epoch = check_epoch
    return stale


def test_a_stale_epoch_answer_to_the_retry_makes_the_read_catch_up_and_try_again():
    """n3 answers not_caught_up, then stale_epoch to the retry: the read notes the epoch,
    catches up with it and plans again, and answers with n3's newest copy at R=3."""
    async def main():
        async with InProcessCluster(IDS, seed=23) as c:
            _old, newer = await _newest_only_on_n3(c)
            replica = c.node("n3").replica
            refused = _refuse_gets(replica, b"k", 1)
            stale = _refuse_ring_after_catching_up(replica, refused, b"k", 1)
            got = await c.coordinator("n1").read(b"k", r=3)
            return newer, got, len(refused), len(stale)

    newer, got, refused, stale = run_virtual(main())
    assert (refused, stale) == (1, 1)
    assert got == newer


def test_the_retry_of_a_home_replica_is_checked_against_its_ring():
    """n3 answers not_caught_up, then refuses every later ask of the key with stale_epoch:
    the retry is asked as a home replica (checked against n3's ring), so n3 never counts
    and the read at R=3 fails."""
    async def main():
        async with InProcessCluster(IDS, seed=24) as c:
            await _newest_only_on_n3(c)
            replica = c.node("n3").replica
            refused = _refuse_gets(replica, b"k", 1)
            stale = _refuse_ring_after_catching_up(replica, refused, b"k", float("inf"))
            with pytest.raises(QuorumUnavailable):
                await c.coordinator("n1").read(b"k", r=3)
            return len(stale)

    assert run_virtual(main()) >= 1


def test_a_fallback_asked_again_after_not_caught_up_still_reads_its_hint():
    """Four nodes: the newest version exists only as a hint for the crashed home replica b on
    the fallback, which answers not_caught_up first; the retry still asks it for b's hints,
    so a sloppy read at R=3 answers with the hinted version."""
    async def main():
        async with InProcessCluster(["n1", "n2", "n3", "n4"], seed=25) as c:
            key = b"k"
            v1, _ = await c.coordinator("n1").write(key, value=b"old", content_type="text/plain",
                                                    deleted=False, w=3)
            state = c.node("n1").state
            token = state.ring.token(key)
            (a, b, _home3), fallback = list(state.ring.walk_token(token))[:3], \
                list(state.ring.walk_token(token))[3]
            newer = Record(v1 + 1_000_000, value=b"new")
            await c.node(fallback).replica.put(token, key, newer, hint_for=b)
            await c.crash(b)
            await until(lambda: not c.node(a).detector.is_up(b), 10, f"{a} sees {b} down")
            refused = _refuse_gets(c.node(fallback).replica, key, 1)
            got = await c.coordinator(a).read(key, r=3)
            return newer, got, len(refused)

    newer, got, refused = run_virtual(main())
    assert refused == 1
    assert got == newer
