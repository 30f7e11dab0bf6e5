"""The coordinator's per-partition plan cache: a request plans on the ring view it was given,
so a ring change (a change starting, finishing, a member down) between two requests is seen
by the second. The replicas are stood in by functions that record who was asked; the
coordinator, its plan, the quorum rounds and the fan-out are the real ones."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from dynamopy.core.membership import ClusterState, Member, Settings
from dynamopy.core.quorum import Target
from dynamopy.core.versions import HybridClock
from dynamopy.node.coordinator import Coordinator
from ring import Ring

MEMBERS = ("n1", "n2", "n3", "n4")
OLD = Ring.build(list(MEMBERS))
NEW = OLD.add("n5")


def _state(epoch: int, ring: Ring, *, pending: Ring | None = None) -> ClusterState:
    return ClusterState(
        epoch=epoch, settings=Settings(n=3), acceptors=MEMBERS, ring=ring, pending_ring=pending,
        change=("add", "n5") if pending is not None else None, change_epoch=epoch,
        members={m: Member(m, f"http://{m}", f"{m}:1", i + 1)
                 for i, m in enumerate(MEMBERS + ("n5",))})


class _Versions:
    def __init__(self):
        self.hlc, self.wall = HybridClock(9), 1_000_000

    async def next(self, after: int = 0, wall_ms=None) -> int:   # (wall_ms: ignored)
        self.wall += 1
        return self.hlc.next(self.wall)


class _Counter:
    def inc(self):
        pass

    def labels(self, *_):
        return self


class _Coordinator(Coordinator):
    """Coordinates from "c0" (no replica of anything): every target is a remote call that
    records its node and answers at once (a put with its version, a get with no record)."""

    def __init__(self):
        self.node_state = _state(1, OLD)
        self.down: set[str] = set()
        self.asked: list[tuple[str, str]] = []

        async def serving_state():
            return self.node_state

        super().__init__(
            me="c0", config=SimpleNamespace(request_timeout_s=1.0), state=lambda: self.node_state,
            clock=SimpleNamespace(monotonic=lambda: 0.0), metrics=SimpleNamespace(restamps=_Counter(), quorum_failures=_Counter()),
            detector=SimpleNamespace(check_clock=lambda: None,
                                     is_up=lambda m: m not in self.down),
            replica=None, hints=None, call_peer=None, versions=_Versions(),
            observe_version=lambda v: None, serving_state=serving_state,
            require_ready=lambda: self.node_state, wait_for_epoch=None)

    def _start_put(self, t: Target, epoch, token, key, record, wire, stale):
        self.asked.append(("put", t.node if t.hint_for is None else f"{t.node}>{t.hint_for}"))
        answer = asyncio.get_running_loop().create_future()
        answer.set_result(record.version)
        return answer

    def _start_get(self, t: Target, epoch, token, key, stale):
        self.asked.append(("get", t.node if t.hint_for is None else f"{t.node}>{t.hint_for}"))
        answer = asyncio.get_running_loop().create_future()
        answer.set_result(None)
        return answer

    async def ask(self, key: bytes, op: str) -> list[str]:
        self.asked.clear()
        if op == "put":
            await self.write(key, value=b"v", content_type="b", deleted=False, w=3)
        else:
            await self.read(key, r=3)
        await asyncio.sleep(0)
        return [node for kind, node in self.asked if kind == op]


def _moved_key() -> bytes:
    """A key whose preference list changes when n5 joins."""
    for i in range(10_000):
        key = f"key-{i}".encode()
        if OLD.preference_list(key, 3) != NEW.preference_list(key, 3):
            return key
    raise AssertionError("no key moves")


def test_a_ring_change_between_two_requests_is_seen_by_the_second():
    key = _moved_key()
    old, new = OLD.preference_list(key, 3), NEW.preference_list(key, 3)
    gainer = next(m for m in new if m not in old)

    async def main():
        c = _Coordinator()
        assert await c.ask(key, "put") == old
        assert sorted(await c.ask(key, "get")) == sorted(old)
        # A change starts: the member gaining the key gets the write too.
        c.node_state = _state(2, OLD, pending=NEW)
        assert await c.ask(key, "put") == old + [gainer]
        # The change finished: the new ring's replicas only, for writes and reads.
        c.node_state = _state(3, NEW)
        assert await c.ask(key, "put") == new
        assert sorted(await c.ask(key, "get")) == sorted(new)
        # A home replica seen down: a fallback stands in for it (not the cached plan).
        c.down = {new[1]}
        fallback = next(m for m in NEW.walk(key) if m not in new)
        assert await c.ask(key, "put") == [new[0], f"{fallback}>{new[1]}", new[2]]
        reads = await c.ask(key, "get")  # the down replica is asked last, after its stand-in
        assert reads[:3] == [new[0], new[2], f"{fallback}>{new[1]}"]
        # Up again: back to the home replicas.
        c.down = set()
        assert await c.ask(key, "put") == new
        # Back to a ring where the key is where it was (a new state, same ring as before).
        c.node_state = _state(4, OLD)
        assert await c.ask(key, "put") == old

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_read_asks_this_node_first_when_it_is_a_home_replica():
    """The cached read plan keeps ``plan_read``'s order: the coordinator first."""
    key = _moved_key()
    home = OLD.preference_list(key, 3)
    c = _Coordinator()
    c.id = home[-1]
    plan = c._read_targets(c.node_state, OLD.token(key), True)
    assert [t.node for t in plan] == [home[-1]] + home[:-1]


def test_keys_of_different_partitions_get_their_own_replicas():
    """With four members and N=3, keys whose preference lists differ each go to their own
    replicas, in either order of asking (a plan is per partition, not one for all)."""
    keys = {}
    for i in range(10_000):
        key = f"k{i}".encode()
        keys.setdefault(tuple(sorted(OLD.preference_list(key, 3))), key)
        if len(keys) >= 3:
            break
    assert len(keys) >= 2

    async def main():
        c = _Coordinator()
        for _ in range(2):
            for home, key in keys.items():
                assert sorted(await c.ask(key, "put")) == list(home)
                assert sorted(await c.ask(key, "get")) == list(home)

    asyncio.run(asyncio.wait_for(main(), 10))


def test_with_a_home_replica_down_a_read_still_asks_this_node_first():
    """The plan made per request (a replica down) keeps this node first when it is a home
    replica, then the other one up, then the fallback, then the replica seen down."""
    key = _moved_key()
    home = OLD.preference_list(key, 3)
    c = _Coordinator()
    c.id = home[2]
    c.down = {home[0]}
    fallback = next(m for m in OLD.walk(key) if m not in home)
    plan = c._read_targets(c.node_state, OLD.token(key), True)
    assert [(t.node, t.hint_for) for t in plan] == [
        (home[2], None), (home[1], None), (fallback, home[0]), (home[0], None)]


def test_a_partition_is_planned_once_per_ring_view():
    """No planning work per request that the ring view does not change: a second request
    of the same partition gets the same targets object; a new state plans again."""
    key = _moved_key()
    c = _Coordinator()
    state, token = c.node_state, OLD.token(key)
    first_write, first_read = c._targets(state, token, True), c._read_targets(state, token, True)
    assert c._targets(state, token, True) is first_write
    assert c._read_targets(state, token, True) is first_read
    newer = _state(2, OLD)
    assert c._targets(newer, token, True) is not first_write
    assert c._targets(newer, token, True) == first_write    # same ring: the same targets
