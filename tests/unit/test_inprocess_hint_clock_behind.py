"""Hints and an unvouched wall clock that reads *behind*, over the in-memory seams (four
production nodes in one process on virtual time).

Since the fence gates "expired" (tests/unit/test_inprocess_hint_clock.py), a holder whose
clock jumped ahead keeps hints it used to drop, and the tombstone purge goes on meanwhile
(the holder answers it: a hint is no copy of the key in its store). "Not expired" is a
judgement on the same clock: when that clock is next off the other way (a correction that
overshoots, an unvouched restart), a hint older than the grace must still not be read by a
sloppy read, re-homed or handed on, or the purged delete comes back."""

from dynamopy.node.errors import QuorumUnavailable
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until
from tests.unit.test_inprocess_hint_clock import _hint_on_fallback

IDS = ["n1", "n2", "n3", "n4"]
GRACE_S = 2.0
KEY = b"resurrect-me"


def _cluster() -> InProcessCluster:
    return InProcessCluster(IDS, seed=21, anti_entropy_interval_s=3.0,
                            anti_entropy_rate=100_000, tombstone_grace_s=GRACE_S)


async def _hint_kept_through_a_jump_ahead_and_a_purge(c):
    """The fallback holds a hint of "old" for the target; its clock jumps 60 s ahead (the
    hint looks expired, the fence does not vouch for the clock: it keeps the hint and
    delivers nothing); the target comes back, the key is deleted on all three home replicas
    and the tombstone purged there (the fallback answers the purge). Returns (token, a, b,
    target, fallback, hints held after the write, hints kept after the purge)."""
    token, target, fallback = await _hint_on_fallback(c, KEY, b"old")
    a, b = (m for m in c.node("n1").state.ring.preference_list_for_token(token, 4)
            if m not in (target, fallback))
    held = c.node(fallback).store.hint_stats().get(target, (0, 0))[0]
    await until(lambda: c.node(fallback).detector.clock_ok, 5, "fallback vouched")
    c.clocks[fallback].offset_ms = 60_000
    await c.start(target)
    await c.wait_ready([target])
    await c.coordinator(a).write(KEY, value=b"", content_type="text/plain", deleted=True, w=3)
    await until(lambda: all(c.node(m).store.get(token, KEY) is None for m in (a, b, target)),
                60, "the tombstone purged on every replica")
    kept = c.node(fallback).store.hint_stats().get(target, (0, 0))[0]
    return token, a, b, target, fallback, held, kept


def test_a_hint_kept_on_an_unvouched_clock_is_not_read_once_that_clock_reads_behind():
    async def main():
        c = _cluster()
        await c.start_all()
        try:
            token, a, b, target, fallback, held, kept = \
                await _hint_kept_through_a_jump_ahead_and_a_purge(c)
            # The target goes down; the fallback's clock is set back, overshooting: now 60 s
            # behind, still not vouched for (it stepped), and the hint looks young on it.
            await c.crash(target)
            await until(lambda: not c.node(a).detector.is_up(target), 10, "target down again")
            c.clocks[fallback].offset_ms = -60_000
            await c.node(a).clock.sleep(1.0)
            vouched = c.node(fallback).detector.clock_ok_now
            try:
                got = await c.coordinator(a).read(KEY, r=3)   # the fallback stands in
            except QuorumUnavailable as e:           # 503: no hint may count for the target
                got = e
            await c.node(a).clock.sleep(2.0)   # read repair
            on_home = [c.node(m).store.get(token, KEY) for m in (a, b)]
            return held, kept, vouched, got, on_home
        finally:
            await c.stop_all()

    held, kept, vouched, got, on_home = run_virtual(main())
    assert (held, kept, vouched) == (1, 1, False)
    assert getattr(got, "value", None) != b"old", "a purged delete came back from a hint"
    assert on_home == [None, None], "read repair spread a hint older than the grace"


def test_a_hint_kept_on_an_unvouched_clock_is_not_re_homed_once_that_clock_reads_behind():
    async def main():
        c = _cluster()
        await c.start_all()
        try:
            token, a, b, target, fallback, _held, kept = \
                await _hint_kept_through_a_jump_ahead_and_a_purge(c)
            # The target dies and is removed; the fallback's clock is set back, overshooting
            # (60 s behind, not vouched for): its hint for a member that left looks young.
            await c.crash(target)
            await until(lambda: not c.node(a).detector.is_up(target), 10, "target down again")
            c.clocks[fallback].offset_ms = -60_000
            await c.node(a).propose({"op": "remove", "id": target})
            await until(lambda: all(c.node(m).state.member(target) is None
                                    and c.node(m).state.pending_ring is None
                                    for m in (a, b, fallback)), 30, "target removed")
            await c.node(a).clock.sleep(5.0)           # delivery rounds (re-homing)
            stored = [c.node(m).store.get(token, KEY) for m in (a, b, fallback)]
            # Its clock right again (vouched for): the hint is judged expired and dropped.
            c.clocks[fallback].offset_ms = 0
            await until(lambda: not c.node(fallback).store.hint_stats().get(target, (0, 0))[0],
                        30, "the expired hint dropped once the clock is back")
            await c.node(a).clock.sleep(2.0)
            after = [c.node(m).store.get(token, KEY) for m in (a, b, fallback)]
            dropped = c.node(fallback).metrics.hints_dropped.labels(
                target, "expired")._value.get()
            return kept, stored, after, dropped
        finally:
            await c.stop_all()

    kept, stored, after, dropped = run_virtual(main())
    assert kept == 1
    assert stored == [None, None, None], "a hint older than the grace was re-homed"
    assert after == [None, None, None] and dropped == 1
