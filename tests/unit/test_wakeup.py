"""``Wakeup`` and ``wait_set`` (node/clock.py): what the metadata log's pump and the hint
loop sleep on between ticks."""

import asyncio

import pytest

from dynamopy.node.clock import Wakeup, wait_set


def test_a_set_before_the_wait_returns_true_at_once():
    async def main():
        w = Wakeup()
        w.set()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await wait_set(w, 5.0) is True
        assert loop.time() - t0 < 1.0
        assert w.is_set()
        w.clear()
        assert not w.is_set()
    asyncio.run(main())


def test_a_set_while_waiting_wakes_the_waiter_before_its_timeout():
    async def main():
        w = Wakeup()
        loop = asyncio.get_running_loop()
        loop.call_later(0.02, w.set)
        t0 = loop.time()
        assert await wait_set(w, 5.0) is True
        assert loop.time() - t0 < 1.0
    asyncio.run(main())


def test_without_a_set_the_wait_returns_false_after_its_timeout_not_before():
    async def main():
        w = Wakeup()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await wait_set(w, 0.05) is False
        assert loop.time() - t0 >= 0.05 - 0.002
        assert await wait_set(w, 0.0) is False     # a zero timeout still yields once
        # the next wait is unaffected by the last one's timer or waiter
        loop.call_later(0.01, w.set)
        assert await wait_set(w, 5.0) is True
    asyncio.run(main())


def test_a_cancellation_in_the_same_step_as_the_set_still_cancels_the_loop():
    """The reason for not using ``asyncio.wait_for`` (3.11 swallows this cancellation): a
    background loop that waits in a ``while True`` must end when its task is cancelled."""
    async def main():
        w = Wakeup()
        stop = []

        async def loop_forever():
            while not stop:   # (``stop`` only lets a broken wait_set's loop end the test)
                await wait_set(w, 10.0)
                w.clear()

        task = asyncio.get_running_loop().create_task(loop_forever())
        await asyncio.sleep(0)          # the loop now waits
        w.set()
        task.cancel()                   # same step as the set
        await asyncio.sleep(0.05)
        cancelled = task.cancelled()
        stop.append(True)
        w.set()
        await asyncio.gather(task, return_exceptions=True)
        assert cancelled
    asyncio.run(main())


def test_a_set_after_a_timed_out_wait_is_kept_for_the_next_wait():
    async def main():
        w = Wakeup()
        assert await wait_set(w, 0.0) is False
        w.set()   # nobody waits now: the flag stays until the next wait takes it
        assert await wait_set(w, 5.0) is True
    asyncio.run(main())
