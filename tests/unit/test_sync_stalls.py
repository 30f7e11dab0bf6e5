"""benchlib.sync_stalls reads what the nodes write: the group committer's slow-batch log line
in `dynamopy serve`'s log format, and LevelDB's LOG lines."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

from dynamopy.benchlib.sync_stalls import leveldb_events, slow_syncs, window
from dynamopy.core.records import Record
from dynamopy.storage.group_commit import SLOW_SYNC_SECONDS, GroupCommitter
from dynamopy.storage.store import Store

from tests.unit.slow_store import SlowApply


def test_the_slow_batch_line_a_node_logs_is_the_one_the_script_reads(tmp_path):
    log_path = tmp_path / "n2.log"
    handler = logging.FileHandler(log_path)
    # the format `dynamopy serve` configures (cli/serve.py), node id n2
    handler.setFormatter(logging.Formatter("%(asctime)s n2 %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("dynamopy.storage.group_commit")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with Store(str(tmp_path / "db")) as store:
            SlowApply(store, SLOW_SYNC_SECONDS + 0.01)

            async def main():
                async with GroupCommitter(store) as gc:
                    await gc.write(1, b"k", Record(1))

            before = time.time()
            asyncio.run(main())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        handler.close()
    [(t, node, ops, ms)], unlogged = slow_syncs([str(log_path)])
    assert unlogged == 0
    assert node == "n2" and ops == 1 and ms >= SLOW_SYNC_SECONDS * 1000
    assert before - 1 <= t <= time.time() + 1


def test_leveldb_log_lines_and_sample_windows(tmp_path):
    (tmp_path / "n1" / "db").mkdir(parents=True)
    (tmp_path / "n1" / "db" / "LOG").write_text(
        "2026/12/01-12:01:58.276141 140260168148672 Level-0 table #5: started\n"
        "not a log line\n")
    [(t, node, text)] = leveldb_events({"n1": str(tmp_path / "n1")})
    assert node == "n1" and text == "Level-0 table #5: started"
    assert dt.datetime.fromtimestamp(t).strftime("%H:%M:%S.%f") == "12:01:58.276141"
    rows = [(0.0, 100, 0, 10, 80, 0, {"n1": 0}), (1.0, 2048, 1024, 30, 2128, 2, {"n1": 1 << 20})]
    w = window(rows, 0.5, 1.5)
    assert (w["dirty"], w["wb"], w["writes"], w["inflight"]) == (2.0, 1.0, 20, 2)
    assert w["disk_mb"] == 1.0 and w["io"] == {"n1": 1.0}


def test_a_line_that_counts_left_out_batches_is_read_with_its_count(tmp_path):
    log_path = tmp_path / "n1.log"
    log_path.write_text(
        "2026-12-01 12:00:00,100 n1 INFO dynamopy.storage.group_commit: slow synced batch: "
        "3 operations in 61.0 ms\n"
        "2026-12-01 12:00:01,200 n1 INFO dynamopy.storage.group_commit: slow synced batch: "
        "9 operations in 75.5 ms (4 more since the last line)\n")
    slow, unlogged = slow_syncs([str(log_path)])
    assert [(node, ops, ms) for _t, node, ops, ms in slow] == [("n1", 3, 61.0), ("n1", 9, 75.5)]
    assert unlogged == 4
