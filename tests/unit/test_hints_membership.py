"""Hints across ring changes (issue 20, checked): a re-homed hint reaches the members gaining
its key, and a leaving member hands off its hints before it finishes leaving. One module
(node/hints.py, node/transfer.py) with stand-ins for its collaborators; a real Store."""

import asyncio
import types

import pytest

from dynamopy.node.clock import SystemClock
from dynamopy.core.membership import ClusterState, Settings, bootstrap_entry
from dynamopy.core.records import Record
from dynamopy.core.versions import compose
from dynamopy.node import transfer
from dynamopy.node.hints import HintManager
from dynamopy.peer import PeerUnavailable
from dynamopy.storage import GroupCommitter, Store

from tests.unit.transfer_parts import transfer_manager


SEEDS = [{"id": f"n{i}", "url": f"u{i}", "peer": f"p{i}"} for i in (1, 2, 3)]
BASE = ClusterState().apply(bootstrap_entry(SEEDS, Settings())).apply(
    {"op": "join", "id": "n4", "url": "u4", "peer": "p4"}).apply(
    {"op": "finish_join", "id": "n4", "change_epoch": 2})
JOINING = BASE.apply({"op": "join", "id": "n5", "url": "u5", "peer": "p5"})
LEAVING = BASE.apply({"op": "leave", "id": "n4"})  # epoch 4


def moving_token(state):
    """A token n5 gains in the join in progress, and the member that loses it."""
    for move in state.transfers():
        if move.gained == ("n5",) and move.lost:
            return move.start, move.lost[0]
    raise AssertionError("no range moves to n5")


def fake_node(state, me="n1", fail=()):
    calls = []

    async def call_peer(member, method, payload, timeout_s=None):
        calls.append((member, method, payload))
        if member in fail:
            raise PeerUnavailable(f"{member} down")
        return payload[3][0] if method == "put" else None

    async def local_put(token, key, record, hint_for=None):
        calls.append((me, "put", [state.epoch, token, key, None, hint_for]))
        return record.version

    node = types.SimpleNamespace(id=me, state=state, call_peer=call_peer,
                                 replica=types.SimpleNamespace(put=local_put))
    return node, calls


def hint_manager(node, store=None, committer=None, detector=None) -> HintManager:
    """A HintManager built from the stand-ins of ``node`` (its narrow collaborators)."""
    from dynamopy.node.metrics import Metrics
    return HintManager(me=node.id, state=lambda: node.state, store=store, committer=committer,
                       clock=SystemClock(), metrics=Metrics(), detector=detector,
                       call_peer=node.call_peer, note_epoch=lambda epoch, peer: None,
                       stopping=lambda: False, observe_version=lambda v: None,
                       tombstone_grace_s=lambda: 864000.0, replica=node.replica)


def test_a_rehomed_hint_also_goes_to_the_member_gaining_its_key():
    token, loser = moving_token(JOINING)
    node, calls = fake_node(JOINING)
    hm = hint_manager(node)
    # the loser keeps the key only until the switch: its hints are re-homed, not delivered
    assert not hm._keeps(loser, token) and hm._keeps("n5", token)
    asyncio.run(hm._rehome(token, b"k", Record(7)))
    current = set(JOINING.ring.preference_list_for_token(token, 3))
    pending = set(JOINING.pending_ring.preference_list_for_token(token, 3))
    assert {m for m, method, _ in calls if method == "put"} == current | pending
    assert "n5" in {m for m, _, _ in calls}


def test_a_rehomed_hint_is_kept_until_a_member_on_each_side_of_the_change_acked():
    token, loser = moving_token(JOINING)
    pending = set(JOINING.pending_ring.preference_list_for_token(token, 3))
    # only the losing owner acks: it drops the key at the switch, so the hint stays
    node, calls = fake_node(JOINING, me="n9", fail=pending)
    hm = hint_manager(node)
    with pytest.raises(PeerUnavailable):
        asyncio.run(hm._rehome(token, b"k", Record(7)))
    assert loser in {m for m, _, _ in calls}
    node, _ = fake_node(JOINING, me="n9", fail=pending - {"n5"})
    hm = hint_manager(node)
    asyncio.run(hm._rehome(token, b"k", Record(7)))  # the gainer acked: done


