"""Hints and a wall clock that jumped, over the in-memory seams: four production nodes in
one process on virtual time. A hint is one copy of an acknowledged write; "older than the
tombstone grace" is judged on a clock, so a node whose clock the fence does not vouch for
(it jumped 11 days ahead: beyond the default 10-day grace) neither drops a hint it holds as
expired nor skips, as expired, a hint handed to it. The hint waits until the clock is back
and is then delivered."""

from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

IDS = ["n1", "n2", "n3", "n4"]
DAY_MS = 24 * 3_600_000


def _dropped(c, node_id: str, target: str) -> float:
    return c.node(node_id).metrics.hints_dropped.labels(target, "expired")._value.get()


async def _hint_on_fallback(c, key: bytes, value: bytes = b"acked"):
    """Write ``key`` while its third replica is down: the fallback holds one hint for it.
    Returns (token, target, fallback)."""
    ring = c.node("n1").state.ring
    token = ring.token(key)
    a, b, target, fallback = ring.preference_list_for_token(token, 4)
    await c.crash(target)
    await until(lambda: not c.node(a).detector.is_up(target), 10, "target seen down")
    await c.coordinator(a).write(key, value=value, content_type="text/plain",
                                 deleted=False, w=2)
    assert c.node(fallback).store.hint_stats().get(target, (0, 0))[0] == 1
    return token, target, fallback


def test_a_fallback_whose_clock_jumped_ahead_keeps_its_hint():
    async def main():
        async with InProcessCluster(IDS, seed=21) as c:
            key = b"hinted"
            token, target, fallback = await _hint_on_fallback(c, key)
            await until(lambda: c.node(fallback).detector.clock_ok, 5, "fallback vouched for")
            c.clocks[fallback].offset_ms = 11 * DAY_MS
            await c.start(target)
            await c.wait_ready([target])
            await until(lambda: c.node(fallback).detector.is_up(target), 10, "target seen up")
            await c.node(fallback).clock.sleep(3.0)     # delivery rounds with the wrong clock
            kept = c.node(fallback).store.hint_stats().get(target, (0, 0))[0]
            dropped = _dropped(c, fallback, target)
            c.clocks[fallback].offset_ms = 0
            await until(lambda: c.node(target).store.get(token, key) is not None, 20,
                        "the hint delivered once the fallback's clock is back")
            return kept, dropped, c.node(target).store.get(token, key)

    kept, dropped, delivered = run_virtual(main())
    assert (kept, dropped) == (1, 0), "a fallback with a clock 11 days ahead dropped its hint"
    assert delivered.value == b"acked"


def test_a_target_whose_clock_jumped_ahead_skips_no_hint_as_expired():
    async def main():
        async with InProcessCluster(IDS, seed=21) as c:
            key = b"hinted"
            token, target, fallback = await _hint_on_fallback(c, key)
            c.clocks[target].offset_ms = 11 * DAY_MS    # it comes back 11 days ahead
            await c.start(target)
            await until(lambda: c.node(fallback).detector.is_up(target), 10, "target seen up")
            await c.node(fallback).clock.sleep(3.0)
            kept = c.node(fallback).store.hint_stats().get(target, (0, 0))[0]
            dropped = _dropped(c, target, target)
            c.clocks[target].offset_ms = 0
            await until(lambda: c.node(target).store.get(token, key) is not None, 20,
                        "the hint delivered once the target's clock is back")
            return kept, dropped, c.node(target).store.get(token, key)

    kept, dropped, delivered = run_virtual(main())
    assert (kept, dropped) == (1, 0), "a target with a clock 11 days ahead skipped the hint"
    assert delivered.value == b"acked"
