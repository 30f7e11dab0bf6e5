"""Range transfer pieces that need no cluster: range arithmetic and the batch server."""

import asyncio
import types

from dynamopy.core.records import Record
from dynamopy.core.membership import ClusterState, Settings, bootstrap_entry
from dynamopy.node.transfer import (held_ranges, lost_ranges, merge_spans,
                                    subtract_sorted)
from dynamopy.storage import GroupCommitter, Store


from tests.unit.transfer_parts import transfer_manager


def test_subtract_sorted_and_merge_spans():
    assert subtract_sorted([(0, 100)], []) == [(0, 100)]
    assert subtract_sorted([(0, 100)], [(20, 30), (50, 200)]) == [(0, 20), (30, 50)]
    assert subtract_sorted([(0, 100)], [(0, 100)]) == []
    assert subtract_sorted([(10, 20)], [(0, 5), (25, 30)]) == [(10, 20)]
    assert subtract_sorted([(0, 10), (20, 30), (40, 50)], [(5, 25), (45, 60)]) == [
        (0, 5), (25, 30), (40, 45)]
    assert merge_spans([(20, 30), (0, 10), (10, 15), (25, 40)]) == [(0, 15), (20, 40)]


SEEDS = [{"id": f"n{i}", "url": f"u{i}", "peer": f"p{i}"} for i in (1, 2, 3)]


class HandOffRecorder:
    """Stands in for the anti-entropy hand-off (tested in test_anti_entropy): records what
    it was asked to hand off and which keys the store still held at that moment."""

    def __init__(self, store=None, orphans=()):
        self.store = store
        self.calls = []
        self._orphans = list(orphans)

    async def hand_off(self, spans, doomed_in):
        held = [k for _t, k, _r in self.store.scan(0, 2**32)] if self.store else []
        self.calls.append((list(spans), held))

    def orphans(self, held):
        return list(self._orphans)


def test_lost_ranges_follow_the_ring_whatever_the_path():
    """Issue 20.2: a node that jumps from its old state straight to a snapshot taken after a
    join finished loses exactly what it loses through the entries, step by step."""
    s0 = ClusterState().apply(bootstrap_entry(SEEDS, Settings()))
    s1 = s0.apply({"op": "join", "id": "n4", "url": "u4", "peer": "p4"})
    s2 = s1.apply({"op": "finish_join", "id": "n4", "change_epoch": 2})
    s3 = s2
    for i in range(70):
        s3 = s3.apply({"op": "set_config", "hint_window_s": float(i)})
    snap = ClusterState.from_dict(s3.to_dict())  # what a peer would send
    for me in ("n1", "n2", "n3"):
        step = merge_spans(lost_ranges(s0, s1, me) + lost_ranges(s1, s2, me))
        assert step, f"{me} gives ranges to n4"
        assert lost_ranges(s0, snap, me) == step
        assert subtract_sorted(held_ranges(s0, me), held_ranges(snap, me)) == step
    assert lost_ranges(s2, s3, "n1") == []  # settings changes move nothing
    # an abandoned join: the joiner loses everything it was gaining
    gone = s1.apply({"op": "remove", "id": "n4"})
    assert lost_ranges(s1, gone, "n4") == held_ranges(s1, "n4") != []


def test_pull_batches_cover_every_record_once_across_ranges(tmp_path):
    with Store(str(tmp_path / "db")) as store:
        writes = [(t, f"k{t}-{i}".encode(), Record(t * 10 + i + 1))
                  for t in range(0, 100, 3) for i in range(4)]
        store.apply(writes)
        async def barrier(**_kw):
            return []

        node = types.SimpleNamespace(store=store, state=types.SimpleNamespace(epoch=5),
                                     committer=types.SimpleNamespace(submit=barrier))
        tm = transfer_manager(node)
        ranges = [[0, 10], [20, 40], [90, 100]]
        expected = [(t, k) for t, k, _ in writes if any(s <= t < e for s, e in ranges)]
        got, cursor = [], [0, 0, None]
        for _ in range(100):
            items, nxt = asyncio.run(tm.rpc_pull([5, ranges, *cursor, 5], "peer"))
            assert len(items) <= 5
            got += [(t, k) for t, k, _w in items]
            if nxt is None:
                break
            cursor = nxt
        assert sorted(got) == sorted(expected) and len(got) == len(set(got))


