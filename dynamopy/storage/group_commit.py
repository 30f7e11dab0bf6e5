"""Group commit: many concurrent durable writes share one synced LevelDB batch.

Rules and invariants:

* Callers' operations queue up as *submissions*. One background task repeatedly takes every
  queued submission (up to ``max_batch`` operations; a single larger submission goes alone,
  whole) and runs ONE ``store.apply(..., sync=True)`` for all of them.
* ``apply`` runs on a dedicated commit thread: the event loop never waits on fsync, and
  ``apply``'s read-compare-write never runs twice at once. While a batch syncs, new
  submissions queue for the next one; that overlap is the whole point.
* The commit thread takes its batches itself: when a synced batch returns it posts the
  results to the loop (one ``call_soon_threadsafe``) and takes whatever queued meanwhile at
  once, without waiting for the loop or being woken. Only an idle thread is woken, by the
  loop at the end of the step that queued work (``call_soon``), so everything queued in one
  loop step shares a batch. Callers' futures are resolved on the loop, after the sync.
* A caller's future resolves only after the batch holding its operations returned from a
  synced ``apply``. If ``apply`` raises, every future of that batch gets that exception:
  nothing is ever acknowledged without being on disk.
* A submission is atomic (it lands in one batch). Submissions in one batch are merged in
  queue order; metadata puts/deletes of the same name keep the last one, so merging never
  reorders them. Data writes need no ordering: the newest version wins anyway.
* Arguments are validated at submission, so one caller's bad input fails that caller only
  instead of poisoning a shared batch.
* ``stop()`` refuses new work, flushes everything queued, then returns.
* ``inline=True`` (an in-memory store) runs ``apply`` on the event loop instead of the commit
  thread: same batching and the same rules, no thread, so a simulated run is deterministic.
* ``sync_wait`` (the disk's, None in production): awaited before each batch's synced
  ``apply``, so a simulated disk can make a sync take (virtual) time; submissions arriving
  meanwhile queue for the next batch, as they do while a real fsync runs on the thread.
* ``buggify`` (``dynamopy.node.buggify``, off in production): may split a batch after its
  first submission, so batches are smaller and more of them overlap.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterable, Mapping, Optional

from dynamopy.core.records import Record
from dynamopy.core.buggify import BUGGIFY_OFF, Buggify
from dynamopy.storage.store import (
    HintAdd,
    Store,
    Write,
    validate_ops,
    validate_write,
)

log = logging.getLogger(__name__)

OnBatch = Callable[[int, float], None]


class CommitterClosed(RuntimeError):
    """The committer is not running (not started, or stopping/stopped)."""


@dataclass(slots=True)
class _Submission:
    writes: list[Write]
    hints_add: list[HintAdd]
    hints_delete: list[bytes]
    meta_put: dict[str, bytes]
    meta_delete: list[str]
    future: asyncio.Future = field(repr=False)
    delete_ranges: list[tuple[int, int]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return (
            len(self.writes)
            + len(self.hints_add)
            + len(self.hints_delete)
            + len(self.meta_put)
            + len(self.meta_delete)
        )


class GroupCommitter:
    """Batches durable store mutations from many coroutines into one synced write per tick."""

    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = 1000,
        on_batch: Optional[OnBatch] = None,
        inline: bool = False,
        sync_wait: Optional[Callable[[], Awaitable[None]]] = None,
        buggify: Buggify = BUGGIFY_OFF,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.store = store
        self.max_batch = max_batch
        self.on_batch = on_batch
        self.inline = inline
        self.sync_wait = sync_wait
        self.buggify = buggify
        self._queue: deque[_Submission] = deque()
        self._wakeup: Optional[asyncio.Event] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._task: Optional[asyncio.Task] = None
        self._accepting = False
        # The commit thread (not inline): it waits on ``_cond`` only while idle (``_idle``).
        self._thread: Optional[threading.Thread] = None
        self._cond = threading.Condition(threading.Lock())
        self._idle = False
        self._wake_scheduled = False
        self._stopping = False      # stop(): the thread drains the queue, then exits
        self._stopped: Optional[asyncio.Future] = None

    # -- lifecycle

    async def start(self) -> None:
        if self._task is not None or self._thread is not None:
            raise RuntimeError("GroupCommitter already started")
        self._wakeup = asyncio.Event()
        # The loop the batches run on (asyncio.get_running_loop() per submission costs a
        # getpid() system call on Python 3.11).
        self._loop = asyncio.get_running_loop()
        self._accepting = True
        if self.inline or self.sync_wait is not None:
            self._task = self._loop.create_task(self._run(), name="group-commit")
            return
        self._stopping = False
        self._stopped = self._loop.create_future()
        self._thread = threading.Thread(target=self._thread_main, name="group-commit",
                                        daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Refuse new work, commit everything already queued, stop the background task
        (or the commit thread)."""
        if self._thread is not None:
            self._accepting = False
            with self._cond:
                self._stopping = True
                self._cond.notify()
            thread, stopped = self._thread, self._stopped
            try:
                await stopped  # type: ignore[misc]  (after every batch's results were posted)
            finally:
                self._thread = None
                thread.join()
            return
        if self._task is None:
            return
        self._accepting = False
        assert self._wakeup is not None
        self._wakeup.set()
        try:
            await self._task
        finally:
            self._task = None

    @property
    def running(self) -> bool:
        return self._accepting

    async def __aenter__(self) -> "GroupCommitter":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- public operations (each resolves after its batch is synced)

    async def write(self, token: int, key: bytes, record: Record) -> bool:
        """Store ``record`` durably if newer than the stored one; True if it was applied."""
        return (await self.submit(writes=[(token, key, record)]))[0]

    async def add_hint(self, target: str, token: int, key: bytes, record: Record) -> None:
        await self.submit(hints_add=[(target, token, key, record)])

    async def delete_hints(self, hint_keys: Iterable[bytes]) -> None:
        await self.submit(hints_delete=hint_keys)

    async def put_meta(self, name: str, value: bytes) -> None:
        await self.submit(meta_put={name: value})

    async def submit(
        self,
        writes: Iterable[Write] = (),
        hints_add: Iterable[HintAdd] = (),
        hints_delete: Iterable[bytes] = (),
        meta_put: Optional[Mapping[str, bytes]] = None,
        meta_delete: Iterable[str] = (),
    ) -> list[bool]:
        """Commit all of it atomically in the next synced batch; per data write, applied?"""
        future = self.submit_nowait(writes, hints_add, hints_delete, meta_put, meta_delete)
        # Shield: a caller cancelled while waiting must not cancel the shared future;
        # its operations may be on disk already and the batch result is still delivered.
        return await asyncio.shield(future)

    def write_nowait(self, token: int, key: bytes, record: Record) -> asyncio.Future:
        """``write`` without a coroutine: a future of ``[applied]`` that resolves (or fails)
        after the batch holding the record was synced. For callers that chain a callback
        instead of awaiting (the data path's local replica write). Never cancel it."""
        if not self._accepting:
            raise CommitterClosed("GroupCommitter is not running")
        validate_write(token, key, record)  # what submit_nowait checks of one data write
        sub = _Submission([(token, key, record)], [], [], {}, [],
                          self._loop.create_future())  # type: ignore[union-attr]
        self._queue.append(sub)
        self._notify()
        return sub.future

    def submit_nowait(
        self,
        writes: Iterable[Write] = (),
        hints_add: Iterable[HintAdd] = (),
        hints_delete: Iterable[bytes] = (),
        meta_put: Optional[Mapping[str, bytes]] = None,
        meta_delete: Iterable[str] = (),
    ) -> asyncio.Future:
        """Queue a submission; return its future (the rules of ``submit``; raises at once
        for a closed committer or bad input)."""
        if not self._accepting:
            raise CommitterClosed("GroupCommitter is not running")
        if isinstance(hints_delete, (bytes, bytearray)):
            raise TypeError("hints_delete must be a list of hint keys, not one bytes value")
        sub = _Submission(
            writes=list(writes),
            hints_add=list(hints_add),
            hints_delete=[bytes(k) for k in hints_delete],
            meta_put=dict(meta_put or {}),
            meta_delete=list(meta_delete),
            future=self._loop.create_future(),  # type: ignore[union-attr]
        )
        # Checked here, per caller, so bad input fails only its own caller, not the shared
        # batch (which the commit thread then applies without checking again).
        validate_ops(sub.writes, sub.hints_add, sub.meta_put, sub.meta_delete)
        self._queue.append(sub)
        self._notify()
        return sub.future

    def _notify(self) -> None:
        """New work is queued: wake whoever takes batches."""
        if self._thread is not None:
            # An idle commit thread is woken at the end of this loop step, so all that is
            # queued in the step shares its batch; a busy one takes the queue by itself.
            if self._idle and not self._wake_scheduled:
                self._wake_scheduled = True
                self._loop.call_soon(self._wake_thread)  # type: ignore[union-attr]
            return
        wakeup = self._wakeup
        assert wakeup is not None
        if not wakeup.is_set():
            wakeup.set()

    def _wake_thread(self) -> None:
        self._wake_scheduled = False
        with self._cond:
            self._cond.notify()

    async def delete_ranges_in_order(self, ranges: list[tuple[int, int]]) -> int:
        """Delete data records in token ranges, ordered with every other submission: writes
        submitted before are deleted too, writes submitted after survive. That is what a
        node needs when it drops ranges it no longer replicates while new writes (of a later
        ring change) may arrive for some of them."""
        if not self._accepting:
            raise CommitterClosed("GroupCommitter is not running")
        ranges = [(int(s), int(e)) for s, e in ranges if e > s]
        if not ranges:
            return 0
        sub = _Submission(writes=[], hints_add=[], hints_delete=[], meta_put={}, meta_delete=[],
                          future=asyncio.get_running_loop().create_future(),
                          delete_ranges=ranges)
        self._queue.append(sub)
        self._notify()
        return (await sub.future)[0]

    async def delete_range(self, start_token: int, end_token: int) -> int:
        """``store.delete_range`` off the event loop.

        Runs on the loop's default executor, not the commit thread: the store takes its lock
        per chunk, so group commits keep flowing between chunks of a large range.
        """
        if not self._accepting:
            raise CommitterClosed("GroupCommitter is not running")
        if self.inline:
            return self.store.delete_range(start_token, end_token)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.store.delete_range, start_token, end_token)

    # -- the background task

    def _take_batch(self) -> list[_Submission]:
        batch = [self._queue.popleft()]
        if batch[0].delete_ranges:
            return batch  # a range delete is a batch of its own, in queue order
        if self.buggify.on and self.buggify.fires("commit_split_batch"):
            return batch  # the rest waits for the next batch
        total = batch[0].size
        while self._queue and total + self._queue[0].size <= self.max_batch \
                and not self._queue[0].delete_ranges:
            sub = self._queue.popleft()
            batch.append(sub)
            total += sub.size
        return batch

    def _more(self, batch: list[_Submission]) -> list[_Submission]:
        """Submissions queued since ``batch`` was taken that still fit in it (inline mode:
        the batch forms over one loop step, as it forms over one fsync on the thread)."""
        if batch[0].delete_ranges:
            return []
        if len(batch) == 1 and self.buggify.on and self.buggify.fires("commit_split_batch"):
            return []  # buggify: this batch stays one submission, the rest waits
        total = sum(sub.size for sub in batch)
        more = []
        while self._queue and total + self._queue[0].size <= self.max_batch \
                and not self._queue[0].delete_ranges:
            sub = self._queue.popleft()
            more.append(sub)
            total += sub.size
        return more

    async def _run(self) -> None:
        """The batches of an inline committer (or one with a simulated ``sync_wait``), as a
        task on the loop: ``apply`` on the loop when inline, else on a thread per batch."""
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        batch: list[_Submission] = []
        try:
            while True:
                if not self._queue:
                    if not self._accepting:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                batch = self._take_batch()
                try:
                    if self.inline:
                        await asyncio.sleep(0)  # let this tick's callers join the batch
                        batch += self._more(batch)
                    if self.sync_wait is not None:
                        await self.sync_wait()  # a slow (simulated) disk: the sync takes time
                    if self.inline:
                        results, seconds = _apply_merged(self.store, batch)
                    else:
                        results, seconds = await loop.run_in_executor(
                            None, _apply_merged, self.store, batch
                        )
                except Exception as exc:  # fail every caller of this batch, keep serving
                    log.warning("group commit of %d submissions failed: %r", len(batch), exc)
                    for sub in batch:
                        if not sub.future.done():
                            sub.future.set_exception(exc)
                    batch = []
                    continue
                done, batch = batch, []
                self._resolve(done, results, seconds)
        finally:
            # Only reached with work left on cancellation or an unexpected bug: the outcome
            # of the in-flight batch is unknown, so say so rather than acknowledge.
            self._accepting = False
            leftover = batch + list(self._queue)
            self._queue.clear()
            for sub in leftover:
                if not sub.future.done():
                    sub.future.set_exception(
                        CommitterClosed("group committer stopped; write outcome unknown")
                    )
                    # Mark retrieved in case the caller was cancelled and nobody awaits it.
                    sub.future.exception()

    def _resolve(self, batch: list[_Submission], results: list, seconds: float) -> None:
        """On the loop: a synced batch's results to its callers, then ``on_batch``."""
        offset = 0
        for sub in batch:
            n = len(sub.writes) or (1 if sub.delete_ranges else 0)
            if not sub.future.done():
                sub.future.set_result(results[offset : offset + n])
            offset += n
        if self.on_batch is not None:
            try:
                self.on_batch(sum(sub.size for sub in batch), seconds)
            except Exception:  # metrics must never fail a committed batch
                log.exception("on_batch callback failed")

    def _fail(self, batch: list[_Submission], exc: BaseException) -> None:
        """On the loop: a batch whose ``apply`` raised fails every caller of it."""
        log.warning("group commit of %d submissions failed: %r", len(batch), exc)
        for sub in batch:
            if not sub.future.done():
                sub.future.set_exception(exc)

    # -- the commit thread

    def _thread_main(self) -> None:
        """Take every queued submission (up to ``max_batch``), apply it synced, post the
        outcome to the loop; wait (idle) only when nothing is queued; on ``stop()`` drain the
        queue, then exit."""
        loop, cond, queue = self._loop, self._cond, self._queue
        assert loop is not None and self._stopped is not None
        batch: list[_Submission] = []
        try:
            while True:
                if not queue:
                    with cond:
                        self._idle = True  # before the check: a submitter then wakes us
                        while not queue and not self._stopping:
                            cond.wait()
                        self._idle = False
                        if not queue:
                            break  # stopping, and everything queued was committed
                batch = self._take_batch()
                try:
                    results, seconds = _apply_merged(self.store, batch)
                except Exception as exc:  # fail every caller of this batch, keep serving
                    loop.call_soon_threadsafe(self._fail, batch, exc)
                else:
                    loop.call_soon_threadsafe(self._resolve, batch, results, seconds)
                batch = []
        except BaseException as exc:  # a bug, or the loop closed under us
            self._accepting = False
            leftover = batch + list(queue)
            queue.clear()
            err = CommitterClosed(f"group commit thread failed ({exc!r}); write outcome unknown")
            try:
                loop.call_soon_threadsafe(self._fail, leftover, err)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass
        finally:
            try:
                loop.call_soon_threadsafe(_set_done, self._stopped)
            except RuntimeError:
                pass


