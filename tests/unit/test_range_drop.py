"""A range drop (``GroupCommitter.delete_ranges_in_order``: a node dropping the ranges it no
longer replicates after a ring change) runs a chunk at a time, with the batches queued behind
it committed in between. Writes queued after it are acknowledged before a large drop ends and
survive it; writes queued before it are dropped with it, as if the whole drop ran first.

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


def test_a_second_drop_waits_for_the_first_and_takes_what_was_queued_before_it(make):
    store, committer = make

    async def scenario():
        gc = committer()
        await gc.start()
        first = asyncio.ensure_future(gc.delete_ranges_in_order([(0, 500)]))
        between = _write(gc, 600, b"between", 5)        # before the second drop: dropped
        second = asyncio.ensure_future(gc.delete_ranges_in_order([(500, KEYS)]))
        later = _write(gc, 700, b"later", 5)            # after both: kept
        counts = await asyncio.gather(first, second)
        await asyncio.gather(between, later)
        await gc.stop()
        return counts

    assert asyncio.run(scenario()) == [500, 501]
    assert store.get(600, b"between") is None
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


def _random_run(seed: int, inline: bool, path: str) -> tuple[dict, dict]:
    """Random writes and range drops (some write batches failing) through a committer with a
    drop step of 1-7 records: (what the store holds, what applying the submissions that
    succeeded one by one in queue order gives, a drop deleting its ranges at its place)."""
    import random
    rng = random.Random(seed)
    group_commit.DROP_CHUNK = rng.choice([1, 2, 3, 7])
    store = MemoryDisk().open() if inline else Store(path)
    tokens = {b"k%d" % i: rng.randrange(200) for i in range(40)}
    versions = dict.fromkeys(tokens, 0)

    def write(key: bytes) -> tuple:
        versions[key] += 1
        return ("write", (tokens[key], key, Record(versions[key])))

    pre = [write(rng.choice(list(tokens)))[1] for _ in range(rng.randrange(60))]
    store.apply(pre, sync=True)
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
