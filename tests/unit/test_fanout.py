"""One round's calls (dynamopy/node/fanout.py): who is called when, when the round returns,
and that a round leaves no cyclic garbage behind (the collector's pauses were the request
tail: docs/perf.md)."""

import asyncio
import gc

import pytest

from dynamopy.core.quorum import Outcome, ReadRound, Target, WriteRound
from dynamopy.deadlines import Deadlines
from dynamopy.node.fanout import FanOut
from dynamopy.peer import PeerUnavailable
from dynamopy.sim.clock import run_virtual


def run(coro, timeout_s: float = 10.0):
    """On virtual time (``dynamopy.sim.clock``): the rounds' timers fire exactly when due,
    however busy the machine is (CI 44, load 6: a 0.4 s budget ended after 1 s of real time)."""
    return run_virtual(asyncio.wait_for(coro, timeout_s))


_QUEUES: dict = {}


def _timers(queued: bool) -> dict:
    """The round's timers: deadline queues shared by every round on the loop (as the
    coordinator's), or loop timers of their own."""
    if not queued:
        return {}
    loop = asyncio.get_running_loop()
    if _QUEUES.get("loop") is not loop:
        _QUEUES.update(loop=loop, deadlines=(Deadlines(loop), Deadlines(loop)))
    return {"deadlines": _QUEUES["deadlines"]}


QUEUED = pytest.mark.parametrize("queued", [False, True], ids=["loop-timers", "queued"])


def _write_round(targets, w, call, background, **kw):
    rnd = WriteRound(tuple(targets), w)
    fan = FanOut(targets, call, on_ok=lambda t, v: rnd.ack(t.node),
                 on_fail=lambda t: rnd.fail(t.node), outcome=lambda: rnd.outcome,
                 local_id="n1", background=background, **kw)
    return rnd, fan


def _read_round(targets, r, call, background, **kw):
    rnd = ReadRound(tuple(targets), r)
    fan = FanOut(targets, call, on_ok=lambda t, v: rnd.reply(t.node, v),
                 on_fail=lambda t: rnd.fail(t.node), outcome=lambda: rnd.outcome,
                 local_id="n1", background=background, **kw)
    return rnd, fan


def test_a_write_round_returns_at_w_acks_and_leaves_the_slow_call_running():
    async def main():
        slow = asyncio.Event()
        called = []

        async def call(t):
            called.append(t.node)
            if t.node == "n3":
                await slow.wait()
            return 1

        background: set = set()
        targets = [Target("n1"), Target("n2"), Target("n3")]
        rnd, fan = _write_round(targets, 2, call, background)
        tasks = await fan.run(None, 0.1, 5.0)
        assert rnd.outcome is Outcome.SUCCEEDED and sorted(rnd.acked) == ["n1", "n2"]
        assert called == ["n1", "n2", "n3"] and len(tasks) == 3
        assert len(background) == 1          # n3 still running, tracked
        slow.set()
        await asyncio.gather(*tasks)
        assert background == set() and sorted(rnd.acked) == ["n1", "n2", "n3"]
    run(main())


@QUEUED
def test_a_read_asks_r_first_then_the_next_on_failure_then_all_after_speculate_s(queued):
    async def main():
        hang = asyncio.Event()
        called = []

        async def call(t):
            called.append(t.node)
            if t.node == "n2":
                raise PeerUnavailable("down")
            if t.node == "n3":
                await hang.wait()
            return None

        targets = [Target("n1"), Target("n2"), Target("n3"), Target("n4")]
        rnd, fan = _read_round(targets, 2, call, set(), **_timers(queued),
                               local_sync=lambda t: None)  # n1 is answered in this step, no task
        loop = asyncio.get_running_loop()
        started = loop.time()
        tasks = await fan.run(2, 0.2, 5.0)
        # n1 local, n2 failed -> n3 started (hangs); after 0.2 s n4 too, which answers
        assert called == ["n2", "n3", "n4"] and len(tasks) == 3
        assert rnd.outcome is Outcome.SUCCEEDED and 0.15 <= loop.time() - started < 4
        hang.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    run(main())


@QUEUED
def test_the_budget_bounds_an_undecided_round(queued):
    async def main():
        async def call(t):
            await asyncio.sleep(30)

        rnd, fan = _write_round([Target("n2"), Target("n3")], 2, call, set(), **_timers(queued))
        loop = asyncio.get_running_loop()
        started = loop.time()
        tasks = await fan.run(None, 0.05, 0.3)
        assert rnd.outcome is Outcome.PENDING and 0.25 <= loop.time() - started < 4
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    run(main())


