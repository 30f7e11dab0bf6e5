"""Group commit: many concurrent durable writes share one synced LevelDB batch.

Rules and invariants:

* Callers' operations queue up as *submissions*. One background task repeatedly takes every
  queued submission (up to ``max_batch`` operations; a single larger submission goes alone,
  whole) and runs ONE ``store.apply(..., sync=True)`` for all of them.
* ``apply`` runs on a dedicated commit thread: the event loop never waits on fsync, and
  ``apply``'s read-compare-write never runs twice at once. While a batch syncs, new
  submissions queue for the next one; that overlap is the whole point.
* The loop hands each batch to the commit thread directly (a queue ``put``, no executor, no
  task or future per batch); the thread posts the outcome back with one
  ``call_soon_threadsafe``. The loop resolves the callers' futures (after the sync); the
  next batch, everything queued meanwhile, is taken at the end of a loop step
  (``call_soon``): of the step that queued the first work for an idle committer, or of the
  one after a batch returned, so the requests read in between still join it. (Letting the thread take the next batch itself
  right after a sync was tried: more, smaller batches, more CPU in the commit thread and
  more GIL hand-offs with the loop; not kept. docs/perf.md, session 5.)
* A caller's future resolves only after the batch holding its operations returned from a
  synced ``apply``. If ``apply`` raises, every future of that batch gets that exception:
  nothing is ever acknowledged without being on disk.
* A submission is atomic (it lands in one batch). Submissions in one batch are merged in
  queue order; metadata puts/deletes of the same name keep the last one, so merging never
  reorders them. Data writes need no ordering: the newest version wins anyway.
* A range drop (``delete_ranges_in_order``) is ordered with the submissions: writes queued
  before it are dropped with it, writes queued after it survive it. It runs as steps of
  ``DROP_CHUNK`` records (one synced batch each) that alternate with the batches queued
  behind it, so those are not held for a whole large drop; a batch applied meanwhile first
  tells the drop which keys it writes, and the drop leaves them (``_Drop``), unless that
  batch fails (its writes did not land). So a key written after the drop keeps the newer of
  its two records: a write older than the record queued before the drop is answered "not
  applied", as any stale write is, and that newer record stays (had the whole drop run first,
  the stale write would have been stored instead). A second drop that reaches the head of
  the queue while the first is in progress starts at once (what was queued before it has
  been applied): from then on both note the writes applied, and its steps follow the
  first's, so the writes behind both are not held for the first either. A drop's caller
  hears after its last step; a failed step fails that drop (the records it did not reach
  stay).
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
* A synced batch that took ``SLOW_SYNC_SECONDS`` or longer is logged (INFO, with its size
  and time): the timestamped evidence of a disk stall next to a latency tail. At most one
  line per ``SLOW_SYNC_LOG_EVERY`` seconds (a slow disk would log every batch); a line
  counts the slow batches left out since the one before.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from bisect import bisect_right
from collections import deque
from queue import SimpleQueue
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterable, Mapping, Optional, Sequence

from dynamopy.core.records import Record
from dynamopy.core.buggify import BUGGIFY_OFF, Buggify
from dynamopy.storage.layout import HintAdd, Write, data_key, validate_ops, validate_write
from dynamopy.storage.store import Store

log = logging.getLogger(__name__)

OnBatch = Callable[[int, float], None]
SLOW_SYNC_SECONDS = 0.05  # a synced batch this slow is logged
SLOW_SYNC_LOG_EVERY = 1.0  # seconds between two such lines at most
_monotonic = time.monotonic  # the clock of that limit (a test replaces it)


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
    # How many operations (what a batch's size counts): set once by whoever builds it (it
    # is read up to three times per batch, and a property summing five lengths showed in
    # the loop's profile at one submission per replica write).
    size: int = 0

    def count(self) -> "_Submission":
        """Set ``size`` from the lists; returns the submission."""
        self.size = (len(self.writes) + len(self.hints_add) + len(self.hints_delete)
                     + len(self.meta_put) + len(self.meta_delete))
        return self


DROP_CHUNK = 1_000  # records a range drop looks at per step (one synced batch each)


@dataclass(slots=True)
class _Drop:
    """A range drop in progress (``delete_ranges_in_order``). It is deleted a step of
    ``DROP_CHUNK`` records at a time, alternating with the batches queued behind it, so
    writes never wait for the whole drop. Every data key those batches write within the
    ranges goes into ``keep`` before their ``apply``: later steps leave it, so a write queued
    after the drop survives it (or, when it is older than the stored record, that record
    stays: the newer of the two, see the module docstring). Touched only by whoever
    runs the batches (the commit thread, or the loop when inline), one batch at a time."""
    sub: _Submission
    starts: list[int]           # the ranges, sorted and disjoint: starts and ends
    ends: list[int]
    index: int = 0              # the range the next step works on (before it: done)
    cursor: Optional[bytes] = None  # where that range resumes (None: its start)
    keep: set[bytes] = field(default_factory=set)
    total: int = 0              # records deleted so far

    @property
    def done(self) -> bool:
        return self.index >= len(self.starts)

    def note_writes(self, writes: list[Write]) -> list[bytes]:
        """Keep the data keys of ``writes`` that fall in a range not yet finished; return
        the ones not kept before (``forget`` them if the batch fails)."""
        starts, ends, index, keep = self.starts, self.ends, self.index, self.keep
        added = []
        for token, key, _record in writes:
            i = bisect_right(starts, token) - 1
            if i >= index and token < ends[i]:
                dkey = data_key(token, key)
                if dkey not in keep:
                    keep.add(dkey)
                    added.append(dkey)
        return added

    def forget(self, added: list[bytes]) -> None:
        """The batch whose writes ``note_writes`` kept failed: they did not land (their
        callers hear so), so the records queued before the drop under those keys go with
        it after all."""
        self.keep.difference_update(added)

    def step(self, store: Store) -> int:
        """Delete the next chunk (one synced batch); return how many records it deleted."""
        while not self.done:
            deleted, self.cursor = store.delete_range_chunk(
                self.starts[self.index], self.ends[self.index], self.cursor,
                chunk=DROP_CHUNK, sync=True, keep=self.keep)
            self.total += deleted
            if self.cursor is None:
                self.index += 1
            if deleted or self.cursor is not None:
                return deleted   # one synced chunk per step; an empty range costs nothing
        return 0


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
        # The commit thread (not inline) and what the loop hands it: a batch, or None (exit).
        self._thread: Optional[threading.Thread] = None
        self._inbox: "SimpleQueue[Optional[list[_Submission]]]" = SimpleQueue()
        self._in_flight = False     # a batch is with the thread (its outcome not yet resolved)
        self._dispatch_scheduled = False
        self._broken = False        # the thread died of an unexpected error
        self._drops: list[_Drop] = []  # the range drops in progress, oldest (stepping) first
        self._drop_next = False     # its step goes next (it alternates with the batches)
        self._stopping = False      # stop(): commit what is queued, then end the thread
        self._stopped: Optional[asyncio.Future] = None
        self._slow_logged_at: Optional[float] = None  # monotonic time of the last slow line
        self._slow_unlogged = 0  # slow batches not logged since then

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
        self._stopping = self._broken = False
        self._stopped = self._loop.create_future()
        self._thread = threading.Thread(target=self._thread_main, name="group-commit",
                                        daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Refuse new work, commit everything already queued, stop the background task
        (or the commit thread)."""
        if self._thread is not None:
            self._accepting = False
            self._stopping = True
            if not self._in_flight:
                self._dispatch()  # the queued work, or the thread's exit
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
        instead of awaiting. Never cancel it."""
        return self.write_into(token, key, record, self._loop.create_future())  # type: ignore[union-attr]

    def write_into(self, token: int, key: bytes, record: Record, sink):
        """``write_nowait`` delivering its outcome to ``sink`` instead of a new future: any
        object with a future's ``done``, ``set_result``, ``set_exception`` and ``exception``,
        called on the loop exactly when the future would be resolved (after the synced
        batch). The replica's put passes its own result object: one future and one loop hop
        fewer per write. Returns ``sink``."""
        if not self._accepting:
            raise CommitterClosed("GroupCommitter is not running")
        validate_write(token, key, record)  # what submit_nowait checks of one data write
        sub = _Submission([(token, key, record)], [], [], {}, [], sink, [], 1)
        self._queue.append(sub)
        self._notify()
        return sink

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
        ).count()
        # Checked here, per caller, so bad input fails only its own caller, not the shared
        # batch (which the commit thread then applies without checking again).
        validate_ops(sub.writes, sub.hints_add, sub.meta_put, sub.meta_delete)
        self._queue.append(sub)
        self._notify()
        return sub.future

    def _notify(self) -> None:
        """New work is queued: have the next batch taken."""
        if self._thread is not None:
            # With no batch at the thread, the batch is taken at the end of this loop step,
            # so all that is queued in the step shares it; else when the batch returns.
            if not self._in_flight and not self._dispatch_scheduled:
                self._dispatch_scheduled = True
                self._loop.call_soon(self._dispatch)  # type: ignore[union-attr]
            return
        wakeup = self._wakeup
        assert wakeup is not None
        if not wakeup.is_set():
            wakeup.set()

    def _dispatch(self) -> None:
        """On the loop, with no batch at the thread: hand it the next batch (or, stopping
        with nothing queued, tell it to exit)."""
        self._dispatch_scheduled = False
        if self._in_flight or self._thread is None:
            return
        if self._queue or self._drops:
            self._in_flight = True
            self._inbox.put(self._take_batch())
        elif self._stopping:
            self._inbox.put(None)

    async def delete_ranges_in_order(self, ranges: list[tuple[int, int]]) -> int:
        """Delete data records in token ranges, ordered with every other submission: writes
        submitted before are deleted too, writes submitted after survive. That is what a
        node needs when it drops ranges it no longer replicates while new writes (of a later
        ring change) may arrive for some of them. The ranges must not overlap.

        The drop runs a step of ``DROP_CHUNK`` records at a time, with the batches queued
        behind it in between (see ``_Drop``): a write queued after it is acknowledged
        without waiting for a large drop to finish, and survives it."""
        if not self._accepting:
            raise CommitterClosed("GroupCommitter is not running")
        ranges = sorted((int(s), int(e)) for s, e in ranges if e > s)
        if any(e > s for (_, e), (s, _) in zip(ranges, ranges[1:])):
            raise ValueError("range drops must not overlap")
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
        """The next batch: a step of the oldest range drop in progress (``[its
        submission]``) or submissions from the queue; a drop at the head of the queue starts
        first. Called with work to do (queued, or a drop)."""
        drops, queue = self._drops, self._queue
        while queue and queue[0].delete_ranges:
            # A range drop reaches the head of the queue: everything before it is committed,
            # so it starts (beside any drop in progress: each notes the writes from now on).
            sub = queue.popleft()
            drops.append(_Drop(sub, [s for s, _ in sub.delete_ranges],
                               [e for _, e in sub.delete_ranges]))
            self._drop_next = True
        if drops:
            if self._drop_next or not queue:
                self._drop_next = False
                return [drops[0].sub]
            self._drop_next = True
        batch = [queue.popleft()]
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
                if not self._queue and not self._drops:
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
                        results, seconds = _apply_merged(self.store, batch, self._drops)
                    else:
                        results, seconds = await loop.run_in_executor(
                            None, _apply_merged, self.store, batch, list(self._drops)
                        )
                except Exception as exc:  # fail every caller of this batch, keep serving
                    self._fail(batch, exc)
                    batch = []
                    continue
                done, batch = batch, []
                self._resolve(done, results, seconds)
        finally:
            # Only reached with work left on cancellation or an unexpected bug: the outcome
            # of the in-flight batch is unknown, so say so rather than acknowledge.
            self._accepting = False
            leftover = batch + list(self._queue) + [d.sub for d in self._drops]
            self._drops = []
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
        drop = self._drops[0] if self._drops else None
        if drop is not None and batch[0] is drop.sub:
            # A step of the drop (its result: the records it deleted). The drop's caller
            # hears once the whole drop is done.
            if drop.done:
                self._drops.pop(0)
                if not drop.sub.future.done():
                    drop.sub.future.set_result([drop.total])
            self._batch_done(results[0], seconds)
            return
        offset = 0
        for sub in batch:
            n = len(sub.writes) or (1 if sub.delete_ranges else 0)
            if not sub.future.done():
                sub.future.set_result(results[offset : offset + n])
            offset += n
        self._batch_done(sum(sub.size for sub in batch), seconds)

    def _batch_done(self, size: int, seconds: float) -> None:
        """A synced batch of ``size`` operations took ``seconds``: the slow-batch log line
        and ``on_batch``."""
        if seconds >= SLOW_SYNC_SECONDS:
            self._log_slow(size, seconds)
        if self.on_batch is not None:
            try:
                self.on_batch(size, seconds)
            except Exception:  # metrics must never fail a committed batch
                log.exception("on_batch callback failed")

    def _log_slow(self, size: int, seconds: float) -> None:
        """One slow synced batch: log it, unless a line went out in the last
        ``SLOW_SYNC_LOG_EVERY`` seconds (then only count it for the next line)."""
        now = _monotonic()
        if self._slow_logged_at is not None and now - self._slow_logged_at < SLOW_SYNC_LOG_EVERY:
            self._slow_unlogged += 1
            return
        more = f" ({self._slow_unlogged} more since the last line)" if self._slow_unlogged else ""
        log.info("slow synced batch: %d operations in %.1f ms%s", size, seconds * 1000, more)
        self._slow_logged_at, self._slow_unlogged = now, 0

    def _fail(self, batch: list[_Submission], exc: BaseException) -> None:
        """On the loop: a batch whose ``apply`` raised fails every caller of it (a step of
        the range drop fails the drop: what it left stays until the drop is run again)."""
        if self._drops and batch and batch[0] is self._drops[0].sub:
            self._drops.pop(0)
        log.warning("group commit of %d submissions failed: %r", len(batch), exc)
        for sub in batch:
            if not sub.future.done():
                sub.future.set_exception(exc)

    def _returned(self, batch: list[_Submission], results: Optional[list], seconds: float,
                  exc: Optional[BaseException]) -> None:
        """On the loop: the commit thread's outcome of ``batch``; then the next batch."""
        self._in_flight = False
        if exc is None:
            self._resolve(batch, results, seconds)  # type: ignore[arg-type]
        else:
            self._fail(batch, exc)
        if self._broken:  # the thread is gone: what is queued will never be committed
            leftover = list(self._queue) + [d.sub for d in self._drops]
            self._drops = []
            self._queue.clear()
            self._fail(leftover, exc or CommitterClosed("group commit thread failed"))
            return
        if self._queue or self._drops or self._stopping:
            # The next batch is taken at the end of the loop step, like the first one: the
            # requests read in the meantime join it (fewer, larger batches: each costs a
            # sync and GIL hand-offs).
            self._notify()

    # -- the commit thread

    def _thread_main(self) -> None:
        """Apply each batch the loop hands over, synced, and post the outcome back; exit on
        ``None``. An unexpected error (not an ``Exception``: a bug) fails the batch and stops
        the committer."""
        loop, inbox = self._loop, self._inbox
        assert loop is not None and self._stopped is not None
        try:
            while True:
                batch = inbox.get()
                if batch is None:
                    break
                try:
                    # (The drops are read here, after the loop handed over the batch: the
                    # loop changes them only while no batch is at the thread.)
                    results, seconds = _apply_merged(self.store, batch, self._drops)
                except Exception as exc:  # fail every caller of this batch, keep serving
                    loop.call_soon_threadsafe(self._returned, batch, None, 0.0, exc)
                except BaseException as exc:
                    self._accepting = False
                    self._broken = True
                    loop.call_soon_threadsafe(self._returned, batch, None, 0.0, CommitterClosed(
                        f"group commit thread failed ({exc!r}); write outcome unknown"))
                    raise
                else:
                    loop.call_soon_threadsafe(self._returned, batch, results, seconds, None)
        except RuntimeError:  # the loop is closed: nobody waits for an outcome any more
            pass
        finally:
            try:
                loop.call_soon_threadsafe(_set_done, self._stopped)
            except RuntimeError:
                pass


def _set_done(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _apply_merged(store: Store, batch: list[_Submission],
                  drops: Sequence[_Drop] = ()) -> tuple[list, float]:
    """Runs on the commit thread: one synced apply for the whole batch, and its duration.
    A step of the oldest range drop in ``drops`` (a batch of its submission alone) deletes
    its next chunk; its result is [records deleted by the step]. A batch of writes while
    drops are in progress first tells each to keep the keys it writes."""
    if drops and batch[0] is drops[0].sub:
        started = time.perf_counter()
        count = drops[0].step(store)
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
    kept = [(d, d.note_writes(writes)) for d in drops] if writes else ()
    started = time.perf_counter()
    try:
        results = store.apply(
            writes,
            hints_add=hints_add,
            hints_delete=hints_delete,
            meta_put=meta_put,
            meta_delete=meta_delete,
            sync=True,
            check=False,
        )
    except Exception:
        for d, added in kept:
            d.forget(added)
        raise
    return results, time.perf_counter() - started
