"""Hinted handoff over the in-memory seams: a fallback stores a hint for a replica that is
cut off, delivers it when that replica is reachable again, and deletes it on its ack."""

from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

IDS = ["n1", "n2", "n3", "n4"]


def _key_with(state, coordinator: str) -> tuple[bytes, list[str], str]:
    """A key whose home replicas include ``coordinator``; its replicas and its first
    fallback (the next member on the ring walk)."""
    for i in range(1000):
        key = b"k%d" % i
        token = state.ring.token(key)
        walk = list(state.ring.walk_token(token))
        if coordinator in walk[:3] and walk[1] != coordinator:
            return key, walk[:3], walk[3]
    raise AssertionError("no such key")


def test_a_hint_is_stored_on_the_fallback_delivered_on_return_and_deleted_on_ack():
    async def main():
        async with InProcessCluster(IDS, seed=5, n=3, r=2, w=2) as c:
            state = c.node("n1").state
            key, home, fallback = _key_with(state, "n1")
            target = next(m for m in home if m != "n1")
            token = state.ring.token(key)
            c.network.isolate(target)
            await until(lambda: not c.node("n1").detector.is_up(target), 10,
                        f"n1 sees {target} down")
            version, _ = await c.coordinator("n1").write(
                key, value=b"v", content_type="text/plain", deleted=False, w=3)
            stored = c.node(fallback).store.hint_stats().get(target, (0, 0))[0]
            missing = c.node(target).store.get(token, key)
            c.network.heal()
            await until(lambda: (c.node(target).store.get(token, key) or None) is not None,
                        20, f"the hint reaches {target}")
            delivered = c.node(target).store.get(token, key)
            await until(lambda: not c.node(fallback).store.hint_stats().get(target), 10,
                        f"{fallback} deletes the delivered hint")
            return stored, missing, delivered, version

    stored, missing, delivered, version = run_virtual(main())
    assert stored == 1          # the fallback held one hint for the cut-off replica
    assert missing is None      # which had not seen the write
    assert delivered.version == version and delivered.value == b"v"


def test_the_coordinator_keeps_a_hint_for_a_home_replica_that_missed_the_write():
    """A home replica the failure detector still thinks up, but cut off: the write succeeds
    with W acks from the others, the coordinator keeps a hint for the one that missed it
    (never counted toward W), and delivers it once that replica is back."""
    async def main():
        async with InProcessCluster(IDS[:3], seed=7, n=3, r=2, w=2) as c:
            state = c.node("n1").state
            key = b"missed"
            token = state.ring.token(key)
            c.network.isolate("n3")
            assert c.node("n1").detector.is_up("n3")   # not noticed yet: still a target
            version, acks = await c.coordinator("n1").write(
                key, value=b"v", content_type="text/plain", deleted=False, w=2)
            await until(lambda: c.node("n1").store.hint_stats().get("n3"), 10,
                        "n1 keeps a hint for n3")
            kept = c.node("n1").store.hint_stats()["n3"][0]
            missing = c.node("n3").store.get(token, key)
            c.network.heal()
            await until(lambda: c.node("n3").store.get(token, key) is not None, 20,
                        "the hint reaches n3")
            return acks, kept, missing, c.node("n3").store.get(token, key), version

    acks, kept, missing, delivered, version = run_virtual(main())
    assert acks == 2 and kept == 1 and missing is None
    assert delivered.version == version and delivered.value == b"v"


def test_the_coordinator_keeps_a_hint_for_a_home_replica_that_refused_as_not_caught_up():
    """A home replica that refuses the write with not_caught_up (here: it is coming back as
    a replacement) missed it as surely as one that is cut off: the write succeeds with the
    other two and the coordinator keeps a hint for it."""
    async def main():
        async with InProcessCluster(IDS[:3], seed=8, n=3, r=2, w=2) as c:
            key = b"refused"
            token = c.node("n1").state.ring.token(key)
            c.node("n3").replica.replacing = lambda: True
            version, acks = await c.coordinator("n1").write(
                key, value=b"v", content_type="text/plain", deleted=False, w=2)
            await until(lambda: c.node("n1").store.hint_lookup("n3", token, key) is not None,
                        10, "n1 keeps a hint for n3")
            return acks, version, c.node("n1").store.hint_lookup("n3", token, key), \
                c.node("n3").store.get(token, key)

    acks, version, hint, on_n3 = run_virtual(main())
    assert acks == 2 and on_n3 is None
    assert hint.version == version and hint.value == b"v"


class _BehindFor:
    """A node's catch-up view that reports it a commit behind its peers for ``for_s``
    (virtual) seconds from now, then the real one: the moment between a heartbeat that
    announces a commit and this node applying it."""

    def __init__(self, real, clock, for_s: float) -> None:
        self.real, self.clock = real, clock
        self.until = clock.monotonic() + for_s

    @property
    def caught_up(self) -> bool:
        return self.clock.monotonic() >= self.until and self.real.caught_up

    async def wait(self, timeout_s: float) -> bool:
        await self.clock.sleep(max(0.0, min(timeout_s, self.until - self.clock.monotonic())))
        return self.caught_up

    def lag(self) -> str:
        return "a commit behind (test)"


def test_a_coordinator_a_commit_behind_still_writes_its_own_copy():
    """Regression (session 5, real processes, 2 of ~40 runs of the two-dead-members test): the
    coordinator's own replica, a commit behind what a heartbeat announced, refused its local
    write as not caught up and kept no hint, so the write succeeded on the other two and this
    node never held it. Now it waits to catch up and writes, as a peer's put does."""
    async def main():
        async with InProcessCluster(IDS[:3], seed=8, n=3, r=2, w=2) as c:
            n1 = c.node("n1")
            key = b"own-copy"
            token = n1.state.ring.token(key)
            n1.replica.catchup = _BehindFor(n1.replica.catchup, n1.clock, 0.2)
            version, acks = await c.coordinator("n1").write(
                key, value=b"v", content_type="text/plain", deleted=False, w=2)
            await until(lambda: n1.store.get(token, key) is not None, 10,
                        "n1 holds its own copy")
            return version, n1.store.get(token, key)

    version, own = run_virtual(main())
    assert own.version == version and own.value == b"v"
