"""GroupCommitter: shared synced batches, failure propagation, flush on stop, crash safety."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dynamopy.core.records import Record
from dynamopy.storage import group_commit
from dynamopy.storage.group_commit import SLOW_SYNC_SECONDS, CommitterClosed, GroupCommitter
from dynamopy.storage.store import Store

from tests.unit.slow_store import SlowApply

REPO_ROOT = Path(__file__).resolve().parents[2]


def rec(version: int, value: bytes = b"v") -> Record:
    return Record(version=version, value=value)


def test_500_concurrent_writes_share_few_batches(tmp_path):
    path = str(tmp_path / "db")
    batches: list[tuple[int, float]] = []

    async def main():
        with Store(path) as store:
            gc = GroupCommitter(store, on_batch=lambda n, s: batches.append((n, s)))
            await gc.start()
            results = await asyncio.gather(
                *(gc.write(i % 1000, b"key-%d" % i, rec(1, b"val-%d" % i)) for i in range(500))
            )
            await gc.stop()
            return results

    results = asyncio.run(main())
    assert results == [True] * 500
    assert sum(n for n, _ in batches) == 500
    assert len(batches) <= 50, f"{len(batches)} batches for 500 writes"
    assert all(s >= 0 for _, s in batches)
    with Store(path) as store:
        assert store.key_count() == 500
        for i in range(500):
            assert store.get(i % 1000, b"key-%d" % i) == rec(1, b"val-%d" % i)


def test_max_batch_bounds_batch_size_and_results_match_callers(tmp_path):
    sizes: list[int] = []

    async def main(store):
        async with GroupCommitter(store, max_batch=7, on_batch=lambda n, s: sizes.append(n)) as gc:
            await gc.write(1, b"k", rec(5))
            return await asyncio.gather(
                *(gc.write(1, b"k", rec(v)) for v in (3, 6, 6, 4)),
                *(gc.write(2, b"x%d" % i, rec(1)) for i in range(40)),
                gc.submit(writes=[(3, b"a", rec(2)), (3, b"a", rec(1))]),
            )

    with Store(str(tmp_path / "db")) as store:
        res = asyncio.run(main(store))
        assert res[:4] == [False, True, False, False]  # only the first version 6 is newer
        assert res[4:44] == [True] * 40
        assert res[44] == [True, False]
        assert store.get(1, b"k").version == 6
    assert max(sizes) <= 7 and sum(sizes) == 1 + 4 + 40 + 2


def test_failing_apply_fails_every_future_of_the_batch_then_recovers(tmp_path):
    with Store(str(tmp_path / "db")) as store:
        real_apply = store.apply
        calls = {"n": 0}

        def flaky_apply(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 1:
                raise OSError("disk on fire")
            return real_apply(*args, **kwargs)

        store.apply = flaky_apply  # instance attribute shadows the method

        async def main():
            async with GroupCommitter(store) as gc:
                first = await asyncio.gather(
                    *(gc.write(1, b"k%d" % i, rec(1)) for i in range(20)),
                    gc.put_meta("m", b"v"),
                    return_exceptions=True,
                )
                after = await gc.write(1, b"later", rec(1))
                return first, after

        first, after = asyncio.run(main())
        assert all(isinstance(r, OSError) and "disk on fire" in str(r) for r in first)
        assert after is True
        assert store.get(1, b"k0") is None and store.meta_get("m") is None
        assert store.get(1, b"later") == rec(1)


def test_stop_flushes_queued_work_and_refuses_new(tmp_path):
    path = str(tmp_path / "db")

    async def main():
        with Store(path) as store:
            gc = GroupCommitter(store, max_batch=10)
            with pytest.raises(CommitterClosed):
                await gc.write(1, b"early", rec(1))
            await gc.start()
            tasks = [asyncio.create_task(gc.write(1, b"k%d" % i, rec(1))) for i in range(100)]
            tasks.append(asyncio.create_task(gc.add_hint("n2", 4, b"h", rec(1))))
            await asyncio.sleep(0)  # let them queue, not complete
            await gc.stop()
            # Everything queued was committed before stop() returned...
            assert store.key_count() == 100
            # ...and every caller gets its answer (tasks need one more loop turn to finish).
            results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=1)
            assert results[:100] == [True] * 100
            with pytest.raises(CommitterClosed):
                await gc.write(1, b"late", rec(1))

    asyncio.run(main())
    with Store(path) as store:
        assert store.key_count() == 100
        assert store.hint_stats()["n2"][0] == 1


def test_hints_meta_and_delete_range_through_committer(tmp_path):
    async def main(store):
        async with GroupCommitter(store) as gc:
            await gc.add_hint("n2", 9, b"k", rec(3))
            (hkey, token, key, record), = store.hints("n2", 10)
            assert (token, key, record) == (9, b"k", rec(3))
            await gc.delete_hints([hkey])
            assert store.hint_stats() == {}
            with pytest.raises(TypeError):
                await gc.delete_hints(hkey)  # one bytes value, not a list
            # Delete then put of one name queued into the same batch: the put (last) wins.
            await asyncio.gather(gc.put_meta("x", b"1"))
            await asyncio.gather(gc.submit(meta_delete=["x"]), gc.put_meta("x", b"2"))
            assert store.meta_get("x") == b"2"
            await asyncio.gather(gc.put_meta("x", b"3"), gc.submit(meta_delete=["x"]))
            assert store.meta_get("x") is None
            # Bad input fails its caller only, never the shared batch.
            bad = gc.write(2**32, b"k", rec(1))
            good = gc.write(5, b"ok", rec(1))
            res = await asyncio.gather(bad, good, return_exceptions=True)
            assert isinstance(res[0], ValueError) and res[1] is True
            await gc.submit(writes=[(t, b"r", rec(1)) for t in range(10)])
            assert await gc.delete_range(0, 5) == 5

    with Store(str(tmp_path / "db")) as store:
        asyncio.run(main(store))
        assert store.key_count() == 6  # b"r" at tokens 5..9, plus b"ok" at token 5


def test_cancelled_caller_does_not_break_the_batch(tmp_path):
    async def main(store):
        async with GroupCommitter(store) as gc:
            t1 = asyncio.create_task(gc.write(1, b"a", rec(1)))
            t2 = asyncio.create_task(gc.write(1, b"b", rec(1)))
            await asyncio.sleep(0)
            t1.cancel()
            assert await t2 is True
            with pytest.raises(asyncio.CancelledError):
                await t1

    with Store(str(tmp_path / "db")) as store:
        asyncio.run(main(store))
        # The cancelled caller's write was already queued; it may or may not be stored,
        # but the other caller's write certainly is.
        assert store.get(1, b"b") == rec(1)


# ---------------------------------------------------------------- crash safety

CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from dynamopy.core.records import Record
    from dynamopy.storage.group_commit import GroupCommitter
    from dynamopy.storage.store import Store

    async def writer(gc, w):
        i = 0
        while True:
            key = b"w%d-%d" % (w, i)
            token = (w * 7919 + i * 104729) % 2**32
            await gc.write(token, key, Record(version=i + 1, value=key * 8))
            # Printed only after the ack: one write() of a short line is atomic on a pipe.
            os.write(1, b"%d %s\\n" % (token, key))
            i += 1

    async def main():
        store = Store(sys.argv[1])
        gc = GroupCommitter(store)
        await gc.start()
        await asyncio.gather(*(writer(gc, w) for w in range(32)))

    asyncio.run(main())
    """
)