def test_a_leaving_member_passes_the_hints_of_a_down_target_to_a_live_member(tmp_path):
    leaving = LEAVING
    assert leaving.change == ("leave", "n4")

    async def run():
        with Store(str(tmp_path / "db")) as store:
            committer = GroupCommitter(store)
            await committer.start()
            node, calls = fake_node(leaving, me="n4")
            now_ms = SystemClock().wall_ms()
            for i in range(5):
                await committer.add_hint("n2", 100 + i, b"k%d" % i,
                                         Record(compose(now_ms, i, 1)))
            hm = hint_manager(node, store, committer,
                              detector=types.SimpleNamespace(is_up=lambda m: m != "n2"))
            done = await hm.hand_off()
            left = store.hint_stats().get("n2", (0, 0))[0]
            await committer.stop()
            return done, left, calls

    done, left, calls = asyncio.run(run())
    assert done and left == 0
    passed = [(m, p[4]) for m, method, p in calls if method == "put"]
    assert len(passed) == 5 and all(m in ("n1", "n3") and t == "n2" for m, t in passed)


def test_a_hint_older_than_the_tombstone_grace_is_dropped_not_handed_on(tmp_path):
    """A purged delete may shadow it: passing it on could bring the deleted value back. The
    young hint is passed on; the old one is deleted and counted."""
    async def run():
        with Store(str(tmp_path / "db")) as store:
            committer = GroupCommitter(store)
            await committer.start()
            node, calls = fake_node(LEAVING, me="n4")
            now_ms = SystemClock().wall_ms()
            await committer.add_hint("n2", 100, b"old", Record(compose(now_ms - 100_000, 0, 1)))
            await committer.add_hint("n2", 101, b"young", Record(compose(now_ms - 10_000, 0, 1)))
            hm = hint_manager(node, store, committer,
                              detector=types.SimpleNamespace(is_up=lambda m: m != "n2"))
            hm.tombstone_grace_s = lambda: 60.0
            done = await hm.hand_off()
            left = store.hint_stats().get("n2", (0, 0))[0]
            dropped = hm.metrics.hints_dropped.labels("n2", "expired")._value.get()
            await committer.stop()
            return done, left, calls, dropped

    done, left, calls, dropped = asyncio.run(run())
    assert done and left == 0 and dropped == 1
    assert [p[2] for _m, method, p in calls if method == "put"] == [b"young"]


def test_a_leaver_proposes_finish_leave_only_once_its_hints_are_handed_off(monkeypatch):
    leaving = LEAVING
    monkeypatch.setattr(transfer, "RETRY_S", 0.01)
    handed = iter([False, False, True])  # hints are left twice, then none
    proposed, events = [], []

    async def run():
        node, _ = fake_node(leaving, me="n4")
        node.stopping = False

        async def hand_off():
            events.append("hand_off")
            return next(handed)

        async def propose(entry):
            events.append("propose")
            proposed.append(entry)
            node.stopping = True
            return 9

        async def call_peer(member, method, payload, timeout_s=None):
            return True  # every gainer reports done

        node.hints = types.SimpleNamespace(hand_off=hand_off)
        node.propose, node.call_peer = propose, call_peer
        node.clock = SystemClock()
        tm = transfer_manager(node)
        await asyncio.wait_for(tm._drive(leaving.change_epoch), 10)

    asyncio.run(run())
    assert events == ["hand_off", "hand_off", "hand_off", "propose"]
    assert proposed == [{"op": "finish_leave", "id": "n4", "change_epoch": 4}]


