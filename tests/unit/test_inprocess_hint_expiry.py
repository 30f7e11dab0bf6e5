"""Hints and the tombstone grace over the in-memory seams: four production nodes in one
process on virtual time. A fallback holding a hint of a key goes down; the key is deleted.
The tombstone is not purged while the fallback is down (every member must answer a purge,
core.tombstones); the fallback returns with a hint older than the grace, drops it undelivered,
and then the purge goes through: the deleted value never comes back."""

from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

IDS = ["n1", "n2", "n3", "n4"]
GRACE_S = 2.0


def test_a_hint_older_than_the_grace_does_not_bring_back_a_purged_delete():
    async def main():
        c = InProcessCluster(IDS, seed=21, anti_entropy_interval_s=3.0,
                             anti_entropy_rate=100_000, tombstone_grace_s=GRACE_S)
        await c.start_all()
        try:
            key = b"resurrect-me"
            ring = c.node("n1").state.ring
            token = ring.token(key)
            a, b, target, fallback = ring.preference_list_for_token(token, 4)
            co = c.coordinator(a)
            await c.crash(target)
            await until(lambda: not c.node(a).detector.is_up(target), 10, "target seen down")
            await co.write(key, value=b"old", content_type="text/plain", deleted=False, w=2)
            held = c.node(fallback).store.hint_stats().get(target, (0, 0))[0]
            # The fallback goes down with its hint; the target comes back; the key is deleted
            # on all three replicas, and the tombstone is purged after the grace.
            await c.crash(fallback)
            await c.start(target)
            await c.wait_ready([target])
            await until(lambda: not c.node(a).detector.is_up(fallback), 10, "fallback down")
            await co.write(key, value=b"", content_type="text/plain", deleted=True, w=3)
            home = [a, b, target]
            # Four graces with a member down: no purge (it could hold an older copy).
            await c.node(a).clock.sleep(4 * GRACE_S)
            kept = all(c.node(m).store.get(token, key).deleted for m in home)
            # The fallback returns; its hint is older than the grace: dropped, not delivered.
            await c.start(fallback)
            await until(lambda: not c.node(fallback).store.hint_stats().get(target, (0, 0))[0],
                        20, "the fallback holds no hint for the target any more")
            await until(lambda: all(c.node(m).store.get(token, key) is None for m in home),
                        60, "the tombstone purged on every replica")
            await c.node(a).clock.sleep(2.0)   # anti-entropy rounds: a resurrection spreads
            got = await co.read(key, r=3)
            on_target = c.node(target).store.get(token, key)
            dropped = c.node(fallback).metrics.hints_dropped.labels(
                target, "expired")._value.get()
            return held, kept, got, on_target, dropped
        finally:
            await c.stop_all()

    held, kept, got, on_target, dropped = run_virtual(main())
    assert held == 1
    assert kept                                # not purged while the fallback was down
    assert on_target is None and got is None   # the delete stays deleted
    assert dropped == 1