def _set_done(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _apply_merged(store: Store, batch: list[_Submission]) -> tuple[list, float]:
    """Runs on the commit thread: one synced apply for the whole batch, and its duration.
    A range-delete submission is always alone in its batch; its result is [records deleted]."""
    if batch[0].delete_ranges:
        started = time.perf_counter()
        count = sum(store.delete_range(s, e, sync=True) for s, e in batch[0].delete_ranges)
        return [count], time.perf_counter() - started
    writes: list[Write] = []
    hints_add: list[HintAdd] = []
    hints_delete: list[bytes] = []
    meta: dict[str, Optional[bytes]] = {}  # name -> value, None = delete; last one wins
    for sub in batch:
        writes.extend(sub.writes)
        hints_add.extend(sub.hints_add)
        hints_delete.extend(sub.hints_delete)
        for name, value in sub.meta_put.items():
            meta[name] = value
        for name in sub.meta_delete:
            meta[name] = None
    meta_put = {n: v for n, v in meta.items() if v is not None}
    meta_delete = [n for n, v in meta.items() if v is None]
    started = time.perf_counter()
    results = store.apply(
        writes,
        hints_add=hints_add,
        hints_delete=hints_delete,
        meta_put=meta_put,
        meta_delete=meta_delete,
        sync=True,
        check=False,
    )
    return results, time.perf_counter() - started
