"""Store.close() and reads on other threads: since reads of the store run off the event loop
(tombstone purge, transfer, anti-entropy, hint batches), a node may close its store while a
reader thread is inside LevelDB. plyvel frees the database under that thread: the process
crashes (review8's repro, tests/repro/repro_store_close_under_scan.py). close() now waits for
every read in progress, and a read that starts, or a scan that goes on, after it raises
"store is closed"."""

from __future__ import annotations

import threading
import time

import plyvel
import pytest

from dynamopy.core.records import Record
from dynamopy.storage.store import Store


class _GatedDB:
    """A real plyvel DB whose iterator steps and gets wait at a gate once ``armed``: a
    reader thread held inside LevelDB for as long as the test wants."""

    def __init__(self, path: str) -> None:
        self.db = plyvel.DB(path, create_if_missing=True)
        self.armed = False
        self.inside = threading.Event()
        self.release = threading.Event()
        self.closed_while_inside = False
        self._in = 0

    @property
    def closed(self) -> bool:
        return self.db.closed

    def _gate(self) -> None:
        if self.armed:
            self._in += 1
            self.inside.set()
            self.release.wait(10)
            self._in -= 1

    def close(self) -> None:
        if self._in:
            self.closed_while_inside = True
        self.db.close()

    def get(self, key):
        self._gate()
        return self.db.get(key)

    def write_batch(self, **kw):
        return self.db.write_batch(**kw)

    def iterator(self, **kw):
        return _GatedIter(self, self.db.iterator(**kw))


class _GatedIter:
    def __init__(self, owner: _GatedDB, it) -> None:
        self.owner, self.it = owner, it

    def __iter__(self):
        return self

    def __next__(self):
        self.owner._gate()
        return next(self.it)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.it.close()


def _store(tmp_path, keys=300):
    gated = _GatedDB(str(tmp_path / "db"))
    store = Store(str(tmp_path / "db"), db=gated)
    store.apply([(i * 1000, f"k{i}".encode(), Record(i + 1, value=b"v" * 20))
                 for i in range(keys)], sync=False)
    return store, gated


@pytest.mark.parametrize("read", ["scan", "get"])
def test_close_waits_for_a_read_inside_leveldb_then_refuses_the_rest(tmp_path, read):
    store, gated = _store(tmp_path)
    outcome: list = []

    def reader():
        try:
            if read == "scan":
                outcome.append(sum(1 for _ in store.scan(0, 2**32)))
            else:
                store._records.clear()   # past the record table, into LevelDB
                outcome.append(store.get(5000, b"k5"))
        except RuntimeError as e:
            outcome.append(e)

    gated.armed = True
    t = threading.Thread(target=reader)
    t.start()
    assert gated.inside.wait(5), "the reader never reached LevelDB"
    closer = threading.Thread(target=store.close)
    closer.start()
    time.sleep(0.2)
    assert closer.is_alive(), "close() did not wait for the read inside LevelDB"
    gated.armed = False
    gated.release.set()
    closer.join(5)
    t.join(5)
    assert not closer.is_alive() and not t.is_alive()
    assert not gated.closed_while_inside and store.closed
    if read == "scan":  # the scan stopped at its next step, with the store's error
        [err] = outcome
        assert isinstance(err, RuntimeError) and "store is closed" in str(err)
    else:               # the get that was inside finished
        assert outcome == [Record(6, value=b"v" * 20)]
    with pytest.raises(RuntimeError, match="store is closed"):
        store.get(7000, b"k7")      # a read after close is refused, never run on freed memory


def test_a_scan_reads_one_snapshot_and_stopping_early_reads_little(tmp_path):
    store, gated = _store(tmp_path, keys=300)
    it = store.scan(0, 2**32)
    first = next(it)
    store.apply([(299_500, b"late", Record(999, value=b"x"))], sync=False)
    rest = list(it)
    assert first[1] == b"k0" and len(rest) == 299        # the write after the first step is not seen
    assert b"late" not in {k for _t, k, _r in rest}
    assert next(store.scan(0, 2**32))[1] == b"k0"         # a fresh scan starts at the start
    store.close()