def test_acked_writes_survive_sigkill(tmp_path):
    path = str(tmp_path / "db")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    acked: list[tuple[int, bytes]] = []

    def take(line: bytes) -> None:
        if line.endswith(b"\n"):  # only whole lines were printed after an ack
            token, key = line.split()
            acked.append((int(token), key))

    with subprocess.Popen(
        [sys.executable, "-c", CHILD, path], stdout=subprocess.PIPE, env=env, cwd=REPO_ROOT
    ) as proc:
        assert proc.stdout is not None
        deadline = time.monotonic() + 15
        try:
            # Kill while writers are mid-flight, after a few thousand acks.
            while len(acked) < 3000 and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                take(line)
            proc.send_signal(signal.SIGKILL)
            # Lines already in the pipe were acked before the kill.
            for line in proc.stdout.read().splitlines(keepends=True):
                take(line)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
    print(f"acked before SIGKILL: {len(acked)}")
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 100, "child acked too little before the kill"

    with Store(path) as store:
        missing = [key for token, key in acked if store.get(token, key) is None]
        assert not missing, f"{len(missing)} acked writes lost, e.g. {missing[:5]}"
        token, key = acked[-1]
        assert store.get(token, key).value == key * 8
        assert store.key_count() >= len(acked)


def test_range_deletes_are_ordered_with_writes(tmp_path):
    """Writes queued before a range delete are deleted with it; writes queued after survive."""
    from dynamopy.core.records import Record

    async def scenario():
        store = Store(str(tmp_path / "db"))
        gc = GroupCommitter(store)
        await gc.start()
        before = asyncio.ensure_future(gc.write(10, b"before", Record(1)))
        dropped = asyncio.ensure_future(gc.delete_ranges_in_order([(0, 100)]))
        after = asyncio.ensure_future(gc.write(10, b"after", Record(2)))
        await asyncio.gather(before, dropped, after)
        await gc.stop()
        try:
            return dropped.result(), store.get(10, b"before"), store.get(10, b"after")
        finally:
            store.close()

    count, gone, kept = asyncio.run(scenario())
    assert count == 1 and gone is None and kept is not None and kept.version == 2


