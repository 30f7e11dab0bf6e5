"""The per-target delivery cursor of ``node/hints.py`` never passes a hint still stored.

Adversarial interleavings with a real Store and GroupCommitter: hints stored while a batch is
read on the reader thread, deliveries and re-homes that fail half-way, batches truncated by
bytes, expired hints mixed in, and delivery, hand-off (``_pass_on``) and new hints all running
at once for the same targets. After every step, no stored hint of a target may sit at or
before its cursor (it would never be read again while the process lives); at the end every
hint added was delivered, re-homed, passed on or dropped as expired."""

import asyncio
import random
import time

import pytest

import dynamopy.node.hints as hints_mod
from dynamopy.core.records import Record
from dynamopy.core.versions import compose
from dynamopy.peer import PeerUnavailable

from tests.unit.test_hint_delivery import WALL0, _run
from tests.unit.test_hints_membership import JOINING

TARGETS = ("n1", "n2", "n3", "n4")  # n9 holds the hints; JOINING moves ranges to n5


class FlakyPeers:
    """``call_peer`` that fails at random (``p_fail``) and remembers every key it took."""

    def __init__(self, rng):
        self.rng, self.p_fail, self.calls, self.took = rng, 0.3, [], set()

    async def __call__(self, member, method, payload, timeout_s=None):
        self.calls.append((member, method))
        await asyncio.sleep(0)
        if self.rng.random() < self.p_fail:
            raise PeerUnavailable(f"{member} flaked")
        if method == "hints":
            self.took.update(key for _t, key, _w in payload[1])
            return len(payload[1])
        self.took.add(payload[2])                     # put: re-homed or passed on
        return payload[3][0]


def _stored_at_or_before_cursor(hm, store):
    bad = []
    for target in TARGETS:
        cursor = hm._after.get(target)
        if cursor is None:
            continue
        for hk, _tok, key, _rec in store.hints(target, 10**6):
            if hk <= cursor:
                bad.append((target, key))
    return bad


@pytest.mark.parametrize("seed", range(2))
def test_no_hint_is_left_behind_the_cursor_whatever_interleaves(tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    monkeypatch.setattr(hints_mod, "DELIVERY_BATCH", 7)
    monkeypatch.setattr(hints_mod, "DELIVERY_BYTES", 900)     # truncates most batches
    peers = FlakyPeers(rng)
    tokens = [m.start for m in JOINING.transfers()] + [rng.randrange(2**32) for _ in range(20)]

    async def body(hm, store, _peers, clock):
        hm.tombstone_grace_s = lambda: 10.0                    # hints live 8.5 s
        added, expired, bad = {}, set(), []
        reads = store.hints

        def slow_read(target, limit, after=None):              # the reader thread lingers
            out = reads(target, limit, after=after)            # with its snapshot while
            time.sleep(rng.random() * 0.002)                   # the loop stores more
            return out
        store.hints = slow_read

        async def adder():
            for i in range(100):
                target, key = rng.choice(TARGETS), b"k%04d" % i
                old = rng.random() < 0.15
                ms = WALL0 - 20_000 if old else WALL0
                rec = Record(compose(ms, i, 1), value=b"v" * rng.randrange(1, 300))
                await hm.committer.add_hint(target, rng.choice(tokens), key, rec)
                added[key] = target
                if old:
                    expired.add(key)
                await asyncio.sleep(0)

        async def worker(pass_on):
            for _ in range(70):
                target = rng.choice(TARGETS)
                hm._retry_at.pop(target, None)
                try:
                    await (hm._pass_on(target) if pass_on else hm._deliver(target))
                except PeerUnavailable:
                    pass
                bad.extend(_stored_at_or_before_cursor(hm, store))
                await asyncio.sleep(0)

        await asyncio.gather(adder(), worker(False), worker(False), worker(True))
        peers.p_fail = 0.0
        for target in TARGETS:                                 # drain what is left
            hm._retry_at.pop(target, None)
            await hm._deliver(target)
        bad.extend(_stored_at_or_before_cursor(hm, store))
        left = {t: [k for _hk, _t, k, _r in store.hints(t, 10**6)] for t in TARGETS}
        return added, expired, bad, left

    (added, expired, bad, left), _, local = _run(tmp_path, JOINING, body, me="n9",
                                                 peers=peers)
    assert bad == []
    assert left == {t: [] for t in TARGETS}
    handled = peers.took | {key for _tok, key, _rec in local} | expired
    assert set(added) <= handled



def test_a_failure_after_the_write_does_not_hand_out_a_hint_key_again(tmp_path):
    """Regression: ``Store.apply`` advanced its hint sequence only after everything that
    follows the batch's write. Anything raising there (the record table update here) left a
    hint on disk whose seq the next hint got again: it overwrote that key, and once the first
    one had been delivered (the cursor at its key) the acknowledged second one sat at the
    cursor and was never delivered. The hint counts missed the first one too, so the target
    could drop out of ``pending_by_target`` (which delivery visits) with the second one
    stored. Now the seqs are handed out before the write and the counters follow it at once."""

    async def body(hm, store, peers, clock):
        changed, fail = store._records_changed, [True]

        def failing_once(written=(), removed=(), clear=False):
            if written and fail:
                fail.clear()
                raise MemoryError("after the write")
            return changed(written, removed, clear)
        store._records_changed = failing_once
        with pytest.raises(MemoryError):     # on disk, though its caller saw an error
            store.apply(writes=[(7, b"data", Record(1))],
                        hints_add=[("n2", 7, b"first", Record(2))])
        assert store.hint_stats()["n2"][0] == 1   # counted: delivery visits n2
        await hm._deliver("n2")
        await hm.committer.add_hint("n2", 7, b"second", Record(3))   # acknowledged
        assert hm.pending_by_target() == {"n2": 1}
        await hm._deliver("n2")
        return [key for _hk, _tok, key, _rec in store.hints("n2", 10)]

    left, peers, _ = _run(tmp_path, JOINING, body, me="n9")
    sent = [key for m, method, p in peers.calls if method == "hints" for _t, key, _w in p[1]]
    assert sent == [b"first", b"second"]
    assert left == []


def test_a_hint_no_member_took_during_a_hand_off_is_passed_on_by_the_next_try(tmp_path):
    """The cursor stays put when only part of a batch was passed on: the hint every live
    member refused (between two that were taken and deleted) goes on the next try."""

    class RefuseOne:
        def __init__(self):
            self.refuse, self.took = True, []

        async def __call__(self, member, method, payload, timeout_s=None):
            if self.refuse and payload[2] == b"k1":
                raise PeerUnavailable(f"{member} refused")
            self.took.append((member, payload[2], payload[4]))
            return payload[3][0]

    peers = RefuseOne()

    async def body(hm, store, _peers, clock):
        for i in range(3):
            await hm.committer.add_hint("n2", 7, b"k%d" % i, Record(i + 1))
        with pytest.raises(PeerUnavailable):
            await hm._pass_on("n2")
        assert [k for _hk, _t, k, _r in store.hints("n2", 10)] == [b"k1"]
        peers.refuse = False
        await hm._pass_on("n2")
        return store.hint_stats()

    stats, _, _ = _run(tmp_path, JOINING, body, me="n9", peers=peers, down=("n2",))
    assert [key for _m, key, _for in peers.took] == [b"k0", b"k2", b"k1"]
    assert {hint_for for _m, _k, hint_for in peers.took} == {"n2"} and stats == {}
