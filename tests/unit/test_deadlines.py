"""``dynamopy/deadlines.py``: callbacks at in-order deadlines on one timer. Each runs at its own
deadline whatever the order they were added in, a cancelled one never runs and is let go at
once, and one callback's error does not stop the others. On asyncio's loop and on uvloop."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
import uvloop

from dynamopy.deadlines import Deadlines

LATE_S = 0.3   # how late past its deadline a callback may run on this busy machine
LOOPS = ["asyncio", "uvloop"]


def run(kind: str, coro, timeout_s: float = 10.0):
    wrapped = asyncio.wait_for(coro, timeout_s)
    return uvloop.run(wrapped) if kind == "uvloop" else asyncio.run(wrapped)


@pytest.mark.parametrize("kind", LOOPS)
def test_each_callback_runs_at_its_own_deadline_in_any_order(kind):
    async def main():
        loop = asyncio.get_running_loop()
        d = Deadlines(loop)
        ran: dict[str, float] = {}
        start = loop.time()

        def note(name):
            ran[name] = loop.time() - start

        # A long one first and cancelled: the queue empties with its timer armed for 5 s.
        d.at(start + 5.0, note, "cancelled").cancel()
        d.at(start + 0.10, note, "a")
        d.at(start + 0.25, note, "b")
        d.at(start + 9.00, note, "long")
        d.at(start + 0.15, note, "earlier than the last")  # out of order: its own timer
        d.at(start + 9.50, note, "longer").cancel()
        await asyncio.sleep(0.6)
        assert set(ran) == {"a", "b", "earlier than the last"}, ran
        for name, deadline in (("a", 0.10), ("earlier than the last", 0.15), ("b", 0.25)):
            assert deadline - 0.002 <= ran[name] < deadline + LATE_S, (name, ran)
        # "long" still queued, and "longer" behind it (cancelled: dropped when it reaches
        # the head); the cancelled one at the head was let go.
        assert len(d) == 2

    run(kind, main())


@pytest.mark.parametrize("kind", LOOPS)
def test_a_callback_added_by_a_callback_and_after_the_queue_emptied_runs_on_time(kind):
    async def main():
        loop = asyncio.get_running_loop()
        d = Deadlines(loop)
        ran: dict[str, float] = {}
        start = loop.time()

        def note(name):
            ran[name] = loop.time() - start

        def chain():
            note("first")
            d.at(start + 0.2, note, "chained")

        d.at(start + 0.1, chain)
        await asyncio.sleep(0.35)
        d.at(loop.time() + 0.1, note, "after empty")  # the queue emptied; its timer is gone
        t = loop.time() - start
        await asyncio.sleep(0.3)
        assert 0.1 - 0.002 <= ran["first"] < 0.1 + LATE_S
        assert 0.2 - 0.002 <= ran["chained"] < 0.2 + LATE_S
        assert t + 0.1 - 0.002 <= ran["after empty"] < t + 0.1 + LATE_S

    run(kind, main())


def test_a_cancelled_callback_never_runs_and_is_let_go_at_once():
    async def main():
        loop = asyncio.get_running_loop()
        d = Deadlines(loop)
        ran = []

        class Round:
            def fire(self):
                ran.append(self)

        first, second = Round(), Round()
        h1 = d.at(loop.time() + 0.05, first.fire)
        h2 = d.at(loop.time() + 0.06, second.fire)
        gone = weakref.ref(second)
        h2.cancel()
        del second
        gc.collect()
        assert gone() is None   # the queue keeps nothing of a cancelled callback
        await asyncio.sleep(0.15)
        assert ran == [first]
        h1.cancel()   # after it ran: nothing happens
        assert len(d) == 0

    asyncio.run(asyncio.wait_for(main(), 10))


def test_one_callback_failing_does_not_stop_the_next(caplog):
    async def main():
        loop = asyncio.get_running_loop()
        d = Deadlines(loop)
        ran = []

        def boom():
            raise ValueError("bug")

        when = loop.time() + 0.05
        d.at(when, boom)
        d.at(when, ran.append, "next")
        await asyncio.sleep(0.15)
        return ran, boom

    ran, boom = asyncio.run(asyncio.wait_for(main(), 10))
    assert ran == ["next"]
    # The log names the callback that failed, with its error.
    assert [r.getMessage() for r in caplog.records] == [f"deadline callback {boom!r} failed"]
    assert "ValueError: bug" in caplog.text