def test_write_nowait_resolves_after_its_synced_batch_and_fails_with_it(tmp_path):
    """The future the data path chains callbacks on: done only once the synced apply holding
    the record returned; a failed batch fails it; a stopped committer refuses at once."""
    with Store(str(tmp_path / "db")) as store:
        real_apply = store.apply
        synced: list[bool] = []
        fail = {"next": False}

        def apply(*args, **kwargs):
            if fail["next"]:
                fail["next"] = False
                raise OSError("disk on fire")
            result = real_apply(*args, **kwargs)
            synced.append(kwargs.get("sync", False))
            return result

        store.apply = apply

        async def main():
            gc = GroupCommitter(store)
            await gc.start()
            seen_at_done: list = []
            fut = gc.write_nowait(1, b"k", rec(3))
            fut.add_done_callback(lambda f: seen_at_done.append(list(synced)))
            assert not fut.done()
            assert await fut == [True]
            assert seen_at_done == [[True]]           # the synced apply had returned
            assert await gc.write_nowait(1, b"k", rec(2)) == [False]   # older: not applied
            fail["next"] = True
            with pytest.raises(OSError):
                await gc.write_nowait(1, b"k", rec(4))
            await gc.stop()
            with pytest.raises(CommitterClosed):
                gc.write_nowait(1, b"k", rec(5))

        asyncio.run(main())
        assert store.get(1, b"k") == rec(3)


def test_the_split_batch_knob_makes_more_smaller_batches_with_the_same_results():
    """BUGGIFY ``commit_split_batch`` (the simulator's; off in production): batches cut
    after their first submission. Every caller still gets its own result, every write is
    stored; there are simply more syncs."""
    import random

    from dynamopy.core.buggify import Buggify
    from dynamopy.sim.storage import MemoryDisk

    def run(buggify):
        batches: list[int] = []

        async def main():
            disk = MemoryDisk()
            store = disk.open()
            kw = {"buggify": buggify} if buggify else {}
            gc = GroupCommitter(store, inline=True, on_batch=lambda n, s: batches.append(n), **kw)
            await gc.start()
            await gc.write(5, b"k5", rec(9))
            results = await asyncio.gather(*(gc.write(i, b"k%d" % i, rec(2)) for i in range(10)))
            await gc.stop()
            reopened = (disk.crash(), disk.open())[1]  # only what was synced
            return results, [reopened.get(i, b"k%d" % i) for i in range(10)]

        return asyncio.run(main()), batches

    (plain, plain_keys), plain_batches = run(None)
    (split, split_keys), split_batches = run(Buggify(random.Random(1), enable_p=1.0, fire_p=1.0))
    assert split == plain == [i != 5 for i in range(10)]  # k5 holds a newer version already
    assert split_keys == plain_keys == [rec(9) if i == 5 else rec(2) for i in range(10)]
    assert len(plain_batches) <= 3 and len(split_batches) == 11