def test_a_leaving_member_keeps_no_new_hints_and_counts_the_one_it_refuses(tmp_path):
    """A fallback's hint sent to a leaving member (Replica.put with hint_for) is refused, and
    counted as dropped, reason "leaving". Noticed in session 6: the replica refused it itself
    before the hint store's own refusal, so the count never saw it."""
    from dynamopy.node.hints import HintRefused
    from dynamopy.node.replica import Replica

    async def run():
        with Store(str(tmp_path / "db")) as store:
            committer = GroupCommitter(store)
            await committer.start()
            outcome = {}
            for state in (BASE, LEAVING):
                node, _ = fake_node(state, me="n4")
                hm = hint_manager(node, store, committer,
                                  detector=types.SimpleNamespace(down_for=lambda m: 0.0))
                replica = Replica(
                    me="n4", state=lambda state=state: state, clock=SystemClock(), metrics=None,
                    store=store, committer=committer, catchup=None, poke_metalog=None,
                    note_epoch=None, observe_version=lambda v: None, hints=hm)
                record = Record(compose(SystemClock().wall_ms(), 0, 4))
                try:
                    await replica.put(5, b"k%d" % state.epoch, record, hint_for="n2")
                    refused = False
                except HintRefused:
                    refused = True
                dropped = hm.metrics.hints_dropped.labels("n2", "leaving")._value.get()
                outcome[state.epoch] = (refused, dropped)
            held = store.hint_stats().get("n2", (0, 0))[0]
            await committer.stop()
            return outcome, held

    outcome, held = asyncio.run(run())
    assert outcome == {BASE.epoch: (False, 0), LEAVING.epoch: (True, 1)}
    assert held == 1  # only the hint taken before the leave


def test_a_driver_does_not_finish_while_a_gainer_cannot_be_asked(monkeypatch):
    """A gainer that does not answer xfer_status is not done: the leaver keeps asking and
    proposes nothing (finishing would switch reads to a member that may lack the data)."""
    monkeypatch.setattr(transfer, "RETRY_S", 0.01)
    proposed, asked = [], []

    async def run():
        node, _ = fake_node(LEAVING, me="n4")
        node.stopping = False

        async def hand_off():
            return True

        async def propose(entry):
            proposed.append(entry)
            return 9

        async def call_peer(member, method, payload, timeout_s=None):
            asked.append(member)
            if len(asked) >= 20:
                node.stopping = True
            raise PeerUnavailable(f"{member} down")

        node.hints = types.SimpleNamespace(hand_off=hand_off)
        node.propose, node.call_peer = propose, call_peer
        node.clock = SystemClock()
        tm = transfer_manager(node)
        await asyncio.wait_for(tm._drive(LEAVING.change_epoch), 10)

    asyncio.run(run())
    assert len(asked) >= 20 and proposed == []


def test_a_leaving_coordinator_keeps_no_hint_of_its_own(tmp_path):
    """The coordinator keeps a (never counted) hint for a home replica that missed a write;
    on a leaving member it went into the hint store after the hand-off and left with the
    node. Now the store refuses it (counted), as a fallback's hint is refused."""
    from dynamopy.node.hints import HintRefused

    async def run():
        with Store(str(tmp_path / "db")) as store:
            committer = GroupCommitter(store)
            await committer.start()
            kept = {}
            for state in (BASE, LEAVING):
                node, _ = fake_node(state, me="n4")
                hm = hint_manager(node, store, committer,
                                  detector=types.SimpleNamespace(down_for=lambda m: 0.0))
                try:
                    await hm.store("n2", 5, b"k%d" % state.epoch,
                                   Record(compose(SystemClock().wall_ms(), 0, 4)))
                    kept[state.epoch] = True
                except HintRefused:
                    kept[state.epoch] = False
                    dropped = hm.metrics.hints_dropped.labels("n2", "leaving")._value.get()
            held = store.hint_stats().get("n2", (0, 0))[0]
            await committer.stop()
            return kept, held, dropped

    kept, held, dropped = asyncio.run(run())
    assert kept == {BASE.epoch: True, LEAVING.epoch: False}
    assert held == 1 and dropped == 1
