"""Hints and the tombstone grace at their edges (dynamopy/node/hints.py): a fallback refuses a
hint that is, or would at once be, too old to deliver (and stores one exactly at the limit);
hints that aged in storage are dropped at delivery with the pending gauge brought to zero; a
handed-off batch skips only its expired records; the back-off starts over after a delivery.
Real Store and GroupCommitter; the node around them is a stand-in (test_hint_delivery)."""

import asyncio

import pytest

from dynamopy.core.records import Record
from dynamopy.core.versions import compose
from dynamopy.node.hints import HintRefused

from tests.unit.test_catchup import NEW, hint_target, state_at, token_where
from tests.unit.test_hint_delivery import WALL0, Peers, _run
from tests.unit.test_hints_membership import BASE


def _sample(hm, name, **labels):
    return hm.metrics.registry.get_sample_value(name, labels)


def test_a_fallback_refuses_a_record_too_old_to_deliver_and_stores_one_at_the_limit(tmp_path):
    """grace 10 s, clock bound 500 ms: a hint may be 8.5 s old. Older: refused (an error, so
    it never counts toward W), nothing stored, counted as dropped for its target."""
    async def body(hm, store, peers, clock):
        hm.tombstone_grace_s = lambda: 10.0
        now = clock.wall_ms()
        with pytest.raises(HintRefused, match="would never be delivered"):
            await hm.store("n2", 1, b"old", Record(compose(now - 8_501, 0, 1), value=b"v"))
        refused = (store.hint_stats().get("n2", (0, 0))[0],
                   _sample(hm, "dynamopy_hints_dropped_total", target="n2", reason="expired"),
                   _sample(hm, "dynamopy_hints_stored_total", target="n2"))
        await hm.store("n2", 2, b"edge", Record(compose(now - 8_500, 0, 1), value=b"v"))
        stored = (store.hint_stats()["n2"][0],
                  _sample(hm, "dynamopy_hints_stored_total", target="n2"))
        return refused, stored

    (refused, stored), _peers, _ = _run(tmp_path, BASE, body)
    assert refused == (0, 1.0, None)
    assert stored == (1, 1.0)


def test_a_fallback_whose_clock_is_not_vouched_for_stores_no_hint_and_counts_why(tmp_path):
    """Whether a hint would expire before delivery is judged on this node's clock; on one
    the clock fence does not vouch for it is not judged: the hint is refused (an error, so
    it never counts toward W), counted as ``clock``, not as ``expired`` (R2, session 15: a
    clock stepped ahead refused it as "expired"), and taken again once the clock is back."""
    async def body(hm, store, peers, clock):
        vouched = [False]
        hm.clock_ok = lambda: vouched[0]
        record = Record(compose(clock.wall_ms(), 0, 1), value=b"v")
        with pytest.raises(HintRefused, match="not vouched for"):
            await hm.store("n2", 1, b"k", record)
        refused = (store.hint_stats().get("n2", (0, 0))[0],
                   _sample(hm, "dynamopy_hints_dropped_total", target="n2", reason="clock"),
                   _sample(hm, "dynamopy_hints_dropped_total", target="n2", reason="expired"))
        vouched[0] = True
        await hm.store("n2", 1, b"k", record)
        return refused, store.hint_stats()["n2"][0]

    (refused, stored), _peers, _ = _run(tmp_path, BASE, body)
    assert refused == (0, 1.0, None)
    assert stored == 1


@pytest.mark.parametrize("bound_ms, kept", [(9_000, False), (8_999, True)])
def test_a_hint_that_could_live_no_millisecond_is_refused_one_that_could_is_kept(
        tmp_path, bound_ms, kept):
    """90% of a 10 s grace is 9 s: with a clock bound of 9 s a hint's lifetime is zero and
    even a record of this very millisecond is refused; with 8.999 s it lives 1 ms."""
    async def body(hm, store, peers, clock):
        hm.tombstone_grace_s, hm.max_clock_offset_ms = (lambda: 10.0), bound_ms
        record = Record(compose(clock.wall_ms(), 0, 1), value=b"v")
        try:
            await hm.store("n2", 1, b"k", record)
        except HintRefused:
            return False
        return store.hint_stats()["n2"][0] == 1

    assert _run(tmp_path, BASE, body)[0] is kept


