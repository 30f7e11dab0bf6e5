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
