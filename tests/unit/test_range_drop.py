"""A range drop (``GroupCommitter.delete_ranges_in_order``: a node dropping the ranges it no
longer replicates after a ring change) runs a chunk at a time, with the batches queued behind
it committed in between. Writes queued after it are acknowledged before a large drop ends and
survive it; writes queued before it are dropped with it, as if the whole drop ran first (a
stale write queued after it leaves the newer record queued before it in place).

Each case runs on the commit thread over a real LevelDB store, and inline over the
simulator's in-memory one (the same ``Store`` code over a fake LevelDB)."""

from __future__ import annotations

import asyncio

import pytest

from dynamopy.core.records import Record
from dynamopy.sim.storage import MemoryDisk
from dynamopy.storage import group_commit
from dynamopy.storage.group_commit import GroupCommitter
from dynamopy.storage.store import Store

KEYS = 1_000  # preloaded records k0..k999 at tokens 0..999


@pytest.fixture(params=["thread", "inline"])
def make(request, tmp_path, monkeypatch):
    """(store, committer factory): 50 records per drop step, so the drop takes ~20 steps."""
    monkeypatch.setattr(group_commit, "DROP_CHUNK", 50)
    inline = request.param == "inline"
    store = MemoryDisk().open() if inline else Store(str(tmp_path / "db"))
    store.apply([(i, b"k%d" % i, Record(1)) for i in range(KEYS)], sync=True)
    yield store, lambda: GroupCommitter(store, inline=inline)
    store.close()


def _write(gc, token: int, key: bytes, version: int) -> asyncio.Future:
    return asyncio.ensure_future(gc.write(token, key, Record(version)))


def test_writes_after_a_drop_are_acked_before_it_ends_and_survive_it(make):
    store, committer = make
    notified: list[tuple[int, bytes]] = []
    list(store.watch(lambda changes: notified.extend(
        (t, k) for t, k, _old, new in changes if new is None)))

    async def scenario():
        gc = committer()
        await gc.start()
        before = _write(gc, 999, b"before", 1)          # queued before: dropped with the range
        drop = asyncio.ensure_future(gc.delete_ranges_in_order([(500, KEYS), (0, 500)]))
        after = [_write(gc, 990, b"after", 2),          # a new key the drop had not reached
                 _write(gc, 995, b"k995", 10**6),       # an overwrite it had not reached
                 _write(gc, 5, b"early", 3),            # a key in a part already dropped
                 _write(gc, 2000, b"outside", 1)]       # outside the ranges
        await asyncio.gather(before, *after)
        acked_while_dropping = not drop.done()
        count = await drop
        await gc.stop()
        return acked_while_dropping, count

    acked_while_dropping, count = asyncio.run(scenario())
    assert acked_while_dropping, "the writes queued behind the drop waited for all of it"
    assert count == KEYS  # k0..k999 but k995, and "before"
    assert store.get(999, b"before") is None and store.get(0, b"k0") is None
    assert store.get(990, b"after").version == 2
    assert store.get(995, b"k995").version == 10**6
    assert store.get(5, b"early").version == 3
    assert store.get(2000, b"outside").version == 1
    assert store.key_count() == 4
    assert sorted(k for _t, k, _r in store.scan(0, 2**32)) == [b"after", b"early", b"k995",
                                                              b"outside"]
    assert len(notified) == KEYS and (995, b"k995") not in notified  # the watcher heard each


