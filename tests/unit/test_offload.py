"""node/offload.py: store reads off the event loop, and a node's stop waiting for them
before it closes its store (a real LevelDB store; the rest of the node in memory)."""

import asyncio
import random
import threading
import time

from dynamopy.core.records import Record
from dynamopy.node.clock import SystemClock
from dynamopy.node.offload import off_loop, settle
from dynamopy.node.runtime import Node
from dynamopy.sim.inprocess import memory_config
from dynamopy.sim.transport import MemoryNetwork
from dynamopy.storage import LevelDBDisk


def test_a_read_runs_on_another_thread_and_settle_waits_for_it_after_its_caller_is_gone():
    async def main():
        go, threads = threading.Event(), []

        def read():
            go.wait(5)
            threads.append(threading.get_ident())
            return "read"
        assert await off_loop(True, lambda: threading.get_ident()) == threading.get_ident()
        waiting = asyncio.ensure_future(off_loop(False, read))
        await asyncio.sleep(0.01)
        waiting.cancel()                         # the thread's read goes on regardless
        settling = asyncio.ensure_future(settle())
        await asyncio.sleep(0.05)
        early = settling.done()
        go.set()
        await asyncio.wait_for(settling, 5)
        return early, threads, threading.get_ident()

    early, threads, loop_thread = asyncio.run(main())
    assert not early and len(threads) == 1 and threads[0] != loop_thread


def test_a_node_closes_its_store_only_after_the_reads_it_started_off_the_loop(tmp_path):
    """Regression: a node's stop closed its LevelDB while a read it had started off the loop
    still ran (stopping cancels the task waiting for the read, not the read's thread), and
    LevelDB frees the database under a reading thread: the process dies of a segmentation
    fault (reproduced with plyvel alone). Now the stop waits for such reads first."""
    outcome = []

    async def main():
        node = Node(memory_config("n1", ["n1"]), transport=MemoryNetwork().transport("n1"),
                    storage=LevelDBDisk(str(tmp_path)), clock=SystemClock(),
                    rng=random.Random(1))
        await node.start()
        node.store.apply([(5, b"k", Record(1))])
        go = threading.Event()

        def read():
            go.wait(5)
            try:
                outcome.append([k for _t, k, _r in node.store.scan(0, 2**32)])
            except Exception as e:   # what a read meets once the store is closed
                outcome.append(e)
        # a task of the node's (as anti-entropy's and the purge's are) waits for the read
        node.spawn(node.anti_entropy._blocking(read))
        await asyncio.sleep(0.05)
        threading.Timer(0.3, go.set).start()
        await node.stop()
        return node.store.closed

    assert asyncio.run(main()) is True
    for _ in range(100):   # (without the wait, the read ends later, on a closed store)
        if outcome:
            break
        time.sleep(0.05)
    assert outcome == [[b"k"]]
