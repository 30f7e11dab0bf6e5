"""Store: versioned records by token, scans, delete_range, counters, hints, metadata."""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynamopy.core.records import Record
from dynamopy.storage.disk import LevelDBDisk
from dynamopy.storage.layout import TOKEN_LIMIT
from dynamopy.storage.store import (
    WRITE_BUFFER_MAX,
    WRITE_BUFFER_MIN,
    Store,
    write_buffer_size,
)


def rec(version: int, value: bytes = b"v", deleted: bool = False) -> Record:
    return Record(version=version, deleted=deleted, content_type="text/plain", value=value)


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "db"))
    yield s
    s.close()


# ---------------------------------------------------------------- records


def test_put_get_and_missing(store):
    assert store.get(5, b"k") is None
    assert store.apply([(5, b"k", rec(1, b"hello"))]) == [True]
    assert store.get(5, b"k") == rec(1, b"hello")
    # The token is part of the address: same key under another token is another record.
    assert store.get(6, b"k") is None


def test_newer_wins_and_older_is_rejected(store):
    assert store.apply([(1, b"k", rec(10, b"ten"))]) == [True]
    assert store.apply([(1, b"k", rec(9, b"nine"))]) == [False]
    assert store.apply([(1, b"k", rec(10, b"ten-again"))]) == [False]  # equal is not newer
    assert store.get(1, b"k") == rec(10, b"ten")
    assert store.apply([(1, b"k", rec(11, b"eleven"))]) == [True]
    assert store.get(1, b"k") == rec(11, b"eleven")


def test_tombstones_are_stored_and_returned(store):
    store.apply([(1, b"k", rec(1, b"x"))])
    assert store.apply([(1, b"k", rec(2, b"", deleted=True))]) == [True]
    got = store.get(1, b"k")
    assert got is not None and got.deleted and got.version == 2
    # An older live write cannot resurrect the key.
    assert store.apply([(1, b"k", rec(1, b"x"))]) == [False]
    assert store.get(1, b"k").deleted
    assert store.key_count() == 1


def test_same_key_twice_in_one_batch_keeps_max(store):
    res = store.apply(
        [(3, b"k", rec(5, b"five")), (3, b"k", rec(7, b"seven")), (3, b"k", rec(6, b"six"))]
    )
    assert res == [True, True, False]
    assert store.get(3, b"k") == rec(7, b"seven")
    assert store.key_count() == 1


def test_apply_is_all_or_nothing_on_bad_input(store):
    with pytest.raises(ValueError):
        store.apply([(1, b"a", rec(1)), (TOKEN_LIMIT, b"b", rec(1))])
    assert store.get(1, b"a") is None
    assert store.key_count() == 0


def test_scan_token_order_and_boundaries(store):
    tokens = [0, 1, 99, 100, 100, 101, 2**31, TOKEN_LIMIT - 1]
    writes = [(t, b"k%d-%d" % (t, i), rec(1)) for i, t in enumerate(tokens)]
    store.apply(writes)

    def toks(a, b):
        return [t for t, _, _ in store.scan(a, b)]

    assert toks(0, TOKEN_LIMIT) == sorted(tokens)
    assert toks(100, 101) == [100, 100]  # start inclusive, end exclusive
    assert toks(99, 100) == [99]
    assert toks(101, TOKEN_LIMIT) == [101, 2**31, TOKEN_LIMIT - 1]  # end = 2**32 reaches the top
    assert toks(TOKEN_LIMIT - 1, TOKEN_LIMIT) == [TOKEN_LIMIT - 1]
    assert toks(5, 5) == []
    assert toks(7, 3) == []  # wrapping ranges are the caller's to split
    # Within one token, keys come in byte order; records round-trip.
    same = list(store.scan(100, 101))
    assert [k for _, k, _ in same] == sorted(k for _, k, _ in same)
    assert all(r == rec(1) for _, _, r in same)
    with pytest.raises(ValueError):
        store.scan(0, TOKEN_LIMIT + 1)


def test_key_with_high_bytes_stays_in_its_token(store):
    # A key starting with 0xff must not leak into the next token's range.
    store.apply([(7, b"\xff\xff\xff\xff\xffz", rec(1)), (8, b"\x00", rec(1))])
    assert [(t, k) for t, k, _ in store.scan(7, 8)] == [(7, b"\xff\xff\xff\xff\xffz")]
    assert [(t, k) for t, k, _ in store.scan(8, 9)] == [(8, b"\x00")]