def test_hints_that_expired_in_storage_are_dropped_and_the_pending_gauge_goes_to_zero(tmp_path):
    async def body(hm, store, peers, clock):
        hm.tombstone_grace_s = lambda: 10.0
        await hm.store("n2", 7, b"k", Record(compose(clock.wall_ms(), 0, 1), value=b"v"))
        before = _sample(hm, "dynamopy_hints_pending", target="n2")
        clock.now += 8.6                     # older than 90% of the grace less the bound
        await hm._deliver("n2")
        return before, (store.hint_stats().get("n2", (0, 0))[0],
                        _sample(hm, "dynamopy_hints_pending", target="n2"),
                        _sample(hm, "dynamopy_hints_dropped_total", target="n2",
                                reason="expired"))

    (before, after), peers, _ = _run(tmp_path, BASE, body)
    assert before == 1.0
    assert after == (0, 0.0, 1.0)
    assert peers.calls == []                 # never delivered


class FailAfter(Peers):
    """Answers the first ``ok`` calls, then fails every call."""

    def __init__(self, ok):
        super().__init__()
        self.ok = ok

    async def __call__(self, member, method, payload, timeout_s=None):
        self.failures = 1 if self.ok <= 0 else 0
        self.ok -= 1
        return await super().__call__(member, method, payload, timeout_s)


def test_the_pending_gauge_counts_what_is_left_after_a_batch_then_a_failure(tmp_path):
    """300 hints: the first batch (256) is delivered, the second call fails: 44 pending."""
    async def body(hm, store, peers, clock):
        for i in range(300):
            await hm.committer.add_hint("n2", 100 + i, b"k%d" % i, Record(10 + i))
        await hm._deliver("n2")
        return (store.hint_stats()["n2"][0],
                _sample(hm, "dynamopy_hints_pending", target="n2"))

    (left, gauge), peers, _ = _run(tmp_path, BASE, body, peers=FailAfter(1))
    assert len(peers.calls) == 2
    assert (left, gauge) == (44, 44.0)


def test_the_back_off_starts_over_after_a_delivery(tmp_path):
    """A failure backs off 0.5 s; a delivery ends the back-off, so the next failure waits
    0.5 s again, not 1 s."""
    async def body(hm, store, peers, clock):
        asked = []
        for t, fail in ((0.0, True), (0.6, False), (1.0, True), (1.55, False)):
            clock.now = t
            peers.failures = int(fail)
            await hm.committer.add_hint("n2", 7, b"k%d" % t, Record(3))
            before = len(peers.calls)
            await hm._deliver("n2")
            asked.append(len(peers.calls) > before)
        return asked, store.hint_stats().get("n2", (0, 0))[0]

    (asked, left), peers, _ = _run(tmp_path, BASE, body)
    assert asked == [True, True, True, True]
    assert left == 0


def test_handed_off_records_too_old_are_skipped_and_the_rest_stored():
    """A batch from a leaver or a holder: each record older than the grace is skipped
    (acked unapplied: the sender deletes it; a purged delete may shadow it), counted as
    dropped; every other record of the batch is stored."""
    node, stored = hint_target(state_at(4, NEW))
    node.clock.now = 864_000 * 0.9 + 10       # grace 10 days: records of time 0 are too old
    fresh = compose(int(node.clock.now * 1000), 0, 1)
    kept = token_where(NEW, "n1", True)
    batch = [[kept, b"old1", Record(compose(5, 0, 1)).to_wire()],
             [kept, b"new", Record(fresh, value=b"v").to_wire()],
             [kept, b"old2", Record(compose(6, 0, 1)).to_wire()]]
    applied = asyncio.run(node.hints.rpc_receive([4, batch], "n3"))
    assert applied == 1 and [(t, k) for t, k, _r in stored] == [(kept, b"new")]
    assert node.metrics.registry.get_sample_value(
        "dynamopy_hints_dropped_total", {"target": "n1", "reason": "expired"}) == 2.0