def test_abandoning_a_join_clears_its_transfer_state(tmp_path):
    """Issue 20.1: the joiner's cursors and durable "done" marker of a join that a remove
    abandoned are deleted, and no longer vouch for anything even before that."""
    joining = ClusterState().apply(bootstrap_entry(SEEDS, Settings())).apply(
        {"op": "join", "id": "n4", "url": "u4", "peer": "p4"})
    removed = joining.apply({"op": "remove", "id": "n4"})

    async def run():
        with Store(str(tmp_path / "db")) as store:
            committer = GroupCommitter(store)
            await committer.start()
            tasks = []
            node = types.SimpleNamespace(
                id="n4", store=store, committer=committer, state=joining, stopping=False,
                anti_entropy=HandOffRecorder(store),
                spawn=lambda coro: tasks.append(asyncio.ensure_future(coro)) or tasks[-1])
            tm = transfer_manager(node)
            tm.replaying = False  # running, past start-up replay
            tm.progress.change_epoch = joining.change_epoch
            await committer.submit(meta_put={tm._done_key(2): b"1",
                                             "xfer/000000000002/n1": b"\xc3"})
            assert tm.is_done(2)
            node.state = removed
            assert not tm.is_done(2)  # over: the marker says nothing any more
            tm.on_state_change(joining, removed)
            await asyncio.gather(*tasks)
            left = list(store.meta_scan("xfer/"))
            await committer.stop()
            return left

    assert asyncio.run(run()) == []


def _node_with_store(tmp_path, state, me):
    async def make():
        store = Store(str(tmp_path / "db"))
        committer = GroupCommitter(store)
        await committer.start()
        tasks = []
        node = types.SimpleNamespace(
            id=me, store=store, committer=committer, state=state, stopping=False,
            anti_entropy=HandOffRecorder(store),
            spawn=lambda coro: tasks.append(asyncio.ensure_future(coro)) or tasks[-1])
        return node, tasks
    return make()


def test_ranges_lost_in_the_replayed_log_are_dropped_at_resume(tmp_path):
    """A node that died between a switch and its drop replays the finish at start-up (no
    reaction while replaying) and drops those ranges when it resumes, though later entries
    (a settings change here) took nothing away."""
    s0 = ClusterState().apply(bootstrap_entry(SEEDS, Settings()))
    s1 = s0.apply({"op": "join", "id": "n4", "url": "u4", "peer": "p4"})
    s2 = s1.apply({"op": "finish_join", "id": "n4", "change_epoch": 2})
    s3 = s2.apply({"op": "set_config", "hint_window_s": 7.0})
    lost = held_ranges(s0, "n1")
    lost = subtract_sorted(lost, held_ranges(s2, "n1"))
    kept_tok, lost_tok = held_ranges(s2, "n1")[0][0], lost[0][0]

    async def run():
        node, tasks = await _node_with_store(tmp_path, s0, "n1")
        await node.committer.submit(writes=[(kept_tok, b"kept", Record(1)),
                                            (lost_tok, b"lost", Record(2))])
        tm = transfer_manager(node)  # replaying until resume()
        for old, new in ((s0, s1), (s1, s2), (s2, s3)):
            node.state = new
            tm.on_state_change(old, new)
        assert not tasks and node.store.key_count() == 2  # nothing done while replaying
        tm.resume()
        await asyncio.gather(*tasks)
        keys = [k for _t, k, _r in node.store.scan(0, 2**32)]
        # the lost ranges were handed off first, while the store still held their records
        (spans, held_then), = node.anti_entropy.calls
        assert spans == merge_spans(lost) and b"lost" in held_then
        await node.committer.stop()
        node.store.close()
        return keys

    assert asyncio.run(run()) == [b"kept"]