def test_delete_range_and_key_count(store):
    store.apply([(t, b"k%d" % t, rec(1)) for t in range(0, 100)])
    store.apply([(TOKEN_LIMIT - 1, b"top", rec(1))])
    assert store.key_count() == 101
    store.apply([(5, b"k5", rec(2))])  # overwrite does not count twice
    assert store.key_count() == 101
    assert store.delete_range(10, 20) == 10
    assert store.key_count() == 91
    assert [t for t, _, _ in store.scan(9, 21)] == [9, 20]
    assert store.delete_range(90, TOKEN_LIMIT, chunk=3) == 11  # chunked, up to the ring's end
    assert store.key_count() == 80
    assert store.delete_range(10, 20) == 0
    assert store.get(TOKEN_LIMIT - 1, b"top") is None


def test_reopen_keeps_data_and_recounts(tmp_path):
    path = str(tmp_path / "db")
    with Store(path) as s:
        s.apply([(t, b"k%d" % t, rec(t + 1, b"x" * t)) for t in range(50)])
        s.apply([(3, b"k3", rec(100, deleted=True))])
        s.delete_range(40, 50)
        assert s.key_count() == 40
    with Store(path) as s:
        assert s.key_count() == 40
        assert s.get(10, b"k10") == rec(11, b"x" * 10)
        assert s.get(3, b"k3").deleted
        assert s.get(45, b"k45") is None
        assert len(list(s.scan(0, TOKEN_LIMIT))) == 40


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.lists(
            st.tuples(st.integers(0, 3), st.sampled_from([b"a", b"b", b"c"]), st.integers(1, 20)),
            max_size=8,
        ),
        max_size=6,
    )
)
def test_property_store_keeps_max_version(tmp_path_factory, batches):
    expected: dict[tuple[int, bytes], int] = {}
    with Store(str(tmp_path_factory.mktemp("prop"))) as s:
        for batch in batches:
            res = s.apply([(t, k, rec(v)) for t, k, v in batch], sync=False)
            for (t, k, v), applied in zip(batch, res):
                newer = v > expected.get((t, k), 0)
                assert applied == newer
                if newer:
                    expected[(t, k)] = v
        assert s.key_count() == len(expected)
        got = {(t, k): r.version for t, k, r in s.scan(0, TOKEN_LIMIT)}
        assert got == expected


# ---------------------------------------------------------------- hints


def test_hints_add_list_delete_stats(store):
    store.apply(
        [],
        hints_add=[
            ("node-b", 10, b"k1", rec(1)),
            ("node-c", 11, b"k2", rec(2)),
            ("node-b", 12, b"k3", rec(3, deleted=True)),
        ],
    )
    assert sorted(store.hint_stats()) == ["node-b", "node-c"]
    hb = store.hints("node-b", 10)
    assert [(t, k, r.version) for _, t, k, r in hb] == [(10, b"k1", 1), (12, b"k3", 3)]
    assert hb[1][3].deleted
    assert len(store.hints("node-b", 1)) == 1 and store.hints("node-b", 1)[0] == hb[0]
    stats = store.hint_stats()
    assert stats["node-b"][0] == 2 and stats["node-c"][0] == 1
    assert stats["node-b"][1] > 0
    # "node-b" must not see hints of a target that merely shares its prefix.
    store.apply([], hints_add=[("node-bb", 1, b"z", rec(1))])
    assert len(store.hints("node-b", 100)) == 2

    store.apply([], hints_delete=[hb[0][0], hb[0][0], b"h-no-such-key"])  # dupes/missing: no-op
    assert [k for _, _, k, _ in store.hints("node-b", 10)] == [b"k3"]
    assert store.hint_stats()["node-b"][0] == 1
    store.apply([], hints_delete=[hb[1][0]])
    assert "node-b" not in store.hint_stats()
    assert sorted(store.hint_stats()) == ["node-bb", "node-c"]


