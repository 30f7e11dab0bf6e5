"""Catching up with the metadata log before serving (node/catchup.py), and the epoch and
ownership rule for handed-off hints (node/hints.py rpc_receive), on stand-in nodes."""

import asyncio
import types

import pytest

from dynamopy.core.membership import ClusterState, Member, Settings
from dynamopy.core.records import Record
from dynamopy.node.catchup import CatchUp
from dynamopy.node.hints import HintManager
from dynamopy.node.metrics import Metrics
from dynamopy.node.replica import NOT_CAUGHT_UP, STALE_EPOCH, Replica
from dynamopy.peer import RemoteError
from ring import Ring

MEMBERS = ("n1", "n2", "n3", "n4")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall_ms(self) -> int:
        return int(self.now * 1000)

    async def sleep(self, s: float) -> None:
        self.now += s


def state_at(epoch: int, ring: Ring, members=MEMBERS + ("n5",)) -> ClusterState:
    return ClusterState(epoch=epoch, settings=Settings(n=3), acceptors=MEMBERS, ring=ring,
                        members={m: Member(m, f"http://{m}", f"{m}:1", i + 1)
                                 for i, m in enumerate(members)})


def stand_in(state: ClusterState, *, down=(), known_chosen_below=0):
    node = types.SimpleNamespace(id="n1", state=state, clock=FakeClock(), metrics=Metrics())
    node.detector = types.SimpleNamespace(is_up=lambda m: m not in down)
    node.catchup = CatchUp(
        me=node.id, state=lambda: node.state, is_up=lambda m: node.detector.is_up(m),
        clock=_Via(node, "clock"), known_chosen_below=lambda: known_chosen_below,
        poke=lambda: None)
    return node


OLD = Ring.build(list(MEMBERS))
NEW = OLD.add("n5")


def test_not_caught_up_until_every_reachable_member_reported():
    node = stand_in(state_at(2, OLD), down={"n4"})
    c = node.catchup
    assert not c.caught_up and "n2" in c.lag()
    c.note(2, "n2")
    c.note(2, "n3")
    assert not c.caught_up                # n5 is up and has not reported
    c.note(4, "n5")
    assert not c.caught_up and "epoch 4" in c.lag()   # round done, but a peer is ahead
    node.state = state_at(4, NEW)
    assert c.caught_up


def test_a_node_that_reaches_no_majority_of_the_metadata_group_stays_unready():
    node = stand_in(state_at(2, OLD), down={"n2", "n3", "n4"})
    node.catchup.note(2, "n5")            # not an acceptor
    assert not node.catchup.caught_up and "majority" in node.catchup.lag()
    node.detector.is_up = lambda m: m != "n4"
    node.catchup.note(2, "n2")
    assert not node.catchup.caught_up     # n3 is up again: it must report too
    node.catchup.note(2, "n3")
    assert node.catchup.caught_up


def test_a_known_commit_index_ahead_of_the_applied_epoch_is_a_gap():
    node = stand_in(state_at(2, OLD), known_chosen_below=3)
    for m in ("n2", "n3", "n4", "n5"):
        node.catchup.note(1, m)
    assert not node.catchup.caught_up and node.catchup.target_epoch() == 3
    node.state = state_at(3, OLD)
    assert node.catchup.caught_up


def test_the_start_round_is_latched_later_reports_only_raise_the_target():
    node = stand_in(state_at(4, NEW))
    for m in ("n2", "n3", "n4", "n5"):
        node.catchup.note(4, m)
    assert node.catchup.caught_up
    node.detector.is_up = lambda m: True
    node.catchup.note(5, "n2")            # a request planned at a newer epoch
    assert not node.catchup.caught_up
    node.state = state_at(5, NEW)
    assert node.catchup.caught_up


def test_wait_returns_once_caught_up_or_false_at_the_deadline():
    node = stand_in(state_at(4, NEW))
    for m in ("n2", "n3", "n4", "n5"):
        node.catchup.note(5, m)
    assert asyncio.run(node.catchup.wait(0.2)) is False
    node.state = state_at(5, NEW)
    assert asyncio.run(node.catchup.wait(0.2)) is True


# ---- handed-off hints follow the rule of client writes ("Also seen" in issue 19) ---------

def hint_target(state: ClusterState):
    node = stand_in(state)
    for m in ("n2", "n3", "n4", "n5"):
        node.catchup.note(state.epoch, m)
    stored = []

    async def submit(writes=(), **_kw):
        stored.extend(writes)
        return [True] * len(writes)

    node.committer = types.SimpleNamespace(submit=submit)
    node.note_epoch = node.catchup.note
    node.stopping = False
    # The components' narrow collaborators, read from the stand-in at call time (the tests
    # below swap some of them after building).
    common = dict(me=node.id, state=lambda: node.state, store=_Via(node, "store"),
                  committer=_Via(node, "committer"), clock=_Via(node, "clock"),
                  metrics=node.metrics, note_epoch=node.catchup.note,
                  observe_version=lambda v: None)
    node.hints = HintManager(**common, detector=_Via(node, "detector"),
                             call_peer=lambda *a, **k: node.call_peer(*a, **k),
                             stopping=lambda: node.stopping,
                             tombstone_grace_s=lambda: 864000.0)
    node.replica = Replica(**common, catchup=node.catchup, poke_metalog=lambda: None,
                           hints=node.hints)
    node.hints.replica = node.replica
    return node, stored