def test_a_second_drop_starts_beside_the_first_and_takes_what_was_queued_before_it(make):
    store, committer = make

    async def scenario():
        gc = committer()
        await gc.start()
        first = asyncio.ensure_future(gc.delete_ranges_in_order([(0, 500)]))
        between = _write(gc, 600, b"between", 5)        # before the second drop: dropped
        early = _write(gc, 100, b"early", 5)             # after the first: kept by it
        second = asyncio.ensure_future(gc.delete_ranges_in_order([(500, KEYS)]))
        later = [_write(gc, 700, b"later", 5),           # after both: kept
                 _write(gc, 200, b"later2", 5)]
        await asyncio.gather(between, early, *later)
        acked_while_first_ran = not first.done()
        counts = await asyncio.gather(first, second)
        await gc.stop()
        return acked_while_first_ran, counts

    acked_while_first_ran, counts = asyncio.run(scenario())
    assert acked_while_first_ran, "the writes behind the second drop waited for the first"
    assert counts == [500, 501]
    assert store.get(600, b"between") is None
    assert sorted(k for _t, k, _r in store.scan(0, 2**32)) == [b"early", b"later", b"later2"]


def test_drops_back_to_back_with_overlapping_ranges_each_take_what_was_queued_before_it(make):
    """Two drops of the same range (a range dropped, taken back, dropped again): a write
    between them is kept by the first and dropped by the second; one after both stays."""
    store, committer = make

    async def scenario():
        gc = committer()
        await gc.start()
        first = asyncio.ensure_future(gc.delete_ranges_in_order([(0, KEYS)]))
        between = _write(gc, 900, b"between", 5)
        second = asyncio.ensure_future(gc.delete_ranges_in_order([(0, KEYS)]))
        later = _write(gc, 950, b"later", 5)
        await asyncio.gather(between, later)
        counts = await asyncio.gather(first, second)
        await gc.stop()
        return counts

    counts = asyncio.run(scenario())
    assert counts[0] + counts[1] == KEYS + 1 and counts[0] >= 1
    assert [k for _t, k, _r in store.scan(0, 2**32)] == [b"later"]


def test_stop_finishes_a_drop_in_progress(make):
    store, committer = make

    async def scenario():
        gc = committer()
        await gc.start()
        drop = asyncio.ensure_future(gc.delete_ranges_in_order([(0, KEYS)]))
        await asyncio.sleep(0)
        await gc.stop()
        return await drop

    assert asyncio.run(scenario()) == KEYS
    assert store.key_count() == 0


def test_a_failed_step_fails_the_drop_and_the_writes_go_on(make, monkeypatch):
    store, committer = make
    real, calls = store.delete_range_chunk, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(*args, **kwargs)
    monkeypatch.setattr(store, "delete_range_chunk", flaky)

    async def scenario():
        gc = committer()
        await gc.start()
        drop = asyncio.ensure_future(gc.delete_ranges_in_order([(0, KEYS)]))
        with pytest.raises(OSError):
            await drop
        await gc.write(3000, b"next", Record(1))        # the committer still serves
        await gc.stop()

    asyncio.run(scenario())
    assert store.key_count() == KEYS - 100 + 1  # two steps ran; the rest stays
    assert store.get(3000, b"next").version == 1


def test_overlapping_ranges_are_refused(make):
    _store, committer = make

    async def scenario():
        gc = committer()
        await gc.start()
        try:
            with pytest.raises(ValueError, match="overlap"):
                await gc.delete_ranges_in_order([(0, 10), (5, 20)])
            return await gc.delete_ranges_in_order([(0, 10), (10, 20)])  # adjacent is fine
        finally:
            await gc.stop()

    assert asyncio.run(scenario()) == 20


def test_empty_ranges_are_ignored(make):
    # An empty range (start == end) holds no token: it is neither refused as overlapping the
    # range it sits in nor counted.
    store, committer = make

    async def scenario():
        gc = committer()
        await gc.start()
        try:
            return (await gc.delete_ranges_in_order([(0, 10), (5, 5)]),
                    await gc.delete_ranges_in_order([(700, 700)]),
                    await gc.delete_ranges_in_order([]))
        finally:
            await gc.stop()

    assert asyncio.run(scenario()) == (10, 0, 0)
    assert store.key_count() == KEYS - 10