def test_hints_after_a_cursor_are_the_later_hints_of_that_target_only(store):
    """``hints(target, limit, after=key)`` lists the target's hints after ``key`` (a hint
    delivery's cursor), never another target's, even one whose name extends this one's."""
    store.apply([], hints_add=[("node-b", i, b"k%d" % i, rec(i + 1)) for i in range(5)]
                + [("node-bb", 9, b"z", rec(1)), ("node-c", 9, b"y", rec(1))])
    hb = store.hints("node-b", 10)
    assert [k for _h, _t, k, _r in store.hints("node-b", 10, after=hb[1][0])] == \
        [b"k2", b"k3", b"k4"]
    assert store.hints("node-b", 2, after=hb[1][0]) == hb[2:4]
    assert store.hints("node-b", 10, after=hb[4][0]) == []
    store.apply([], hints_delete=[h for h, *_ in hb[:3]])   # delivered up to the cursor
    assert store.hints("node-b", 10, after=hb[2][0]) == hb[3:]
    with pytest.raises(ValueError):
        store.hints("node-b", 10, after=store.hints("node-c", 1)[0][0])


def test_hint_bytes_are_exact_through_add_and_delete(store):
    store.apply([], hints_add=[("t", 1, b"k", rec(1, b"x" * 100))])
    one = store.hint_stats()["t"][1]
    store.apply([], hints_add=[("t", 1, b"k", rec(1, b"x" * 100))])
    assert store.hint_stats()["t"] == (2, 2 * one)
    first = store.hints("t", 1)[0][0]
    store.apply([], hints_delete=[first])
    assert store.hint_stats()["t"] == (1, one)


def test_hint_seq_survives_reopen_and_stats_recomputed(tmp_path):
    path = str(tmp_path / "db")
    with Store(path) as s:
        s.apply([], hints_add=[("n1", t, b"k%d" % t, rec(t + 1)) for t in range(5)])
        keys_before = [h[0] for h in s.hints("n1", 100)]
        s.apply([], hints_delete=keys_before[:2])
        stats_before = s.hint_stats()
    with Store(path) as s:
        assert s.hint_stats() == stats_before
        s.apply([], hints_add=[("n1", 99, b"new", rec(1))])
        hs = s.hints("n1", 100)
        # Oldest first, and the new hint sorts after every surviving older one.
        assert [h[0] for h in hs[:-1]] == keys_before[2:]
        assert hs[-1][2] == b"new"
        assert hs[-1][0] > max(keys_before)


def test_hint_added_and_deleted_in_same_call_is_counted_right(store):
    store.apply([], hints_add=[("t", 1, b"k", rec(1))])
    existing = store.hints("t", 1)[0][0]
    # Hint keys of this call are not known to the caller, but an existing one can be deleted
    # in the same batch that adds another.
    store.apply([], hints_add=[("t", 2, b"k2", rec(1))], hints_delete=[existing])
    assert store.hint_stats()["t"][0] == 1
    assert [h[2] for h in store.hints("t", 10)] == [b"k2"]


def test_bad_hint_target_rejected(store):
    with pytest.raises(ValueError):
        store.apply([], hints_add=[("a\x00b", 1, b"k", rec(1))])
    with pytest.raises(TypeError):
        store.apply([], hints_delete=b"hsomething")


# ---------------------------------------------------------------- metadata


def test_meta_put_get_scan_delete(tmp_path):
    path = str(tmp_path / "db")
    with Store(path) as s:
        assert s.meta_get("paxos/promised") is None
        s.apply([], meta_put={"paxos/promised": b"\x01", "paxos/accepted/1": b"a1"})
        s.apply([], meta_put={"paxos/accepted/2": b"a2", "ring/epoch": b"7"})
        assert s.meta_get("paxos/promised") == b"\x01"
        assert list(s.meta_scan("paxos/accepted/")) == [
            ("paxos/accepted/1", b"a1"),
            ("paxos/accepted/2", b"a2"),
        ]
        assert len(list(s.meta_scan(""))) == 4
        s.apply([], meta_delete=["paxos/accepted/1"])
        assert s.meta_get("paxos/accepted/1") is None
        # Put and delete of one name in one call: delete comes last.
        s.apply([], meta_put={"x": b"1"}, meta_delete=["x"])
        assert s.meta_get("x") is None
        # Metadata and hints never show up as data records.
        assert s.key_count() == 0 and list(s.scan(0, TOKEN_LIMIT)) == []
    with Store(path) as s:
        assert dict(s.meta_scan("")) == {
            "paxos/promised": b"\x01",
            "paxos/accepted/2": b"a2",
            "ring/epoch": b"7",
        }


