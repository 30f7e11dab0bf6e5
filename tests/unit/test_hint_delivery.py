"""Hint delivery (dynamopy/node/hints.py) with a real Store and GroupCommitter and stand-ins
for the node around them: batching by bytes, what is delivered and what is re-homed, back-off
after a failed delivery, the metrics an operator watches, and a leaver's hand-off."""

import asyncio
import types

import pytest

from dynamopy.core.records import Record, record_wire_bytes
from dynamopy.core.versions import compose
from dynamopy.node.hints import HintManager, _within_bytes
from dynamopy.node.metrics import Metrics
from dynamopy.peer import PeerUnavailable
from dynamopy.storage import GroupCommitter, Store

from tests.unit.test_hints_membership import BASE, JOINING, LEAVING

WALL0 = 1_800_000_000_000


class FakeClock:
    """Time the test sets: ``monotonic`` in seconds, wall ms from ``WALL0``."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall_ms(self) -> int:
        return WALL0 + int(self.now * 1000)


class Peers:
    """``call_peer``: records every call; members in ``fail`` (or the next ``failures``
    calls) raise ``PeerUnavailable``."""

    def __init__(self, fail=(), failures=0):
        self.calls, self.fail, self.failures = [], set(fail), failures

    async def __call__(self, member, method, payload, timeout_s=None):
        self.calls.append((member, method, payload))
        if member in self.fail or self.failures > 0:
            self.failures -= 1
            raise PeerUnavailable(f"{member} down")
        return payload[3][0] if method == "put" else len(payload[1])


def _run(tmp_path, state, body, *, me="n1", peers=None, down=(), clock=None):
    """Run ``body(hm, store, peers, clock)`` against a HintManager on a fresh real store."""
    peers = peers or Peers()
    clock = clock or FakeClock()
    local = []

    async def local_put(token, key, record, hint_for=None):
        local.append((token, key, record))
        return record.version

    async def main():
        with Store(str(tmp_path / "db")) as store:
            committer = GroupCommitter(store)
            await committer.start()
            try:
                hm = HintManager(
                    me=me, state=lambda: state, store=store, committer=committer, clock=clock,
                    metrics=Metrics(), call_peer=peers, note_epoch=lambda e, p: None,
                    detector=types.SimpleNamespace(is_up=lambda m: m not in down,
                                                   down_for=lambda m: 0.0),
                    stopping=lambda: False, observe_version=lambda v: None,
                    tombstone_grace_s=lambda: 1e12,   # no hint here is old enough to expire
                    replica=types.SimpleNamespace(put=local_put))
                return await body(hm, store, peers, clock)
            finally:
                await committer.stop()

    return asyncio.run(main()), peers, local


def _hint(key: bytes, size: int):
    return (b"hk-" + key, 1, key, Record(1, value=b"x" * size))


def test_a_batch_stops_before_the_budget_and_one_hint_alone_always_goes():
    a, b, c = _hint(b"a", 100), _hint(b"b", 100), _hint(b"c", 100)
    two = record_wire_bytes(b"a", a[3]) + record_wire_bytes(b"b", b[3])
    assert _within_bytes([a, b, c], two) == [a, b]            # exactly at the budget: kept
    assert _within_bytes([a, b, c], two - 1) == [a]
    huge = _hint(b"h", 10_000)
    assert _within_bytes([huge, a], 500) == [huge]            # over budget alone: still sent
    assert _within_bytes([a, huge, b], 500) == [a]            # never crosses the budget
    assert _within_bytes([], 500) == []


def test_delivery_sends_kept_keys_to_the_target_and_rehomes_keys_it_is_losing(tmp_path):
    """During a join, a hint for the member losing its key goes to the key's current and
    pending replicas (not to the target); a hint for a key it keeps goes to the target."""
    moved_token = next(m.start for m in JOINING.transfers()
                       if m.gained == ("n5",) and m.lost)
    loser = next(m.lost[0] for m in JOINING.transfers() if m.start == moved_token)
    kept_token = next(m.start for m in JOINING.transfers()
                      if loser in m.old and loser not in m.lost)
    moved, kept = Record(11, value=b"moved"), Record(12, value=b"kept")

    async def body(hm, store, peers, clock):
        await hm.committer.add_hint(loser, moved_token, b"km", moved)
        await hm.committer.add_hint(loser, kept_token, b"kk", kept)
        await hm._deliver(loser)
        return store.hint_stats().get(loser, (0, 0))[0]

    left, peers, local = _run(tmp_path, JOINING, body, me="n9")
    sent = [p for m, method, p in peers.calls if method == "hints"]
    assert [m for m, method, _ in peers.calls if method == "hints"] == [loser]
    assert [(tok, key) for tok, key, _w in sent[0][1]] == [(kept_token, b"kk")]
    puts = {m: (p[1], p[2], Record.from_wire(p[3])) for m, method, p in peers.calls
            if method == "put"}
    current = set(JOINING.ring.preference_list_for_token(moved_token, 3))
    pending = set(JOINING.pending_ring.preference_list_for_token(moved_token, 3))
    assert set(puts) == current | pending
    assert all(v == (moved_token, b"km", moved) for v in puts.values())
    assert left == 0


def test_each_batch_is_read_off_the_event_loop_past_the_hints_already_delivered(tmp_path):
    """Regression: every delivery batch was read on the event loop from the first hint of
    the target, and LevelDB walks over the tombstone of every hint deleted since its last
    compaction: 60-660 ms per batch of 256, on the loop, while 200,000 delivered hints
    awaited compaction. Now each read runs in an executor thread and starts past the last
    hint deleted, across runs of the delivery too; every hint is still delivered once."""
    import threading

    from dynamopy.node.hints import DELIVERY_BATCH

    async def body(hm, store, peers, clock):
        reads = []   # (thread, cursor, hint keys deleted before the read)
        deleted: list = []
        hints, apply = store.hints, store.apply

        def reading(target, limit, after=None):
            reads.append((threading.get_ident(), after, list(deleted)))
            return hints(target, limit, after=after)

        def applying(*a, hints_delete=(), **kw):
            deleted.extend(bytes(k) for k in hints_delete)
            return apply(*a, hints_delete=hints_delete, **kw)
        store.hints, store.apply = reading, applying
        count = 2 * DELIVERY_BATCH + 10
        for i in range(count):
            await hm.committer.add_hint("n2", 7, b"k%04d" % i, Record(i + 1))
        await hm._deliver("n2")
        await hm.committer.add_hint("n2", 7, b"late", Record(10_000))
        await hm._deliver("n2")                   # a later run goes on from the cursor
        return reads, deleted, threading.get_ident(), count

    (reads, deleted, loop_thread, count), peers, _ = _run(tmp_path, BASE, body)
    sent = [key for m, method, p in peers.calls if method == "hints" for _t, key, _w in p[1]]
    assert sent == [b"k%04d" % i for i in range(count)] + [b"late"]
    assert len(deleted) == count + 1 and len(reads) == 4 + 2  # + an empty read a run
    for thread, after, gone in reads:
        assert thread != loop_thread
        assert (after or b"") >= max(gone, default=b"")   # starts past every deleted hint


def test_a_hint_for_a_member_that_left_goes_to_the_keys_replicas_when_no_change_runs(tmp_path):
    token = 12345
    rec = Record(5, value=b"v")

    async def body(hm, store, peers, clock):
        await hm.committer.add_hint("gone", token, b"k", rec)
        await hm._deliver("gone")
        return store.hint_stats().get("gone", (0, 0))[0]

    left, peers, local = _run(tmp_path, BASE, body, me="n1")
    replicas = set(BASE.ring.preference_list_for_token(token, 3))
    remote = {m for m, method, _ in peers.calls if method == "put"}
    assert remote | ({"n1"} if local else set()) == replicas
    assert all(t == (token, b"k", rec) for t in local)
    assert left == 0


def test_a_failed_delivery_backs_off_doubling_then_delivers_and_updates_the_metrics(tmp_path):
    version = compose(WALL0 - 3_000, 0, 1)   # written 3 s before the clock's start
    rec = Record(version, value=b"v")

    async def body(hm, store, peers, clock):
        await hm.store("n2", 7, b"k", rec)
        asked = []
        for t in (0.0, 0.45, 0.55, 1.5, 1.6):      # fails at 0 and 0.55: retry after 0.5, 1.0
            clock.now = t
            before = len(peers.calls)
            await hm._deliver("n2")
            asked.append(len(peers.calls) > before)
        sample = hm.metrics.registry.get_sample_value
        return asked, store.hint_stats().get("n2", (0, 0))[0], {
            "pending": sample("dynamopy_hints_pending", {"target": "n2"}),
            "delivered": sample("dynamopy_hints_delivered_total", {"target": "n2"}),
            "lag_count": sample("dynamopy_hint_delivery_lag_seconds_count", {}),
            "lag_sum": sample("dynamopy_hint_delivery_lag_seconds_sum", {})}

    (asked, left, metrics), peers, _ = _run(tmp_path, BASE, body, peers=Peers(failures=2))
    assert asked == [True, False, True, False, True]
    assert left == 0
    assert metrics == {"pending": 0.0, "delivered": 1.0, "lag_count": 1.0, "lag_sum": 4.6}


def test_a_leaver_delivers_to_a_live_target_even_during_its_back_off(tmp_path):
    async def body(hm, store, peers, clock):
        await hm.committer.add_hint("n2", 7, b"k", Record(3))
        hm._retry_at["n2"] = 1e9          # an earlier failure's back-off
        return await hm.hand_off()

    done, peers, _ = _run(tmp_path, LEAVING, body, me="n4")
    assert done and [(m, method) for m, method, _ in peers.calls] == [("n2", "hints")]


def test_a_leaver_passes_hints_on_past_a_member_that_refuses_and_in_batches(tmp_path):
    """n2 (the target) is down; n1 refuses: all 300 hints go to n3, in one hand-off."""
    async def body(hm, store, peers, clock):
        for i in range(300):
            await hm.committer.add_hint("n2", 100 + i, b"k%d" % i, Record(10 + i))
        done = await hm.hand_off()
        return done, store.hint_stats().get("n2", (0, 0))[0]

    (done, left), peers, _ = _run(tmp_path, LEAVING, body, me="n4", down={"n2"},
                                  peers=Peers(fail={"n1"}))
    assert done and left == 0
    took = [(m, p[4]) for m, method, p in peers.calls if method == "put" and m != "n1"]
    assert len(took) == 300 and set(took) == {("n3", "n2")}


def test_a_hint_is_refused_past_the_window_or_the_cap_and_the_drop_is_counted(tmp_path):
    """The hint window and the per-target byte cap (each bound itself is allowed); a refused
    hint is an error with code ``hint_refused`` (so it never counts toward W), nothing is
    stored, and /metrics counts the drop by reason."""
    from types import SimpleNamespace

    from dynamopy.core.membership import Settings
    from dynamopy.node.hints import HintRefused

    cap = 100
    state = SimpleNamespace(settings=Settings(hint_window_s=60.0, hint_max_bytes=cap),
                            member=lambda _id: None)
    down = {"n2": 60.0, "n3": 60.5}

    async def body(hm, store, peers, clock):
        hm.detector.down_for = lambda m: down.get(m, 0.0)
        await hm.store("n2", 1, b"k", Record(1, value=b"x" * (cap - 1)))   # exactly the cap
        pending = hm.metrics.registry.get_sample_value("dynamopy_hints_pending",
                                                       {"target": "n2"})
        await hm.store("n4", 2, b"k", Record(1, value=b"x" * 90))        # another target's
        refused = {}
        for target, value in (("n3", b"v"), ("n2", b"v")):
            with pytest.raises(HintRefused) as e:
                await hm.store(target, 3, b"k", Record(1, value=value))
            refused[target] = (e.value.code, e.value.detail)
        dropped = {(t, r): hm.metrics.registry.get_sample_value(
            "dynamopy_hints_dropped_total", {"target": t, "reason": r})
            for t, r in (("n3", "window"), ("n2", "cap"))}
        stats = store.hint_stats()
        # The cap counts the new hint's key and value on top of what is held: a long key
        # with no value, or a long value with a one-byte key, is refused as well.
        state.settings = Settings(hint_window_s=60.0, hint_max_bytes=stats["n2"][1] + 10)
        for key, value in ((b"k" * 20, b""), (b"k", b"x" * 20)):
            with pytest.raises(HintRefused):
                await hm.store("n2", 4, key, Record(1, value=value))
        return pending, refused, dropped, stats

    (pending, refused, dropped, stats), _peers, _ = _run(tmp_path, state, body)
    assert pending == 1.0
    assert refused == {
        "n3": ("hint_refused", "n3 has been down longer than the hint window (60s)"),
        "n2": ("hint_refused", "hint storage for n2 is at its cap (100 bytes)")}
    assert dropped == {("n3", "window"): 1.0, ("n2", "cap"): 1.0}
    assert {t: c for t, (c, _b) in stats.items() if c} == {"n2": 1, "n4": 1}


def test_the_delivery_lag_is_measured_from_the_version_s_time(tmp_path):
    async def body(hm, store, peers, clock):
        await hm.committer.add_hint("n2", 7, b"k", Record(compose(WALL0 - 200, 0, 1)))
        await hm._deliver("n2")
        return hm.metrics.registry.get_sample_value("dynamopy_hint_delivery_lag_seconds_sum",
                                                    {})

    lag, _peers, _ = _run(tmp_path, BASE, body)
    assert lag == pytest.approx(0.2)
