"""A batch's size counts every operation, the replica's one-write submissions
(``write_nowait``/``write_into``) included: ``max_batch`` bounds it and ``on_batch`` reports
it (the metrics' batch sizes)."""

from __future__ import annotations

import asyncio

from dynamopy.core.records import Record
from dynamopy.storage.group_commit import GroupCommitter
from dynamopy.storage.store import Store


def test_single_writes_count_toward_max_batch_and_on_batch(tmp_path):
    sizes: list[int] = []

    async def main(store):
        async with GroupCommitter(store, max_batch=5, on_batch=lambda n, s: sizes.append(n)) as gc:
            futs = [gc.write_nowait(1, b"k%d" % i, Record(1)) for i in range(23)]
            futs.append(gc.submit_nowait(writes=[(2, b"a", Record(1)), (2, b"b", Record(1))],
                                         meta_put={"m": b"1"}))
            return await asyncio.gather(*futs)

    with Store(str(tmp_path / "db")) as store:
        results = asyncio.run(asyncio.wait_for(main(store), 10))
    assert results[:23] == [[True]] * 23 and results[23] == [True, True]
    assert max(sizes) <= 5 and sum(sizes) == 23 + 3
