"""A change of the R/W defaults on three production nodes in one process on virtual time: the
leader's loop, idle until then (it waits for a state change instead of polling), finishes it
as promptly as the polling loop did."""

from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

IDS = ["n1", "n2", "n3"]


def test_a_change_of_the_defaults_settles_within_a_second_after_an_idle_stretch():
    async def main():
        async with InProcessCluster(IDS, seed=1, r=1, w=3) as c:
            await c.wait_ready(IDS)
            await c.node("n1").clock.sleep(12)     # well past the idle loop's longest wait
            leader = c.node("n1").metalog.leader
            epoch = await c.node(leader).propose({"op": "set_config", "r": 3, "w": 1})
            t0 = c.node(leader).clock.monotonic()
            assert c.node(leader).state.rw_in_effect is not None or \
                c.node(leader).state.epoch > epoch
            await until(lambda: all(c.node(i).state.rw_in_effect is None
                                    and (c.node(i).state.settings.r, c.node(i).state.settings.w) == (3, 1)
                                    for i in IDS), 10, "the change settled everywhere")
            return c.node(leader).clock.monotonic() - t0

    took = run_virtual(main())
    assert took <= 1.0, took