def test_orphaned_ranges_found_at_resume_are_handed_off_then_dropped(tmp_path):
    """Issue 12 item 4(b): a node whose state came from a snapshot (so replay saw no loss)
    still holds records of a range it no longer replicates: resume finds them (the tree) and
    hands them off before dropping them."""
    s0 = ClusterState().apply(bootstrap_entry(SEEDS, Settings()))
    s2 = s0.apply({"op": "join", "id": "n4", "url": "u4", "peer": "p4"}).apply(
        {"op": "finish_join", "id": "n4", "change_epoch": 2})
    orphan = subtract_sorted(held_ranges(s0, "n1"), held_ranges(s2, "n1"))[0]
    kept_tok = held_ranges(s2, "n1")[0][0]

    async def run():
        node, tasks = await _node_with_store(tmp_path, s2, "n1")
        node.anti_entropy._orphans = [orphan]
        await node.committer.submit(writes=[(kept_tok, b"kept", Record(1)),
                                            (orphan[0], b"orphan", Record(2))])
        transfer_manager(node).resume()
        await asyncio.gather(*tasks)
        keys = [k for _t, k, _r in node.store.scan(0, 2**32)]
        (spans, held_then), = node.anti_entropy.calls
        await node.committer.stop()
        node.store.close()
        return keys, spans, held_then

    keys, spans, held_then = asyncio.run(run())
    assert keys == [b"kept"] and spans == [orphan] and b"orphan" in held_then


def test_finishing_a_change_clears_its_transfer_state(tmp_path):
    s1 = ClusterState().apply(bootstrap_entry(SEEDS, Settings())).apply(
        {"op": "join", "id": "n4", "url": "u4", "peer": "p4"})
    s2 = s1.apply({"op": "finish_join", "id": "n4", "change_epoch": 2})

    async def run():
        node, tasks = await _node_with_store(tmp_path, s2, "n4")
        tm = transfer_manager(node)
        tm.replaying = False  # running, past start-up replay
        await node.committer.submit(meta_put={tm._done_key(2): b"1"})
        tm.on_state_change(s1, s2)
        await asyncio.gather(*tasks)
        left = list(node.store.meta_scan("xfer/"))
        await node.committer.stop()
        node.store.close()
        return left

    assert asyncio.run(run()) == []


def test_a_pull_reply_always_fits_in_one_peer_frame(tmp_path):
    """A batch under the byte budget followed by one record at the value limit: the large
    record waits for a batch of its own (before: budget + one large record overflowed the
    frame, the source answered an error, and the transfer retried forever)."""
    from dynamopy.config import MAX_VALUE_BYTES_LIMIT
    from dynamopy.peer.framing import encode_frame

    with Store(str(tmp_path / "db")) as store:
        small = b"s" * (3 * 1024 * 1024)
        writes = [(10, b"a", Record(1, value=small)), (11, b"b", Record(2, value=small)),
                  (12, b"c", Record(3, value=b"L" * MAX_VALUE_BYTES_LIMIT,
                                    content_type="x/" + "y" * 1022)),
                  (13, b"d", Record(4, value=small))]
        store.apply(writes)

        async def barrier(**_kw):
            return []

        node = types.SimpleNamespace(store=store, state=types.SimpleNamespace(epoch=5),
                                     committer=types.SimpleNamespace(submit=barrier))
        tm = transfer_manager(node)
        got, cursor = [], [0, 0, None]
        for _ in range(10):
            items, nxt = asyncio.run(tm.rpc_pull([5, [[0, 100]], *cursor, 500], "peer"))
            encode_frame([1, 1, True, [items, nxt]])   # raises FrameTooLarge if it overflows
            got.append([k for _t, k, _w in items])
            if nxt is None:
                break
            cursor = nxt
        assert got == [[b"a", b"b"], [b"c"], [b"d"]]