def test_a_drop_of_many_small_ranges_lets_the_writes_behind_it_in_between(make):
    # A join drops many small ranges (each under a step): the writes queued behind the drop
    # still go between its steps instead of waiting for all of them.
    store, committer = make

    async def scenario():
        gc = committer()
        await gc.start()
        drop = asyncio.ensure_future(
            gc.delete_ranges_in_order([(i, i + 25) for i in range(0, KEYS, 25)]))
        await _write(gc, 2000, b"outside", 1)
        acked_while_dropping = not drop.done()
        count = await drop
        await gc.stop()
        return acked_while_dropping, count

    assert asyncio.run(scenario()) == (True, KEYS)
    assert store.key_count() == 1


def test_a_drop_ends_when_more_keys_are_kept_than_a_step_looks_at(make):
    # 60 new keys written in the range behind the drop (more than the 50 a step looks at):
    # the drop still ends, takes every older record and keeps the new ones.
    store, committer = make

    async def scenario():
        gc = committer()
        await gc.start()
        drop = asyncio.ensure_future(gc.delete_ranges_in_order([(0, KEYS)]))
        await asyncio.gather(*(_write(gc, i, b"n%d" % i, 2) for i in range(60)))
        count = await asyncio.wait_for(drop, 5)
        await gc.stop()
        return count

    assert asyncio.run(scenario()) == KEYS
    assert sorted(k for _t, k, _r in store.scan(0, 2**32)) == sorted(b"n%d" % i
                                                                      for i in range(60))


def test_a_finished_drop_is_on_disk(monkeypatch):
    # The drop's caller hears after synced steps only: a crash right after loses none of it.
    monkeypatch.setattr(group_commit, "DROP_CHUNK", 50)
    disk = MemoryDisk()
    store = disk.open()
    store.apply([(i, b"k%d" % i, Record(1)) for i in range(200)], sync=True)

    async def scenario():
        gc = GroupCommitter(store, inline=True)
        await gc.start()
        count = await gc.delete_ranges_in_order([(0, 150)])
        lost = disk.crash()
        await gc.stop()
        return count, lost

    assert asyncio.run(scenario()) == (150, 0)
    reopened = disk.open()
    assert reopened.key_count() == 50 and reopened.get(0, b"k0") is None
    reopened.close()