@QUEUED
def test_the_budget_bounds_a_read_round_that_also_started_its_backups(queued):
    """A read with backups runs one timer at a time (speculation, then the budget's rest):
    after the speculative start the budget still ends the round, counted from its start."""
    async def main():
        called = []

        async def call(t):
            called.append(t.node)
            await asyncio.sleep(30)

        targets = [Target("n2"), Target("n3"), Target("n4")]
        rnd, fan = _read_round(targets, 2, call, set(), **_timers(queued))
        loop = asyncio.get_running_loop()
        started = loop.time()
        tasks = await fan.run(2, 0.2, 0.3)
        # the budget counts from the round's start, not from the speculation (0.5 s)
        assert rnd.outcome is Outcome.PENDING and 0.25 <= loop.time() - started < 0.45
        assert called == ["n2", "n3", "n4"]    # the backup started after speculate_s
        assert fan.timer is None               # nothing left scheduled by the round
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    run(main())


@QUEUED
def test_a_late_speculation_does_not_extend_the_budget(queued):
    """The speculation's timer fires late when the loop is busy (here: blocked 0.25 s across
    it); the budget still ends the round at its start + budget_s, not at the late firing +
    the budget's rest (that pushed the round's end out by the loop's lag)."""
    async def main():
        async def call(t):
            await asyncio.sleep(30)

        targets = [Target("n2"), Target("n3"), Target("n4")]
        rnd, fan = _read_round(targets, 2, call, set(), **_timers(queued))
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, loop.advance, 0.25)   # the loop stalls over the speculation
        started = loop.time()
        tasks = await fan.run(2, 0.1, 0.4)
        # before: the speculation ran at >= 0.3 s and set the budget's 0.3 s left from then (>= 0.6)
        assert rnd.outcome is Outcome.PENDING and 0.35 <= loop.time() - started < 0.55
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    run(main())


@QUEUED
def test_rounds_leave_no_cyclic_garbage(queued):
    """Everything a round allocates is freed by reference counting once its calls are done:
    nothing for the cyclic collector (before: closures calling each other through cells kept
    the round, its tasks and their coroutines in a cycle; ~66 objects per request)."""
    async def main():
        async def call(t):
            if t.node == "n3":
                raise PeerUnavailable("down")
            await asyncio.sleep(0)
            return 1

        async def one_round():
            background: set = set()
            targets = [Target("n1"), Target("n2"), Target("n3")]
            rnd, fan = _write_round(targets, 2, call, background, **_timers(queued))
            tasks = await fan.run(None, 0.1, 5.0)
            await asyncio.gather(*tasks, return_exceptions=True)
            rrnd = ReadRound(tuple(targets), 2)
            read = FanOut(targets, call, on_ok=lambda t, v: rrnd.reply(t.node, None),
                          on_fail=lambda t: rrnd.fail(t.node), outcome=lambda: rrnd.outcome,
                          local_id="n1", background=background, local_sync=lambda t: None,
                          **_timers(queued))
            tasks = await read.run(2, 0.1, 5.0)
            await asyncio.gather(*tasks, return_exceptions=True)

        await one_round()          # warm up: first-time allocations of asyncio itself
        gc.collect()
        gc.disable()
        try:
            for _ in range(50):
                await one_round()
            await asyncio.sleep(0)
            return gc.collect()
        finally:
            gc.enable()

    assert run(main()) == 0


def test_calls_that_return_futures_are_settled_by_callbacks_without_a_task():
    async def main():
        loop = asyncio.get_running_loop()
        answers = {t: loop.create_future() for t in ("n1", "n2", "n3")}
        background: set = set()
        targets = [Target("n1"), Target("n2"), Target("n3")]
        rnd, fan = _write_round(targets, 2, lambda t: answers[t.node], background)
        before = len(asyncio.all_tasks())
        running = asyncio.ensure_future(fan.run(None, 0.1, 5.0))
        await asyncio.sleep(0)
        assert len(asyncio.all_tasks()) == before + 1   # the round itself, no task per call
        answers["n1"].set_result(1)
        answers["n2"].set_exception(PeerUnavailable("down"))
        await asyncio.sleep(0.01)
        assert not running.done()                       # one ack of two
        answers["n3"].set_result(1)
        futures = await running
        assert rnd.outcome is Outcome.SUCCEEDED and sorted(rnd.acked) == ["n1", "n3"]
        assert futures == [answers["n1"], answers["n2"], answers["n3"]]
        await asyncio.sleep(0)
        assert background == set()
    run(main())


def test_a_call_that_raises_before_it_starts_is_a_failed_call_not_a_failed_round():
    async def main():
        loop = asyncio.get_running_loop()

        def call(t):
            if t.node == "n1":
                raise RuntimeError("committer closed")     # e.g. the node is stopping
            answer = loop.create_future()
            answer.set_result(1)
            return answer

        targets = [Target("n1"), Target("n2"), Target("n3")]
        rnd, fan = _write_round(targets, 2, call, set())
        await fan.run(None, 0.1, 5.0)
        assert rnd.outcome is Outcome.SUCCEEDED and sorted(rnd.acked) == ["n2", "n3"]
    run(main())