def test_stop_while_a_batch_syncs_commits_everything_queued_then_ends_the_thread(tmp_path):
    """The commit thread and the loop hand batches to each other: a stop() that arrives while
    one batch is at the thread and more is queued still commits all of it, in order, before
    it returns, and leaves no commit thread behind."""
    import threading

    with Store(str(tmp_path / "db")) as store:
        real_apply = store.apply
        release = threading.Event()
        calls = []

        def apply(writes, *args, **kwargs):
            writes = list(writes)
            calls.append(sorted(k for _t, k, _r in writes))
            if len(calls) == 1:
                assert release.wait(5)
            return real_apply(writes, *args, **kwargs)

        store.apply = apply

        async def main():
            gc = GroupCommitter(store)
            await gc.start()
            first = gc.write_nowait(1, b"a", rec(1))
            while not calls:  # the first batch is at the thread
                await asyncio.sleep(0.001)
            later = [gc.write_nowait(1, b"k%d" % i, rec(1)) for i in range(3)]
            stopping = asyncio.ensure_future(gc.stop())
            await asyncio.sleep(0.01)
            assert not stopping.done()
            with pytest.raises(CommitterClosed):
                gc.write_nowait(1, b"late", rec(1))
            release.set()
            await asyncio.wait_for(stopping, 10)
            return [await first] + [await f for f in later]

        threads_before = threading.active_count()
        assert asyncio.run(main()) == [[True]] * 4
        assert calls == [[b"a"], [b"k0", b"k1", b"k2"]]
        assert threading.active_count() <= threads_before
        assert store.get(1, b"k2") == rec(1)


def test_write_nowait_refuses_bad_input_at_once_and_only_for_its_caller(tmp_path):
    with Store(str(tmp_path / "db")) as store:
        async def main():
            async with GroupCommitter(store) as gc:
                good = gc.write_nowait(1, b"k", rec(1))
                with pytest.raises(ValueError):
                    gc.write_nowait(2**32, b"k", rec(1))
                with pytest.raises(TypeError):
                    gc.write_nowait(1, "k", rec(1))
                with pytest.raises(TypeError):
                    gc.write_nowait(1, b"k", (1, b"v"))
                return await good

        assert asyncio.run(main()) == [True]
        assert store.get(1, b"k") == rec(1) and store.key_count() == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_commit_thread_killed_by_a_bug_fails_its_callers_and_refuses_new_work(tmp_path):
    """Not an ``Exception`` (a bug, or SystemExit in the thread): the batch and everything
    queued behind it fail with CommitterClosed (outcome unknown), nobody hangs, new writes are
    refused and stop() returns."""
    import threading

    with Store(str(tmp_path / "db")) as store:
        release = threading.Event()

        def apply(*args, **kwargs):
            assert release.wait(5)
            raise SystemExit("bug")

        store.apply = apply

        async def main():
            gc = GroupCommitter(store)
            await gc.start()
            first = gc.write_nowait(1, b"a", rec(1))
            await asyncio.sleep(0.01)
            queued = gc.write_nowait(1, b"b", rec(1))
            release.set()
            for fut in (first, queued):
                with pytest.raises(CommitterClosed):
                    await asyncio.wait_for(fut, 10)
            with pytest.raises(CommitterClosed):
                gc.write_nowait(1, b"c", rec(1))
            await asyncio.wait_for(gc.stop(), 10)

        asyncio.run(main())


