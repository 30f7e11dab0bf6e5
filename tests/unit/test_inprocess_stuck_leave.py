"""A leave whose gainer died, over the in-memory seams: five production nodes in one process
on virtual time (n1..n3 seeds, n4 and n5 joined). Last session the leave waited for the dead
gainer for ever and removing the gainer was refused (409: a change in progress)."""

from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

SEEDS = ["n1", "n2", "n3"]


async def _join(c: InProcessCluster, mid: str) -> None:
    """``mid`` joins through a ready member (``InProcessCluster.start`` of a joiner)."""
    await c.start(mid)
    await until(lambda: _state_of(c, mid) == "normal", 60, f"{mid} is normal")


def _state_of(c: InProcessCluster, mid: str):
    m = c.node("n1").state.member(mid)
    return None if m is None else m.state


def test_removing_the_dead_gainer_of_a_stuck_leave_lets_both_changes_finish():
    async def main():
        c = InProcessCluster(SEEDS, seed=33, joiners=["n4", "n5"],
                             anti_entropy_interval_s=3600.0)
        await c.start_all()
        try:
            for mid in ("n4", "n5"):
                await _join(c, mid)
            co = c.coordinator("n1")
            acked = {}
            for i in range(30):
                key = b"k%d" % i
                acked[key] = (await co.write(key, value=key, content_type="text/plain",
                                             deleted=False, w=2))[0]
            await c.crash("n5")
            await until(lambda: not c.node("n1").detector.is_up("n5"), 10, "n5 seen down")
            await c.node("n1").propose({"op": "leave", "id": "n4"})
            state = c.node("n1").state
            assert state.change == ("leave", "n4") and "n5" in state.gainers()
            for i in range(30, 45):            # writes during the stuck change
                key = b"k%d" % i
                acked[key] = (await co.write(key, value=key, content_type="text/plain",
                                             deleted=False, w=2))[0]
            await c.node("n1").clock.sleep(2)
            stuck = c.node("n1").state.change
            # The operator removes the dead gainer: the leave is abandoned, n5 removed.
            await c.node("n1").propose({"op": "remove", "id": "n5"})
            await until(lambda: _state_of(c, "n5") is None, 60, "n5's removal finishes")
            after_remove = _state_of(c, "n4")
            await c.node("n1").propose({"op": "leave", "id": "n4"})
            await until(lambda: _state_of(c, "n4") is None, 60, "n4's leave finishes")
            await c.stop("n4")
            read = {}
            for key in acked:
                rec = await c.coordinator("n2").read(key, r=2)
                read[key] = None if rec is None else rec.version
            return stuck, after_remove, acked, read
        finally:
            await c.stop_all()

    stuck, after_remove, acked, read = run_virtual(main())
    assert stuck == ("leave", "n4")            # the leave could not finish with n5 dead
    assert after_remove == "normal"           # abandoned: n4 a normal member again
    assert read == acked                       # no acknowledged write lost