class _Via:
    """Forwards attribute reads to ``node.<name>`` as it is when read."""

    def __init__(self, node, name):
        self._node, self._name = node, name

    def __getattr__(self, attr):
        return getattr(getattr(self._node, self._name), attr)


def token_where(ring: Ring, member: str, replicates: bool) -> int:
    return next(t for t in range(0, 2**32, 2**20)
                if (member in ring.preference_list_for_token(t, 3)) == replicates)


def test_hints_from_a_holder_on_an_older_ring_for_a_dropped_range_are_refused():
    node, stored = hint_target(state_at(4, NEW))
    dropped = next(t for t in range(0, 2**32, 2**20)
                   if "n1" in OLD.preference_list_for_token(t, 3)
                   and "n1" not in NEW.preference_list_for_token(t, 3))
    kept = token_where(NEW, "n1", True)
    batch = [[kept, b"k", Record(7).to_wire()], [dropped, b"d", Record(8).to_wire()]]
    with pytest.raises(RemoteError) as e:
        asyncio.run(node.hints.rpc_receive([2, batch], "n3"))
    assert e.value.code == STALE_EPOCH and e.value.detail == "4"
    assert stored == []                   # nothing of the batch was stored
    assert asyncio.run(node.hints.rpc_receive([2, batch[:1]], "n3")) == 1
    assert [(t, k) for t, k, _r in stored] == [(kept, b"k")]


def test_hints_to_a_target_behind_the_holder_wait_then_are_refused():
    node, stored = hint_target(state_at(4, NEW))
    kept = token_where(NEW, "n1", True)
    with pytest.raises(RemoteError) as e:
        asyncio.run(node.hints.rpc_receive([6, [[kept, b"k", Record(7).to_wire()]]], "n3"))
    assert e.value.code == NOT_CAUGHT_UP and stored == []


def test_a_holder_refused_with_stale_epoch_learns_the_newer_epoch_and_keeps_its_hints():
    holder, _ = hint_target(state_at(2, OLD))
    token = next(t for t in range(0, 2**32, 2**20) if "n2" in OLD.preference_list_for_token(t, 3))
    holder.store = types.SimpleNamespace(
        hints=lambda target, limit, after=None: [(b"h1", token, b"k", Record(7))])
    holder.detector.is_up = lambda m: True
    holder.stopping = False
    deleted = []

    async def delete_hints(keys):
        deleted.extend(keys)

    async def call_peer(member, method, payload, timeout_s=None):
        raise RemoteError(STALE_EPOCH, "9")

    holder.committer.delete_hints = delete_hints
    holder.call_peer = call_peer
    asyncio.run(holder.hints._deliver("n2"))
    assert deleted == []                              # kept for the retry (re-homed then)
    assert holder.catchup.target_epoch() == 9 and not holder.catchup.caught_up


def test_a_replica_behind_the_coordinators_epoch_refuses_a_get_and_waits_on_a_put():
    node, _ = hint_target(state_at(4, NEW))
    token = token_where(NEW, "n1", True)
    node.store = types.SimpleNamespace(get=lambda token, key: Record(3))
    assert node.replica.rpc_get([4, token, b"k"], "n2") == Record(3).to_wire()
    with pytest.raises(RemoteError) as e:
        node.replica.rpc_get([5, token, b"k"], "n2")   # planned at epoch 5: n1 is behind
    assert e.value.code == NOT_CAUGHT_UP

    def write_into(token, key, record, sink):   # the group committer: synced at once
        sink.set_result([True])
        return sink

    node.committer.write_into = write_into
    with pytest.raises(RemoteError) as e:             # still behind after the wait
        asyncio.run(_rpc_put(node, [5, token, b"k", Record(8).to_wire(), None], "n2"))
    assert e.value.code == NOT_CAUGHT_UP

    async def catch_up_meanwhile(s):
        node.state = state_at(5, NEW)                 # the log arrives during the wait

    node.clock.sleep = catch_up_meanwhile
    assert asyncio.run(_rpc_put(
        node, [5, token, b"k", Record(8).to_wire(), None], "n2")) == 8


async def _rpc_put(node, payload, peer_id):
    """A peer's ``put`` as the peer server runs it (a future, or a coroutine to await)."""
    return await node.replica.rpc_put_nowait(payload, peer_id)


def test_a_malformed_or_non_member_epoch_claim_is_not_heard():
    """Found by the peer-port fuzz test: an authenticated connection whose client id is no
    member sent a ``get`` naming epoch 207; the node took it as its peers' epoch and stayed
    unready for good (and a string epoch raised TypeError)."""
    node = stand_in(state_at(2, OLD))
    c = node.catchup
    for m in ("n2", "n3", "n4", "n5"):
        assert c.note(2, m)
    assert c.caught_up
    assert not c.note(207, "fuzz")            # not a member of this node's state
    assert not c.note("207", "n2") and not c.note(True, "n2") and not c.note(-1, "n2")
    assert not c.note(3.0, "n2")
    assert c.caught_up and c.peer_epoch == 2