def test_mixed_batch_is_atomic_and_closed_store_refuses(tmp_path):
    s = Store(str(tmp_path / "db"))
    res = s.apply(
        [(1, b"k", rec(1))],
        hints_add=[("n", 2, b"h", rec(1))],
        meta_put={"m": b"v"},
    )
    assert res == [True]
    assert s.get(1, b"k") and s.hints("n", 1) and s.meta_get("m") == b"v"
    s.close()
    s.close()  # idempotent
    with pytest.raises(RuntimeError):
        s.apply([(1, b"k", rec(2))])


def test_key_count_exact_under_concurrent_apply_and_delete_range(store):
    def writer(base: int) -> None:
        for i in range(50):
            writes = [(t, b"w%d" % base, rec(i + 1)) for t in range(base, base + 40)]
            store.apply(writes, sync=False)

    def deleter() -> None:
        for _ in range(30):
            store.delete_range(10, 50, chunk=4)

    threads = [threading.Thread(target=writer, args=(b,)) for b in (0, 20, 1000)]
    threads.append(threading.Thread(target=deleter))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.key_count() == len(list(store.scan(0, TOKEN_LIMIT)))


def test_store_implements_the_storage_seam(tmp_path):
    from dynamopy.storage import Storage
    with Store(str(tmp_path / "db")) as s:
        assert isinstance(s, Storage)


def test_scan_resumes_after_a_cursor(tmp_path):
    with Store(str(tmp_path / "db")) as s:
        s.apply([(5, b"a", Record(1)), (5, b"b", Record(1)), (5, b"c", Record(1)),
                 (6, b"a", Record(1))])
        assert [(t, k) for t, k, _ in s.scan(5, 7, after_key=b"a")] == [(5, b"b"), (5, b"c"), (6, b"a")]
        assert [(t, k) for t, k, _ in s.scan(5, 7, after_key=b"c")] == [(6, b"a")]
        assert [(t, k) for t, k, _ in s.scan(6, 7, after_key=b"a")] == []


def test_hint_lookup_finds_the_newest_hint_of_a_key_and_forgets_delivered_ones(tmp_path):
    with Store(str(tmp_path / "db")) as s:
        s.apply(hints_add=[("n2", 7, b"k", Record(1)), ("n2", 7, b"k", Record(5)),
                           ("n2", 8, b"other", Record(3)), ("n3", 7, b"k", Record(9))])
        assert s.hint_lookup("n2", 7, b"k").version == 5
        assert s.hint_lookup("n3", 7, b"k").version == 9
        assert s.hint_lookup("n2", 7, b"missing") is None
        keys = [hk for hk, *_ in s.hints("n2", 10)]
        s.apply(hints_delete=keys[:2])          # both hints of k delivered
        assert s.hint_lookup("n2", 7, b"k") is None
        assert s.hint_lookup("n2", 8, b"other").version == 3
    with Store(str(tmp_path / "db")) as s:      # the index survives a reopen
        assert s.hint_lookup("n2", 8, b"other").version == 3


def test_hint_index_points_at_the_newest_version_not_the_last_hint_added(tmp_path):
    """Issue 19 item 5: a fallback may receive v2 before v1 (two coordinators, one slowed);
    the index must keep pointing at v2, in one batch or across batches and a reopen."""
    with Store(str(tmp_path / "db")) as s:
        s.apply(hints_add=[("n2", 7, b"k", Record(9))])
        s.apply(hints_add=[("n2", 7, b"k", Record(4))])      # older, arrives later
        assert s.hint_lookup("n2", 7, b"k").version == 9
        s.apply(hints_add=[("n2", 8, b"j", Record(6)), ("n2", 8, b"j", Record(2))])
        assert s.hint_lookup("n2", 8, b"j").version == 6
        s.apply(hints_add=[("n2", 8, b"j", Record(7))])      # a newer one moves the index
        assert s.hint_lookup("n2", 8, b"j").version == 7
    with Store(str(tmp_path / "db")) as s:
        assert s.hint_lookup("n2", 7, b"k").version == 9
        # Delivering the indexed (newest) hint drops the index entry; the older hint left
        # behind is older than what the target now holds, so a lookup may miss it.
        newest = [hk for hk, _t, key, r in s.hints("n2", 10) if key == b"k" and r.version == 9]
        s.apply(hints_delete=newest)
        assert s.hint_lookup("n2", 7, b"k") is None
        assert [r.version for _hk, _t, key, r in s.hints("n2", 10) if key == b"k"] == [4]
        # Deleting the older, unindexed hint leaves the index of another key alone.
        assert s.hint_lookup("n2", 8, b"j").version == 7


