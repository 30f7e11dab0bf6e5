"""Range transfer pieces that need no cluster: range arithmetic and the batch server."""

import asyncio
import types

from dynamopy.core.records import Record
from dynamopy.node.transfer import TransferManager, subtract_ranges
from dynamopy.storage import Store


def test_subtract_ranges():
    assert subtract_ranges((0, 100), []) == [(0, 100)]
    assert subtract_ranges((0, 100), [(20, 30), (50, 200)]) == [(0, 20), (30, 50)]
    assert subtract_ranges((0, 100), [(0, 100)]) == []
    assert subtract_ranges((10, 20), [(0, 5), (25, 30)]) == [(10, 20)]


def test_pull_batches_cover_every_record_once_across_ranges(tmp_path):
    with Store(str(tmp_path / "db")) as store:
        writes = [(t, f"k{t}-{i}".encode(), Record(t * 10 + i + 1))
                  for t in range(0, 100, 3) for i in range(4)]
        store.apply(writes)
        async def barrier(**_kw):
            return []

        node = types.SimpleNamespace(store=store, state=types.SimpleNamespace(epoch=5),
                                     committer=types.SimpleNamespace(submit=barrier))
        tm = TransferManager.__new__(TransferManager)
        tm.node = node
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
        tm = TransferManager.__new__(TransferManager)
        tm.node = node
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