def test_a_slow_synced_batch_is_logged_with_its_size_and_time(tmp_path, caplog):
    """The timestamped evidence of a disk stall next to a latency tail: a batch whose synced
    apply took SLOW_SYNC_SECONDS or more is logged; a fast one is not."""
    with Store(str(tmp_path / "db")) as store:
        slow = SlowApply(store, SLOW_SYNC_SECONDS + 0.02, on=False)

        async def main():
            async with GroupCommitter(store) as gc:
                await gc.write(1, b"fast", rec(1))
                slow.on = True
                await asyncio.gather(gc.write(1, b"a", rec(1)), gc.write(2, b"b", rec(1)))

        with caplog.at_level("INFO", logger="dynamopy.storage.group_commit"):
            asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if "slow synced batch" in r.getMessage()]
    assert len(lines) == 1, lines
    m = re.fullmatch(r"slow synced batch: 2 operations in ([\d.]+) ms", lines[0])
    assert m and float(m.group(1)) >= SLOW_SYNC_SECONDS * 1000, lines[0]


def test_slow_batches_are_logged_at_most_once_a_second_and_the_next_line_counts_the_rest(
        tmp_path, caplog, monkeypatch):
    """A slow disk would log every batch: one line per SLOW_SYNC_LOG_EVERY at most, and the
    next line says how many slow batches went unlogged."""
    clock = {"now": 100.0}
    monkeypatch.setattr(group_commit, "_monotonic", lambda: clock["now"])
    with Store(str(tmp_path / "db")) as store:
        SlowApply(store, SLOW_SYNC_SECONDS + 0.01)

        async def main():
            async with GroupCommitter(store) as gc:
                for i, now in enumerate((100.0, 100.2, 100.9, 101.5, 101.6)):
                    clock["now"] = now
                    await gc.write(1, b"k%d" % i, rec(1))

        with caplog.at_level("INFO", logger="dynamopy.storage.group_commit"):
            asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if "slow synced batch" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "more since" not in lines[0]
    assert lines[1].endswith(" ms (2 more since the last line)"), lines[1]


def test_an_inline_batch_takes_the_writes_queued_while_it_forms_up_to_max_batch():
    # The simulator's committer (inline) forms a batch over one loop step, as the thread's
    # forms over one fsync: writes queued in that step join it, up to max_batch.
    from dynamopy.sim.storage import MemoryDisk

    store = MemoryDisk().open()
    sizes: list[int] = []

    async def main():
        gc = GroupCommitter(store, inline=True, max_batch=3, on_batch=lambda n, s: sizes.append(n))
        await gc.start()
        first = gc.write_nowait(1, b"a", rec(1))
        await asyncio.sleep(0)  # the committer takes the batch [a] and lets this step run
        rest = [gc.write_nowait(1, b"b%d" % i, rec(1)) for i in range(3)]
        results = await asyncio.gather(first, *rest)
        await gc.stop()
        return results

    assert asyncio.run(main()) == [[True]] * 4
    assert sizes == [3, 1]  # a, b0, b1 (max_batch); then b2
    assert store.key_count() == 4
    store.close()


def test_a_batch_size_counts_every_operation(tmp_path):
    # What on_batch hears (the node's batch-size metric): writes, hints added and deleted,
    # metadata puts and deletes, one each.
    sizes: list[int] = []

    async def main(store):
        async with GroupCommitter(store, on_batch=lambda n, s: sizes.append(n)) as gc:
            await gc.submit(writes=[(1, b"k", rec(1))],
                            hints_add=[("n2", 2, b"h", rec(1)), ("n3", 2, b"h", rec(1))],
                            hints_delete=[b"x1", b"x2", b"x3"],
                            meta_put={"m": b"1"}, meta_delete=["gone"])

    with Store(str(tmp_path / "db")) as store:
        asyncio.run(main(store))
    assert sizes == [8]


def test_a_batch_fills_up_to_max_batch(tmp_path):
    sizes: list[int] = []

    async def main(store):
        async with GroupCommitter(store, max_batch=3, on_batch=lambda n, s: sizes.append(n)) as gc:
            await asyncio.gather(*(gc.write_nowait(1, b"k%d" % i, rec(1)) for i in range(4)))

    with Store(str(tmp_path / "db")) as store:
        asyncio.run(main(store))
    assert sizes == [3, 1]


