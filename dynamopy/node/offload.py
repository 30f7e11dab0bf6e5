"""Blocking store work kept off the event loop.

A node's event loop answers every request of the node; a store read that grows with the
data (a scan of a span, a few thousand gets) must not run on it, or every request waits
for it (docs/perf.md, session 8: a scan of 2,000 keys held a node 60-110 ms). Such reads
run on a small pool of reader threads. An in-memory store (the simulator's) is ``inline``:
its reads run on the loop, where they cost little, so a simulated run stays deterministic.

A read that runs when the store is closed crashes the process (LevelDB frees the database
under the reading thread: a segmentation fault), and a read's thread cannot be cancelled.
Three fences: a cancelled ``off_loop`` returns only once its thread is done (review8); a node
calls ``settle`` before it closes its store (it returns once no read started here is running
or queued); and ``Store.close`` itself waits for reads in progress and refuses later ones.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, Callable

READER_THREADS = 4

_readers = concurrent.futures.ThreadPoolExecutor(READER_THREADS,
                                                 thread_name_prefix="store-read")
# Reads submitted and not done (a done read removes itself, from its thread).
_pending: set[concurrent.futures.Future] = set()


async def off_loop(inline: bool, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on a reader thread (on the loop itself when ``inline``)."""
    if inline:
        return fn(*args)
    job = _readers.submit(fn, *args)
    _pending.add(job)
    job.add_done_callback(_pending.discard)
    done = asyncio.wrap_future(job)
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        # The thread cannot be stopped: the caller ends only once it is done, so whatever
        # the caller's stop does next (close the store) finds no read of its own running.
        while not done.done():
            try:
                await asyncio.wait([done])
            except asyncio.CancelledError:
                pass  # cancelled again: the thread still runs, wait on
        raise


async def settle() -> None:
    """Return once no read submitted by ``off_loop`` (in this process) runs or waits to
    run, including reads whose callers were cancelled."""
    while _pending:
        await asyncio.wait([asyncio.wrap_future(job) for job in list(_pending)])