def test_watch_returns_the_records_as_of_install_and_the_watcher_hears_the_rest(tmp_path):
    """Anti-entropy builds its tree from the scan ``watch`` returns and keeps it current
    with the watcher: a write after the install is in the watcher's changes, not the scan,
    even when the scan is read later (no record counted twice or missed)."""
    with Store(str(tmp_path / "db")) as store:
        store.apply([(5, b"a", Record(1)), (6, b"b", Record(2))])
        heard = []
        scan = store.watch(heard.extend)
        store.apply([(5, b"a", Record(3)), (7, b"c", Record(4)), (6, b"b", Record(1))])
        store.delete_range(7, 8)
        assert [(t, k, r.version) for t, k, r in scan] == [(5, b"a", 1), (6, b"b", 2)]
        assert [(t, k, o and o.version, n and n.version) for t, k, o, n in heard] == [
            (5, b"a", 1, 3), (7, b"c", None, 4), (7, b"c", 4, None)]
        store.unwatch()
        store.apply([(8, b"d", Record(5))])
        assert len(heard) == 3


# ---- the in-memory table of stored versions (read-compare-write without a LevelDB get) ----

def test_the_newer_wins_rule_sees_purges_and_range_deletes(store):
    """What the table remembers is what is on disk: after a tombstone is purged or a range
    deleted, an older version than the one that was there is stored again (the disk holds
    nothing for the key), exactly as without the table."""
    assert store.apply([(1, b"gone", rec(5, deleted=True)), (2, b"cut", rec(5))]) == [True] * 2
    assert store.apply([(1, b"gone", rec(4)), (2, b"cut", rec(4))]) == [False] * 2
    assert store.purge([(1, b"gone", 5)]) == 1
    assert store.delete_range(2, 3) == 1
    assert store.apply([(1, b"gone", rec(3)), (2, b"cut", rec(3))]) == [True] * 2
    assert store.get(1, b"gone") == rec(3) and store.get(2, b"cut") == rec(3)
    assert store.apply([(1, b"gone", rec(2))]) == [False]


@contextlib.contextmanager
def writes_reach_disk_then_fail(store):
    """Within it, every batch the store writes reaches LevelDB and then raises (an fsync
    that failed after the data got there): the outcome a failed write leaves unknown."""
    db = store._db

    class WritesThenFails:
        def __init__(self, wb):
            self.wb = wb

        def __getattr__(self, name):
            return getattr(self.wb, name)

        def write(self):
            self.wb.write()
            raise OSError("fsync failed")

    class Db:
        def __getattr__(self, name):
            return getattr(db, name)

        def write_batch(self, **kw):
            return WritesThenFails(db.write_batch(**kw))

    store._db = Db()
    try:
        yield
    finally:
        store._db = db


def test_a_failed_batch_leaves_no_version_the_disk_may_not_hold(store):
    """A batch whose write raised may or may not be on disk: the next batch reads the key
    from disk again. Here the write reached the disk and then failed: v7 is stored, so v6
    must be refused (a table still saying v5 would let v6 overwrite v7)."""
    assert store.apply([(1, b"k", rec(5))]) == [True]
    with writes_reach_disk_then_fail(store), pytest.raises(OSError):
        store.apply([(1, b"k", rec(7))])
    assert store.apply([(1, b"k", rec(6))]) == [False]
    assert store.get(1, b"k") == rec(7)


def test_a_full_table_is_emptied_and_the_rule_still_holds(store, monkeypatch):
    import dynamopy.storage.store as store_mod
    monkeypatch.setattr(store_mod, "STORED_CACHE_KEYS", 4)
    for v in (3, 2, 4):
        results = store.apply([(t, b"k%d" % t, rec(v)) for t in range(10)])
        assert results == [v != 2] * 10
    assert all(store.get(t, b"k%d" % t) == rec(4) for t in range(10))
    for batch in range(3):   # 30 new keys in batches of 10: never more than one batch held
        store.apply([(t, b"n%d-%d" % (batch, t), rec(1)) for t in range(10)])
        assert len(store._stored) <= 10