def test_callers_without_data_writes_in_a_batch_leave_the_write_results_to_their_owners(
        tmp_path):
    # A batch merges metadata, hint and write submissions: each caller gets the results of
    # its own data writes only (none for a metadata or hint submission).
    async def main(store):
        async with GroupCommitter(store) as gc:
            await gc.write(1, b"k", rec(5))
            return await asyncio.gather(
                gc.submit(meta_put={"m": b"1"}), gc.write(1, b"k", rec(6)),
                gc.submit(hints_add=[("n2", 2, b"h", rec(1))]), gc.write(1, b"k", rec(4)),
                gc.submit(writes=[(2, b"a", rec(1)), (2, b"a", rec(1))]))

    with Store(str(tmp_path / "db")) as store:
        assert asyncio.run(main(store)) == [[], True, [], False, [True, False]]


def test_an_inline_committer_deletes_a_range_on_the_loop():
    from dynamopy.sim.storage import MemoryDisk

    store = MemoryDisk().open()
    store.apply([(t, b"r", rec(1)) for t in range(10)], sync=True)

    async def main():
        async with GroupCommitter(store, inline=True) as gc:
            return await gc.delete_range(2, 7)

    assert asyncio.run(main()) == 5
    assert [t for t, _k, _r in store.scan(0, 2**32)] == [0, 1, 7, 8, 9]
    store.close()


def test_max_batch_one_commits_each_submission_alone_and_zero_is_refused(tmp_path):
    sizes: list[int] = []
    with Store(str(tmp_path / "db")) as store:
        with pytest.raises(ValueError):
            GroupCommitter(store, max_batch=0)

        async def main():
            async with GroupCommitter(store, max_batch=1,
                                      on_batch=lambda n, s: sizes.append(n)) as gc:
                await asyncio.gather(*(gc.write(1, b"k%d" % i, rec(1)) for i in range(3)))

        asyncio.run(main())
    assert sizes == [1, 1, 1]


@pytest.mark.timeout(10)  # (a second start that is not refused leaves a task or thread behind)
@pytest.mark.parametrize("inline", [False, True])
def test_a_started_committer_refuses_a_second_start(tmp_path, inline):
    from dynamopy.sim.storage import MemoryDisk

    store = MemoryDisk().open() if inline else Store(str(tmp_path / "db"))

    async def main():
        gc = GroupCommitter(store, inline=inline)
        await gc.start()
        try:
            with pytest.raises(RuntimeError, match="already started"):
                await gc.start()
        finally:
            await gc.stop()

    asyncio.run(main())
    store.close()


def test_an_inline_committer_applies_on_the_loop_thread():
    # The simulator's determinism: no commit thread when inline.
    import threading

    from dynamopy.sim.storage import MemoryDisk

    store = MemoryDisk().open()
    real_apply, threads = store.apply, []

    def apply(*args, **kwargs):
        threads.append(threading.get_ident())
        return real_apply(*args, **kwargs)
    store.apply = apply

    async def main():
        async with GroupCommitter(store, inline=True) as gc:
            await gc.write(1, b"k", rec(1))

    asyncio.run(main())
    assert threads == [threading.get_ident()]
    store.close()


def test_a_process_that_never_stops_its_committer_still_exits(tmp_path):
    # The commit thread is a daemon: an exit without stop() (a crash path) does not hang.
    code = textwrap.dedent(f"""
        import asyncio
        from dynamopy.storage.group_commit import GroupCommitter
        from dynamopy.storage.store import Store

        async def main():
            gc = GroupCommitter(Store({str(tmp_path / "db")!r}))
            await gc.start()
            await gc.write(1, b"k", __import__("dynamopy.core.records").core.records.Record(1))

        asyncio.run(main())
    """)
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=8)


@pytest.mark.parametrize("inline", [False, True])
def test_a_second_stop_is_harmless(tmp_path, inline):
    # (A crashed in-process node's committer is stopped by the crash and may be again.)
    from dynamopy.sim.storage import MemoryDisk

    store = MemoryDisk().open() if inline else Store(str(tmp_path / "db"))

    async def main():
        gc = GroupCommitter(store, inline=inline)
        await gc.start()
        await gc.write(1, b"k", rec(1))
        await gc.stop()
        await asyncio.wait_for(gc.stop(), 5)
        assert not gc.running

    asyncio.run(main())
    store.close()
