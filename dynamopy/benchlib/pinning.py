"""Each store on its own core, driven at the same time (``vs_etcd --together``).

Run one after the other (A B A B), two stores meet different moments of the disk: on this
VM a device-wide ``fdatasync`` stall of up to ~1.3 s comes and goes, and whichever store is
being measured when a long one comes gets the worse p99 (docs/perf.md, wave 2, session 8).
Driven at the same time they meet the same stalls, and pinning each store's processes, and
its wrk, to a core of its own keeps them from taking CPU from each other: the Go runtime's
threads would otherwise win most of the time slices from a node's one event-loop thread.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Sequence

# etcd and its wrk on the first, dynamopy and its wrk on the second
TOGETHER_CPUS = (0, 1)


def usable_cpus() -> set[int]:
    return set(os.sched_getaffinity(0))


def pin_processes(pids: Sequence[int], cpu: int) -> None:
    """Every thread of every process in ``pids`` to run on ``cpu`` only. Threads they start
    later inherit it from the thread that starts them."""
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                os.sched_setaffinity(int(tid), {cpu})
            except ProcessLookupError:  # a thread that ended meanwhile
                pass


def run_pinned(jobs: Sequence[tuple[int, Callable[..., Any], tuple]]) -> list[Any]:
    """Run each ``(cpu, fn, args)`` in its own thread pinned to ``cpu`` (so the processes
    ``fn`` starts, e.g. wrk, run there too), all at once; their results in order. The first
    exception raised by any job is raised here after all have ended."""
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def go(i: int, cpu: int, fn: Callable[..., Any], args: tuple) -> None:
        try:
            os.sched_setaffinity(0, {cpu})  # this thread only; its children inherit it
            results[i] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(e)

    threads = [threading.Thread(target=go, args=(i, *job), daemon=True)
               for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