class _Bug(BaseException):
    """Not an ``Exception``: a bug the committer does not survive (inline, on the loop)."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_committer_killed_by_a_bug_fails_the_drop_in_progress_and_refuses_new_work(make):
    # A write batch between two steps of a drop dies of a bug (not an Exception): the write,
    # and the drop waiting for its next step, fail with CommitterClosed (outcome unknown)
    # instead of hanging, and new work is refused at once.
    store, committer = make
    real_apply = store.apply

    async def scenario():
        gc = committer()
        bug = _Bug("bug") if gc.inline else SystemExit("bug")  # (the thread's own exit)

        def apply(*args, **kwargs):
            raise bug
        store.apply = apply
        await gc.start()
        drop = asyncio.ensure_future(gc.delete_ranges_in_order([(0, KEYS)]))
        write = _write(gc, 3000, b"w", 1)
        for fut in (write, drop):
            with pytest.raises(group_commit.CommitterClosed):
                await asyncio.wait_for(fut, 10)
        with pytest.raises(group_commit.CommitterClosed):
            gc.write_nowait(3001, b"x", Record(1))
        with pytest.raises(group_commit.CommitterClosed):
            await gc.delete_ranges_in_order([(0, 10)])
        try:
            await asyncio.wait_for(gc.stop(), 10)
        except _Bug:
            pass  # (inline: stop() re-raises what ended the committer's task)

    try:
        asyncio.run(scenario())
    finally:
        store.apply = real_apply
    assert 0 < store.key_count() < KEYS  # the drop ran a step or more; the rest stays


def test_a_slow_disk_over_a_real_store_applies_off_the_loop_with_the_same_rules(tmp_path,
                                                                             monkeypatch):
    # A committer given a disk's ``sync_wait`` but not inline waits for it before each batch,
    # then applies on a worker thread: writes, a drop in steps, and the writes queued behind
    # the drop are committed as on the commit thread.
    monkeypatch.setattr(group_commit, "DROP_CHUNK", 50)
    store = Store(str(tmp_path / "db"))
    store.apply([(i, b"k%d" % i, Record(1)) for i in range(300)], sync=True)
    waits: list[int] = []

    async def sync_wait():
        waits.append(1)
        await asyncio.sleep(0)

    async def scenario():
        gc = GroupCommitter(store, sync_wait=sync_wait)
        await gc.start()
        first = await gc.write(5, b"k5", Record(7))
        drop = asyncio.ensure_future(gc.delete_ranges_in_order([(0, 200)]))
        after = _write(gc, 100, b"after", 2)
        applied = await after
        count = await drop
        await gc.stop()
        return first, applied, count

    try:
        assert asyncio.run(scenario()) == (True, True, 200)
        assert store.get(5, b"k5") is None and store.get(100, b"after").version == 2
        assert store.get(250, b"k250").version == 1 and store.key_count() == 101
        assert len(waits) >= 6  # a wait per batch: the write, 4+ drop steps, the write after
    finally:
        store.close()


def test_an_inline_committer_stops_cleanly_idle_and_after_a_failed_batch():
    # A simulated node that never wrote, or whose last batch failed, stops without error.
    disk = MemoryDisk()
    store = disk.open()
    real_apply, calls = store.apply, []

    def apply(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk full")
        return real_apply(*args, **kwargs)
    store.apply = apply

    async def scenario():
        idle = GroupCommitter(store, inline=True)
        await idle.start()
        await idle.stop()
        gc = GroupCommitter(store, inline=True)
        await gc.start()
        with pytest.raises(OSError):
            await gc.write(1, b"a", Record(1))
        await gc.stop()
        with pytest.raises(group_commit.CommitterClosed):
            await gc.write(1, b"a", Record(1))

    asyncio.run(scenario())
    assert store.get(1, b"a") is None
    store.close()


# ---- Store.delete_range / delete_range_chunk (the steps' store side) -----------------------

def test_a_range_delete_after_reopening_the_store_deletes_and_counts(tmp_path):
    # After a restart the store has cached nothing: the delete still counts and forgets
    # every record it removes; an empty range deletes nothing.
    path = str(tmp_path / "db")
    with Store(path) as store:
        store.apply([(i, b"k%d" % i, Record(1)) for i in range(100)], sync=True)
    with Store(path) as store:
        assert store.delete_range(5, 5) == 0
        assert store.delete_range(0, 50) == 50
        assert store.key_count() == 50 and store.get(10, b"k10") is None
    with Store(path) as store:
        assert store.key_count() == 50


def test_a_range_delete_resumes_after_a_key_that_prefixes_others(tmp_path):
    # One record at a time: each step resumes just after the last key it looked at, so keys
    # that extend it (b"a" -> b"aA") are not skipped.
    keys = [b"a", b"aA", b"aB", b"a\x01", b"b"]
    with Store(str(tmp_path / "db")) as store:
        store.apply([(7, k, Record(1)) for k in keys], sync=True)
        assert store.delete_range(0, 10, chunk=1) == len(keys)
        assert store.key_count() == 0


def test_the_watcher_hears_the_tokens_and_keys_a_range_delete_removes(tmp_path):
    # What anti-entropy's tree is kept by: tokens use all 32 bits.
    tokens = [5, 2**24 + 1, 2**31 + 5, 2**32 - 1]
    heard: list[tuple[int, bytes]] = []
    with Store(str(tmp_path / "db")) as store:
        store.apply([(t, b"key%d" % t, Record(1)) for t in tokens], sync=True)
        list(store.watch(lambda changes: heard.extend(
            (t, k) for t, k, _old, new in changes if new is None)))
        assert store.delete_range_chunk(0, 2**32, chunk=10) == (4, None)
    assert sorted(heard) == [(t, b"key%d" % t) for t in tokens]


def test_a_range_delete_is_on_disk_when_it_returns():
    disk = MemoryDisk()
    store = disk.open()
    store.apply([(i, b"k%d" % i, Record(1)) for i in range(20)], sync=True)
    assert store.delete_range(0, 10) == 10
    assert disk.crash() == 0
    store = disk.open()
    assert store.key_count() == 10 and store.get(0, b"k0") is None
    store.close()


def test_a_steady_stream_of_writes_does_not_starve_a_drop(make):
    # 300 writes queued behind a drop of 20 steps, 10 writes a batch: steps and batches
    # alternate, so the drop ends while writes are still queued; each step tells on_batch
    # how many records it deleted and how long it took.
    store, committer = make
    inline = committer().inline
    sizes: list[int] = []
    seconds: list[float] = []

    def on_batch(n, s):
        sizes.append(n)
        seconds.append(s)

    async def scenario():
        gc = GroupCommitter(store, inline=inline, max_batch=10, on_batch=on_batch)
        await gc.start()
        drop = asyncio.ensure_future(gc.delete_ranges_in_order([(0, KEYS)]))
        writes = [_write(gc, 2000 + i, b"w%d" % i, 1) for i in range(300)]
        count = await drop
        written_when_dropped = sum(w.done() for w in writes)
        await asyncio.gather(*writes)
        await gc.stop()
        return count, written_when_dropped

    count, written_when_dropped = asyncio.run(scenario())
    assert count == KEYS and written_when_dropped < 300
    assert sum(sizes) == KEYS + 300 and all(0 <= s < 60 for s in seconds)
    assert store.key_count() == 300


def test_a_write_whose_batch_failed_does_not_shield_an_older_record_from_the_drop(make, monkeypatch):
    """A write queued after the drop whose batch fails never landed: the drop still takes
    the record it would have overwritten (queued before the drop), as if the drop had run
    first. (It used to stay: the failed write's key was kept, leaving a record in a range the
    node no longer replicates, which could come back later after its delete was purged.)"""
    store, committer = make
    real = store.apply

    def failing(writes, *args, **kwargs):
        if any(key == b"k900" for _t, key, _r in writes):
            raise OSError("disk full")
        return real(writes, *args, **kwargs)
    monkeypatch.setattr(store, "apply", failing)

    async def scenario():
        gc = committer()
        await gc.start()
        drop = asyncio.ensure_future(gc.delete_ranges_in_order([(0, KEYS)]))
        failed = _write(gc, 900, b"k900", 2)            # after the drop; its batch fails
        with pytest.raises(OSError):
            await failed
        assert not drop.done()
        ok = _write(gc, 950, b"k950", 2)                # after the drop, lands: survives it
        count = await drop
        await ok
        await gc.stop()
        return count

    assert asyncio.run(scenario()) == KEYS - 1
    assert store.get(900, b"k900") is None
    assert [k for _t, k, _r in store.scan(0, 2**32)] == [b"k950"]


def random_store(rng, inline: bool, path: str, ntok: int, nkeys: int):
    """A store (in memory when ``inline``, else LevelDB at ``path``) preloaded with up to 60
    random writes of ``nkeys`` keys at tokens below ``ntok``: (store, key -> token,
    ``write(key)`` -> ("write", (token, key, the key's next version)), the preloaded writes)."""
    store = MemoryDisk().open() if inline else Store(path)
    tokens = {b"k%d" % i: rng.randrange(ntok) for i in range(nkeys)}
    versions = dict.fromkeys(tokens, 0)

    def write(key: bytes) -> tuple:
        versions[key] += 1
        return ("write", (tokens[key], key, Record(versions[key])))

    pre = [write(rng.choice(list(tokens)))[1] for _ in range(rng.randrange(60))]
    store.apply(pre, sync=True)
    return store, tokens, write, pre


def _random_run(seed: int, inline: bool, path: str) -> tuple[dict, dict]:
    """Random writes and range drops (some write batches failing) through a committer with a
    drop step of 1-7 records: (what the store holds, what applying the submissions that
    succeeded one by one in queue order gives, a drop deleting its ranges at its place)."""
    import random
    rng = random.Random(seed)
    group_commit.DROP_CHUNK = rng.choice([1, 2, 3, 7])
    store, tokens, write, pre = random_store(rng, inline, path, 200, 40)
    ops: list[tuple] = []
    for _ in range(rng.randrange(5, 80)):
        if rng.random() < 0.1:
            cuts = sorted(rng.sample(range(201), 2 * rng.randrange(1, 4)))
            ops.append(("drop", list(zip(cuts[::2], cuts[1::2]))))
        else:
            ops.append(write(rng.choice(list(tokens))))
        if rng.random() < 0.3:
            ops.append(("sleep", rng.choice([0, 0.0005])))
    real = store.apply

    def flaky(writes, *args, **kwargs):
        if writes and rng.random() < 0.15:
            raise OSError("injected")
        return real(writes, *args, **kwargs)
    store.apply = flaky

    async def scenario() -> set[int]:
        gc = GroupCommitter(store, inline=inline)
        await gc.start()
        futures = {}
        for i, (op, arg) in enumerate(ops):
            if op == "drop":
                futures[i] = asyncio.ensure_future(gc.delete_ranges_in_order(arg))
            elif op == "write":
                futures[i] = asyncio.ensure_future(gc.write(*arg))
            else:
                await asyncio.sleep(arg)
        outcomes = await asyncio.gather(*futures.values(), return_exceptions=True)
        await gc.stop()
        return {i for i, out in zip(futures, outcomes) if isinstance(out, BaseException)}

    failed = asyncio.run(scenario())
    model: dict = {}
    for i, (op, arg) in enumerate([("write", w) for w in pre] + ops):
        if i - len(pre) in failed or op == "sleep":
            continue
        if op == "drop":
            model = {tk: v for tk, v in model.items() if not any(s <= tk[0] < e for s, e in arg)}
        elif model.get(arg[:2], 0) < arg[2].version:
            model[arg[:2]] = arg[2].version
    held = {(t, k): r.version for t, k, r in store.scan(0, 2**32)}
    store.close()
    return held, model


@pytest.mark.parametrize("inline", [False, True], ids=["thread", "inline"])
def test_random_writes_and_drops_end_as_if_each_drop_ran_at_its_place_in_the_queue(
        tmp_path, monkeypatch, inline):
    """Whatever the interleaving, chunk size or failing write batches: the store ends as the
    submissions that succeeded, applied one by one in queue order, leave it."""
    monkeypatch.setattr(group_commit, "DROP_CHUNK", group_commit.DROP_CHUNK)  # restored after
    for seed in range(12):
        held, model = _random_run(seed, inline, str(tmp_path / f"db{seed}"))
        assert held == model, f"seed {seed}"


def test_a_stale_write_queued_after_the_drop_leaves_the_newer_record(make):
    """A write queued after the drop but older than the record stored before it is answered
    "not applied" (as any stale write is), and the newer record stays: the key keeps the
    newer of the two. (The replica then answers with that version; the coordinator re-stamps
    above it, so no write is lost and nothing older comes back.)"""
    store, committer = make
    store.apply([(960, b"k960", Record(50))], sync=True)   # newer than the write below

    async def scenario():
        gc = committer()
        await gc.start()
        drop = asyncio.ensure_future(gc.delete_ranges_in_order([(0, KEYS)]))
        stale = _write(gc, 960, b"k960", 7)  # queued after the drop, older than 50
        applied, count = await stale, await drop
        await gc.stop()
        return applied, count

    assert asyncio.run(scenario()) == (False, KEYS - 1)
    assert store.get(960, b"k960").version == 50 and store.key_count() == 1