def test_a_batch_that_fails_before_its_write_leaves_no_version_behind(store):
    """The table remembers a batch's writes while staging them: if staging fails later in
    the batch (here a malformed hint, as the unchecked group-commit path could pass), none
    of it reached the disk and v6 must still replace the stored v5."""
    assert store.apply([(1, b"k", rec(5))]) == [True]
    with pytest.raises(AttributeError):
        store.apply([(1, b"k", rec(7))], hints_add=[("n2", 1, b"k", None)], check=False)
    assert store.get(1, b"k") == rec(5)
    assert store.apply([(1, b"k", rec(6))]) == [True]


# ---- the in-memory table of whole records (get without a LevelDB read) ----

def test_get_never_returns_what_a_purge_or_range_delete_removed(store):
    """Records read (and so held in the table) and then deleted by a purge or a range delete
    are gone for ``get`` too, as they are on disk."""
    assert store.apply([(1, b"gone", rec(5, deleted=True)), (2, b"cut", rec(5))]) == [True] * 2
    assert store.get(1, b"gone") == rec(5, deleted=True) and store.get(2, b"cut") == rec(5)
    assert store.purge([(1, b"gone", 5)]) == 1
    assert store.delete_range(2, 3) == 1
    assert store.get(1, b"gone") is None and store.get(2, b"cut") is None


def test_get_sees_each_newer_write_and_never_an_older_one(store):
    assert store.apply([(1, b"k", rec(5, b"five"))]) == [True]
    assert store.get(1, b"k") == rec(5, b"five")
    assert store.apply([(1, b"k", rec(4, b"four"))]) == [False]
    assert store.get(1, b"k") == rec(5, b"five")
    assert store.apply([(1, b"k", rec(6, b"six")), (1, b"k", rec(7, b"seven"))]) == [True] * 2
    assert store.get(1, b"k") == rec(7, b"seven")


def test_a_read_racing_with_a_write_does_not_bring_back_the_replaced_record(store):
    """A LevelDB read that returned the old record while a batch stored a newer one (the
    commit thread runs while the reader's ``get`` has released the GIL) must not put the
    old record in the table: the next ``get`` returns the newer one."""
    assert store.apply([(1, b"k", rec(5, b"old"))]) == [True]
    store._records.clear()  # as after a restart: the next get reads LevelDB
    db = store._db

    class WriteDuringRead:
        def __getattr__(self, name):
            return getattr(db, name)

        def get(self, key, *args):
            raw = db.get(key, *args)
            store._db = db  # the racing batch writes through the real LevelDB
            assert store.apply([(1, b"k", rec(6, b"new"))]) == [True]
            return raw

    store._db = WriteDuringRead()
    assert store.get(1, b"k") == rec(5, b"old")  # what that read saw
    assert store.get(1, b"k") == rec(6, b"new")


def test_records_over_the_value_bound_are_not_held_and_the_table_stays_bounded(
        store, monkeypatch):
    import dynamopy.storage.store as store_mod
    monkeypatch.setattr(store_mod, "RECORD_CACHE_BYTES", 100)
    monkeypatch.setattr(store_mod, "RECORD_CACHE_VALUE_BYTES", 40)
    store.apply([(1, b"big", rec(1, b"x" * 41))] + [(2, b"s%d" % i, rec(1, b"y" * 30))
                                                   for i in range(10)])
    assert b"dbig" not in {k[:1] + k[5:] for k in store._records}
    assert sum(len(r.value) for r in store._records.values()) <= 100
    assert store._records_bytes == sum(len(r.value) for r in store._records.values())
    assert store.get(1, b"big") == rec(1, b"x" * 41)
    assert all(store.get(2, b"s%d" % i) == rec(1, b"y" * 30) for i in range(10))
    assert store._records_bytes == sum(len(r.value) for r in store._records.values()) <= 100


def test_a_crashed_store_refuses_reads_even_of_records_it_holds_in_memory():
    """The simulator's crash closes the disk under the store; a read of the crashed store
    must fail as LevelDB's would, not answer from the record table."""
    from dynamopy.sim.storage import MemoryDisk

    disk = MemoryDisk()
    store = disk.open()
    assert store.apply([(1, b"k", rec(5))]) == [True]
    assert store.get(1, b"k") == rec(5)
    disk.crash()
    with pytest.raises(Exception):
        store.get(1, b"k")
    assert disk.open().get(1, b"k") == rec(5)  # synced: still there after the crash


