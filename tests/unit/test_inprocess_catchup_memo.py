"""``CatchUp.caught_up`` remembers a True answer (it is asked several times per request); it
must still turn False as soon as the metadata log learns that its peers committed more than
this node applied. Three production nodes over the in-memory seams, on virtual time."""

from dynamopy.core.paxos.messages import Heartbeat
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until


def test_a_commit_index_announced_after_caught_up_makes_the_node_not_ready():
    async def main():
        c = InProcessCluster(["n1", "n2", "n3"], seed=7, anti_entropy_interval_s=3600.0)
        await c.start_all()
        try:
            leader = next(i for i in c.ids if c.node(i).metalog.is_leader)
            follower = c.node(next(i for i in c.ids if i != leader))
            assert follower.catchup.caught_up and follower.is_ready   # remembered now
            epoch = follower.state.epoch
            # The leader announces three more committed slots than anyone applied (as after
            # a commit this follower missed); the follower's log is stepped with it.
            ballot = c.node(leader).metalog.paxos.ballot
            follower.metalog._inbox.append((leader, Heartbeat(ballot, epoch + 4),
                                           c.node(leader).metalog.paxos.cluster))
            follower.metalog.poke()
            await until(lambda: follower.metalog.paxos.known_chosen_below > epoch + 1, 5,
                        "the follower's log took the announced commit index")
            return follower.catchup.caught_up, follower.is_ready, follower.catchup.lag()
        finally:
            await c.stop_all()

    caught_up, ready, lag = run_virtual(main())
    assert not caught_up and not ready
    assert "its peers report epoch" in lag