def test_a_hint_batch_never_adds_a_large_record_to_a_full_one():
    from dynamopy.node.hints import DELIVERY_BYTES, _within_bytes

    big = Record(9, value=b"L" * (DELIVERY_BYTES // 2))
    batch = [(b"h1", 1, b"a", Record(1, value=b"s" * (DELIVERY_BYTES // 3))),
             (b"h2", 2, b"b", Record(2, value=b"s" * (DELIVERY_BYTES // 3))),
             (b"h3", 3, b"c", big)]
    assert [h[0] for h in _within_bytes(batch, DELIVERY_BYTES)] == [b"h1", b"h2"]
    assert [h[0] for h in _within_bytes(batch[2:], DELIVERY_BYTES)] == [b"h3"]


def test_a_range_given_back_while_it_is_handed_off_keeps_its_records(tmp_path):
    """n1 lost ranges to n4's join; while it hands them off before dropping them, n4 starts
    to leave, so n1 replicates them again (pending ring): nothing of them is dropped, and
    what it holds elsewhere is kept too."""
    s0 = ClusterState().apply(bootstrap_entry(SEEDS, Settings()))
    s1 = s0.apply({"op": "join", "id": "n4", "url": "u4", "peer": "p4"})
    s2 = s1.apply({"op": "finish_join", "id": "n4", "change_epoch": 2})
    s3 = s2.apply({"op": "leave", "id": "n4"})
    lost = subtract_sorted(held_ranges(s1, "n1"), held_ranges(s2, "n1"))
    assert lost and subtract_sorted(lost, held_ranges(s3, "n1")) == []
    kept_tok, lost_tok = held_ranges(s2, "n1")[0][0], lost[0][0]

    async def run():
        node, tasks = await _node_with_store(tmp_path, s2, "n1")

        class GivenBackMeanwhile(HandOffRecorder):
            async def hand_off(self, spans, doomed_in):
                node.state = s3   # the leave is applied while the hand-off runs
                await super().hand_off(spans, doomed_in)

        node.anti_entropy = GivenBackMeanwhile(node.store)
        await node.committer.submit(writes=[(kept_tok, b"kept", Record(1)),
                                            (lost_tok, b"back", Record(2))])
        tm = transfer_manager(node)
        tm.replaying = False
        tm.on_state_change(s1, s2)
        await asyncio.gather(*tasks)
        keys = sorted(k for _t, k, _r in node.store.scan(0, 2**32))
        await node.committer.stop()
        node.store.close()
        return keys

    assert asyncio.run(run()) == [b"back", b"kept"]


def _pull_all_batches(tm, ranges, limit):
    batches, cursor = [], [0, ranges[0][0], None]
    for _ in range(100):
        items, nxt = asyncio.run(tm.rpc_pull([5, ranges, *cursor, limit], "peer"))
        batches.append([k for _t, k, _w in items])
        if nxt is None:
            return batches
        cursor = nxt
    raise AssertionError("the pull never ended")


def _server(store):
    async def barrier(**_kw):
        return []

    node = types.SimpleNamespace(store=store, state=types.SimpleNamespace(epoch=5),
                                 committer=types.SimpleNamespace(submit=barrier))
    return transfer_manager(node)


def test_a_pull_batch_holds_the_count_asked_between_one_and_5000(tmp_path):
    with Store(str(tmp_path / "db")) as store:
        store.apply([(t, b"k%05d" % t, Record(t + 1)) for t in range(5001)])
        tm = _server(store)
        for limit, first in ((1, 1), (0, 1), (7, 7), (10**9, 5000)):
            items, nxt = asyncio.run(tm.rpc_pull([5, [[0, 6000]], 0, 0, None, limit], "peer"))
            assert len(items) == first and nxt is not None, limit


def test_records_that_fill_the_byte_budget_exactly_go_in_one_batch(tmp_path):
    from dynamopy.core.records import record_wire_bytes
    from dynamopy.node.transfer import BATCH_BYTES

    a = Record(1, value=b"a" * (BATCH_BYTES // 2))
    need = BATCH_BYTES - record_wire_bytes(b"a", a)
    b = Record(2, value=b"b" * need)
    while (got := record_wire_bytes(b"b", b)) != need:  # the envelope's few bytes
        b = Record(2, value=b"b" * (len(b.value) + need - got))
    with Store(str(tmp_path / "db")) as store:
        store.apply([(10, b"a", a), (11, b"b", b), (12, b"c", Record(3, value=b"c"))])
        assert _pull_all_batches(_server(store), [[0, 100]], 500) == [[b"a", b"b"], [b"c"]]


def test_clearing_stale_transfer_state_keeps_the_change_in_progress(tmp_path):
    """Start-up clears the cursors and "done" markers of changes that are over, and keeps
    those of the change still in progress (a restarted gainer resumes from them)."""
    joining = ClusterState().apply(bootstrap_entry(SEEDS, Settings())).apply(
        {"op": "join", "id": "n4", "url": "u4", "peer": "p4"})
    live = [f"xfer/{joining.change_epoch:012d}/n1", f"xfer/{joining.change_epoch:012d}/done"]

    async def run():
        node, _tasks = await _node_with_store(tmp_path, joining, "n4")
        await node.committer.submit(meta_put={name: b"\xc3" for name in
                                              [*live, "xfer/000000000001/n2",
                                               "xfer/000000000001/done"]})
        await transfer_manager(node)._clear_stale_transfer_state()
        left = [name for name, _ in node.store.meta_scan("xfer/")]
        await node.committer.stop()
        node.store.close()
        return left

    assert sorted(asyncio.run(run())) == sorted(live)


def test_a_member_behind_the_log_is_never_done_with_a_change_it_has_not_seen(tmp_path):
    """The driver asks each gainer whether it holds what it gains; one that has not applied
    the change yet (it still sees an earlier change, in which it gains nothing) says no."""
    joining = ClusterState().apply(bootstrap_entry(SEEDS, Settings())).apply(
        {"op": "join", "id": "n4", "url": "u4", "peer": "p4"})
    me = next(m for m in ("n1", "n2", "n3") if m not in joining.gainers())

    async def run():
        node, _tasks = await _node_with_store(tmp_path, joining, me)
        tm = transfer_manager(node)
        later = joining.epoch + 3          # a change this member has not learned of yet
        answers = (tm.is_done(later), tm.is_done(joining.change_epoch))
        await node.committer.stop()
        node.store.close()
        return answers

    assert asyncio.run(run()) == (False, True)  # (it gains nothing in the change it knows)


def test_a_source_reads_a_pull_batch_off_the_event_loop(tmp_path):
    """Regression: the source read each ``xfer_pull`` batch (up to 5000 records or 8 MiB)
    on the event loop, so while a node joined, left or was removed every request of a
    source waited for each batch (dynamopy.benchlib.loop_stalls: 50-100 ms for 5000 records
    of 1 KiB). Now the batch is read in an executor thread and answers the same."""
    import threading

    with Store(str(tmp_path / "db")) as store:
        store.apply([(t, b"k%05d" % t, Record(t + 1, value=b"v")) for t in range(0, 3000, 3)])
        readers = []
        scan = store.scan

        def reading_scan(*a, **kw):
            for rec in scan(*a, **kw):
                readers.append(threading.get_ident())
                yield rec
        store.scan = reading_scan
        tm = _server(store)

        async def pull():
            return (threading.get_ident(),
                    await tm.rpc_pull([5, [[0, 1500], [1500, 3000]], 0, 0, None, 700], "peer"))
        loop_thread, (items, nxt) = asyncio.run(pull())
        assert [(t, k) for t, k, _w in items] == [(t, b"k%05d" % t) for t in range(0, 2100, 3)]
        assert nxt == [1, 2097, b"k02097"]
        assert len(readers) == 700 and loop_thread not in readers