def test_a_range_delete_whose_write_failed_leaves_no_record_the_disk_may_not_hold(store):
    """The delete reached the disk and then raised: the record table must not keep serving
    the deleted records."""
    assert store.apply([(1, b"k", rec(5))]) == [True]
    assert store.get(1, b"k") == rec(5)
    with writes_reach_disk_then_fail(store), pytest.raises(OSError):
        store.delete_range(0, 2)
    assert store.get(1, b"k") is None
    # and the newer-wins rule sees the disk too: an older version is stored again
    assert store.apply([(1, b"k", rec(3))]) == [True]


# ---------------------------------------------------------------- memtable size


def _ldb_tables(path) -> int:
    return sum(1 for name in os.listdir(path) if name.endswith((".ldb", ".sst")))


def _open_with_draw(path, fraction: float) -> Store:
    return Store(str(path), write_buffer_fraction=fraction)


def test_memtable_size_is_spread_over_its_range_on_64k_steps():
    sizes = [write_buffer_size(i / 100) for i in range(100)]
    assert sizes[0] == WRITE_BUFFER_MIN
    assert max(sizes) <= WRITE_BUFFER_MAX and write_buffer_size(0.9999) > WRITE_BUFFER_MAX - (1 << 20)
    assert sizes == sorted(sizes) and len(set(sizes)) == 100
    assert all(s % (64 << 10) == 0 for s in sizes)


def test_the_drawn_memtable_size_is_the_one_leveldb_flushes_by(tmp_path):
    """11 MiB of writes flush a memtable of the smallest size, not one of the largest."""
    value = b"x" * 1024
    batch = [(i, b"key-%d" % i, rec(1, value)) for i in range(11 << 10)]
    tables = []
    for fraction in (0.0, 0.999):
        path = tmp_path / f"db{fraction}"
        with _open_with_draw(path, fraction) as s:
            assert s.write_buffer_size == write_buffer_size(fraction)
            for i in range(0, len(batch), 1024):
                s.apply(batch[i : i + 1024], sync=False)
            # a flush is LevelDB's background work: give it a moment to write its table
            deadline = time.monotonic() + 5
            while _ldb_tables(path) == 0 and fraction == 0.0 and time.monotonic() < deadline:
                time.sleep(0.05)
            tables.append(_ldb_tables(path))
    assert tables[0] >= 1, "a 10 MiB memtable flushed after 11 MiB of writes"
    assert tables[1] == 0, "a 22 MiB memtable did not"


# ---------------------------------------------------------------- the write path's tables


def test_a_watcher_hears_a_replaced_tombstone_as_a_tombstone(store):
    """The read of the read-compare-write comes from the version table: the record it
    reports as replaced keeps its version and tombstone flag (anti-entropy XORs out the
    hash of exactly that)."""
    heard = []
    list(store.watch(heard.extend))
    store.apply([(7, b"k", rec(2, b"", deleted=True))])
    store.apply([(7, b"k", rec(3))])
    _t, _k, old, new = heard[-1]
    assert (old.version, old.deleted) == (2, True) and (new.version, new.deleted) == (3, False)


def test_overwrites_of_one_key_count_its_value_once_in_the_record_table(store):
    for v in range(1, 51):
        store.apply([(7, b"k", rec(v, b"x" * 1000))], sync=False)
    store.apply([(8, b"j", rec(1, b"y" * 10))], sync=False)
    assert store._records_bytes == 1010
    assert store.get(7, b"k") == rec(50, b"x" * 1000)


def test_a_node_disk_draws_each_stores_memtable_size_from_the_node_generator(tmp_path):
    """Replicas get the same writes: with one fixed memtable size they all flushed at once
    (and stalled their syncs together). Each open draws anew from the node's generator."""
    draws = random.Random(7)
    expected = [write_buffer_size(draws.random()) for _ in range(2)]
    disk = LevelDBDisk(str(tmp_path), random.Random(7))
    sizes = []
    for _ in range(2):
        s = disk.open()
        sizes.append(s.write_buffer_size)
        s.close()
    assert sizes == expected and sizes[0] != sizes[1]
    with LevelDBDisk(str(tmp_path / "x")).open() as s:  # no generator: the mean, 16 MiB
        assert s.write_buffer_size == 16 << 20
